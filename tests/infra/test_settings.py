from pathlib import Path

from genreflow.infra.settings import Settings


def test_flags_override_environment_which_overrides_defaults():
    environ = {"GENREFLOW_STORE": "s3://env/store", "GENREFLOW_WORKERS": "6", "GENREFLOW_HOME": "/tmp/gf"}
    settings = Settings.resolve(environ, store="/flag/store", workers=None, dask_address=None)
    assert settings.store == "/flag/store"
    assert settings.workers == 6
    assert settings.home == Path("/tmp/gf")
    assert settings.dask_address is None and settings.storage_options == {}
    defaults = Settings.resolve({})
    assert defaults.workers == 2 and defaults.store is None


def test_s3_endpoint_becomes_storage_options():
    settings = Settings.resolve({"GENREFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert settings.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
