"""The domain: decoding, feature sets, catalogue adapters, the feature store and manifest.

Plain functions and small classes; nothing here imports Prefect, Dask or settings.
"""
