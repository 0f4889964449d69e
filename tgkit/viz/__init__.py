"""Figures and widget dashboards for notebooks (training, block errors, trace labels,
structures, equivariance, bands).

Only notebooks and the CLI import this package. Submodules import their widget libraries
lazily where they are optional (nglview, weas-widget), so ``import tgkit.viz`` stays cheap.
"""
