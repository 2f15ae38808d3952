"""genreflow: catalogue-scale audio classification (ingest → train → score)."""

__version__ = "0.1.0"
