import shutil

import numpy as np
import pytest

from genreflow.bench.clips import music_patches as synthetic_patches
from genreflow.pipeline.models.musicnn import (
    MSD_TAGS,
    MTT_TAGS,
    MUSICNN_DIR_ENV,
    PRETRAINED,
    WeightsError,
    build_tagger,
    checkpoint_dir,
    embedding_model,
)
from genreflow.pipeline.models.tf1_reference import tf1_tagger


@pytest.fixture(scope="module")
def music_patches() -> np.ndarray:
    """Real musicnn96 input, frames first: 3-s patches of synthetic genres (not random numbers)."""
    return np.ascontiguousarray(synthetic_patches(8)["musicnn96"].transpose(0, 2, 1))


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_keras_port_matches_the_original_tf1_graph(name, music_patches):
    reference = tf1_tagger(checkpoint_dir(name))(music_patches)
    ported = build_tagger(name).predict(music_patches, verbose=0)
    assert ported["tags"].shape == reference.shape == (len(music_patches), 50)
    np.testing.assert_allclose(ported["tags"], reference, atol=1e-4, rtol=0)
    assert reference.std() > 1e-3  # the comparison is not between two constant outputs


def test_port_exposes_embedding_and_pooled_features(music_patches):
    outputs = build_tagger("musicnn-msd").predict(music_patches, verbose=0)
    assert outputs["embedding"].shape == (len(music_patches), 200)
    assert outputs["mean_pool"].shape == outputs["max_pool"].shape == (len(music_patches), 753)
    assert (outputs["max_pool"] >= outputs["mean_pool"] - 1e-5).all()
    embedding = embedding_model("musicnn-msd").predict(music_patches, verbose=0)
    np.testing.assert_allclose(embedding, outputs["embedding"], atol=1e-5)
    # musicnn models take any length: a 6-s input gives one prediction per input
    assert build_tagger("musicnn-mtt").predict(np.concatenate([music_patches[:2]] * 2, axis=1), verbose=0)[
        "tags"
    ].shape == (2, 50)


def test_tag_names_are_exposed():
    assert PRETRAINED["musicnn-msd"].tags == MSD_TAGS and PRETRAINED["vgg-mtt"].tags == MTT_TAGS
    assert len(set(MSD_TAGS)) == len(set(MTT_TAGS)) == 50 and "rock" in MSD_TAGS and "techno" in MTT_TAGS


def test_altered_or_missing_checkpoint_is_refused_with_install_hint(tmp_path, monkeypatch):
    copy = tmp_path / "MSD_musicnn"
    shutil.copytree(checkpoint_dir("musicnn-msd"), copy)
    monkeypatch.setenv(MUSICNN_DIR_ENV, str(tmp_path))
    assert checkpoint_dir("musicnn-msd") == copy
    with (copy / ".index").open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match=r"sha256.*pip install --no-deps musicnn==0\.1\.0"):
        checkpoint_dir("musicnn-msd")
    with pytest.raises(WeightsError, match=r"missing checkpoint file.*pip install"):
        checkpoint_dir("musicnn-mtt")
