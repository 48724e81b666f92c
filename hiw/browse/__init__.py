"""Curator previews: a static HTML browser of a dataset version (``site``) and per-clip overlay videos (``preview``)."""
