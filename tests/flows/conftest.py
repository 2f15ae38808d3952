"""Real services for these tests: a Prefect server process and moto's S3 server (:mod:`tests.services`)."""

from tests.services import s3_endpoint, settings  # noqa: F401  fixtures
