"""Figures and widget dashboards for notebooks (training, block errors, trace labels,
structures, equivariance, bands).

Notebooks import this package; the CLI imports only :mod:`tgkit.viz.band_png` (the
``bands.png`` of ``tgkit bands``), and nothing below viz imports it. Submodules import their
widget libraries lazily where they are optional (nglview, weas-widget), so
``import tgkit.viz`` stays cheap.
"""
