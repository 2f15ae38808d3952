import numpy as np
import pytest

from genreflow.pipeline.training.augment import with_gain


@pytest.mark.parametrize("gain_db", [-6.0, 0.0, 9.0])
def test_gain_is_the_same_audio_louder_in_each_feature_scale(gain_db):
    power = np.random.default_rng(0).uniform(1e-6, 1e-1, (4, 5))
    factor = 10.0 ** (gain_db / 10.0)
    db = 10 * np.log10(power)
    np.testing.assert_allclose(with_gain(db, gain_db, "db"), 10 * np.log10(power * factor), atol=1e-9)
    musicnn = np.log10(1 + 10000 * power).astype(np.float32)
    np.testing.assert_allclose(
        with_gain(musicnn, gain_db, "log1p10000"), np.log10(1 + 10000 * power * factor), rtol=1e-4
    )
