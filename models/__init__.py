"""Shipped pretrained tgkit models, one folder each (``model.pt`` + ``card.md`` + ``card.json``).

Installed as the package ``tgkit.pretrained`` (``tgkit/pretrained`` links here), so an installed
tgkit finds them too. Load with ``tgkit.models.load("graphene")`` or use the name wherever a run
directory is accepted: ``tgkit predict graphene DATA --out PRED``.
"""
