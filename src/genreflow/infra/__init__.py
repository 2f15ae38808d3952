"""Where things run: settings, the Prefect API, the Dask cluster, quiet logs."""
