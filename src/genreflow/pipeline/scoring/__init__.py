"""Batch scoring: per-track probabilities of a registered model (or a pretrained tagger) to Parquet."""
