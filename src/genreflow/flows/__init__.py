"""Prefect flows (ingest, demo, bench) and the ``genreflow`` command line."""
