"""Each augmentation of a training patch, through ``random_patch`` on a real store: present when asked
for, absent when not, and doing what it says (a view drawn, a contiguous band masked, noise of the
asked spread, a stretched crop of the same shape)."""

from dataclasses import dataclass

import numpy as np
import pytest

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.patches import PatchReader
from genreflow.pipeline.training.augment import (
    Augment,
    masked,
    patches_per_track,
    random_patch,
    training_batches,
)
from genreflow.pipeline.training.config import AugmentConfig, parse_augment

OFF = parse_augment("none")
WHOLE_WINDOW = 44  # mel128 frames in a 1-s window: a patch this long is the whole stored window, uncropped


@dataclass(frozen=True)
class Patches:
    """What a reader needs of a model: its input and patch length."""

    inputs: tuple[str, ...] = ("mel128",)
    patch_frames: tuple[int, ...] = (WHOLE_WINDOW,)


def _noise(track, view, shape):
    return np.random.default_rng([track, view]).normal(0, 2, shape)


def _draws(layout, settings, *, frames=WHOLE_WINDOW, n=40, seed=0):
    reader = PatchReader(layout, Patches(patch_frames=(frames,)))
    augment = Augment(settings, np.random.default_rng(seed))
    return reader, [random_patch(reader, 0, reader.patch_seconds, augment)[0] for _ in range(n)]


def _constant_bands(patch):
    rows = np.flatnonzero(np.ptp(patch, axis=1) == 0)
    columns = np.flatnonzero(np.ptp(patch, axis=0) == 0)
    return rows, columns


def test_channel_split_draws_every_stored_view_and_only_the_mid_without_it(make_feature_store):
    layout = make_feature_store(["a"], lambda track, view, shape: np.full(shape, 10.0 * (view + 1)),
                                window_s=1.0, views=("mid", "left", "right"))  # fmt: skip
    _, patches = _draws(layout, AugmentConfig(masking=0, gain_db=0, noise=0, zoom=0, channels=True))
    assert {float(p[0, 0]) for p in patches} == {10.0, 20.0, 30.0}  # mid, left and right rows all drawn
    _, patches = _draws(layout, OFF)
    assert {float(p[0, 0]) for p in patches} == {10.0}  # the mid view only


def test_masking_sets_one_contiguous_band_of_bins_and_one_of_frames_to_the_patch_mean(make_feature_store):
    layout = make_feature_store(["a"], _noise, window_s=1.0)
    reader, patches = _draws(layout, AugmentConfig(masking=1, gain_db=0, noise=0, zoom=0, channels=False))
    stored = reader.track(0)[0]
    assert stored.shape == patches[0].shape  # the patch is the whole window: what changed is the mask
    for patch in patches:
        rows, columns = _constant_bands(patch)
        assert len(rows) and len(columns), "no mask"
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(columns) == 1), "a band that is not contiguous"
        assert len(rows) <= 128 // 8 and len(columns) <= WHOLE_WINDOW // 8
        changed = patch != stored
        band = np.zeros_like(changed)
        band[rows] = band[:, columns] = True
        np.testing.assert_array_equal(changed, band)  # the bands, nothing else
        np.testing.assert_allclose(patch[band], stored.mean(), rtol=1e-6)
    _, untouched = _draws(layout, OFF, n=5)
    assert all(np.array_equal(p, stored) for p in untouched)


def test_masking_probability_is_the_share_of_masked_patches():
    rng = np.random.default_rng(0)
    patch = rng.normal(size=(16, 24)).astype(np.float32)
    share = np.mean([not np.array_equal(masked(patch, 0.3, rng), patch) for _ in range(400)])
    assert 0.22 < share < 0.38


def test_noise_is_additive_with_the_asked_relative_spread(make_feature_store):
    layout = make_feature_store(["a"], _noise, window_s=1.0)
    reader, patches = _draws(layout, AugmentConfig(masking=0, gain_db=0, noise=0.1, zoom=0, channels=False), n=5)
    stored = reader.track(0)[0]
    for patch in patches:
        added = patch - stored
        assert added.std() == pytest.approx(0.1 * stored.std(), rel=0.05) and abs(added.mean()) < 0.01
    assert not np.array_equal(patches[0], patches[1])  # fresh noise each draw


def test_zoom_keeps_the_patch_shape_and_stretches_the_content(make_feature_store):
    ramp = lambda track, view, shape: np.tile(np.arange(shape[1], dtype=np.float32), (shape[0], 1))  # noqa: E731
    layout = make_feature_store(["a"], ramp, window_s=4.0)
    settings = AugmentConfig(masking=0, gain_db=0, noise=0, zoom=0.4, channels=False)
    _, patches = _draws(layout, settings, frames=20)
    slopes = []
    for patch in patches:
        assert patch.shape == (128, 20)
        steps = np.diff(patch, axis=1)
        np.testing.assert_allclose(steps, steps[0, 0], rtol=1e-4)  # a linear stretch of one contiguous span
        slopes.append(steps[0, 0])
    assert min(slopes) < 0.8 and max(slopes) > 1.2  # squeezed and stretched: (1 ± 0.4) × 3 s of content
    assert all(0.55 < s < 1.45 for s in slopes)
    _, plain = _draws(layout, OFF, frames=20)
    assert all(np.array_equal(np.diff(p, axis=1), np.ones((128, 19))) for p in plain)


def test_an_epoch_of_the_training_stream_draws_each_track_once_per_patch(make_feature_store):
    import pandas as pd

    tracks = pd.DataFrame({"valid_s": [1.0, 9.2, 6.0, 2.9]})
    np.testing.assert_array_equal(patches_per_track(tracks, 3.0), [1, 3, 2, 1])  # non-overlapping, at least one
    layout = make_feature_store(["a", "b", "c"], _noise, window_s=10.0)
    reader = PatchReader(layout, Patches(patch_frames=(130,)))  # 3.02 s
    tracks = pd.DataFrame({"row": [0, 1, 2], "valid_s": [3.1, 9.1, 6.1]})  # 1, 3 and 2 patches
    stream = training_batches(reader, tracks, np.array([0, 1, 2]), Augment(OFF, np.random.default_rng(0)),
                              batch_size=6)  # fmt: skip
    epochs = [labels.numpy() for _, labels in stream.take(3)]  # a batch of 6 is one epoch here
    for labels in epochs:
        np.testing.assert_array_equal(np.bincount(labels, minlength=3), [1, 3, 2])
    assert len({tuple(labels) for labels in epochs}) > 1  # shuffled afresh each epoch


def test_augment_settings_parse_check_their_ranges_and_reach_the_cli(capsys, tmp_path):
    from genreflow.cli import main

    assert parse_augment("masking=1,noise=0.05") == AugmentConfig(masking=1.0, noise=0.05)
    assert parse_augment(AugmentConfig(zoom=0.2, channels=False).spec()) == AugmentConfig(zoom=0.2, channels=False)
    for text, named in (("masking=1.5", "masking=1.5"), ("pitch=2", "'pitch=2'"), ("noise=lots", "'lots'"),
                        ("channels=2", "channels=2")):  # fmt: skip
        with pytest.raises(ParameterError, match=named):
            parse_augment(text)
        with pytest.raises(SystemExit) as exited:
            main(["train", "--store", str(tmp_path), "--augment", text])
        assert exited.value.code == 2
        [line] = capsys.readouterr().err.splitlines()
        assert "--augment" in line and named in line


def test_evaluation_patches_start_a_hop_apart_inside_the_valid_audio(make_feature_store):
    import pandas as pd

    from genreflow.pipeline.patches import evaluation_patches, patch_count

    assert [patch_count(v, 3.0, 1.0) for v in (1.0, 3.0, 9.2, 6.0)] == [1, 1, 3, 2]  # non-overlapping
    assert [patch_count(v, 3.0, 0.5) for v in (1.0, 3.0, 9.2, 6.0)] == [1, 1, 5, 3]  # half-overlapping
    ramp = lambda track, view, shape: np.broadcast_to(np.arange(shape[1], dtype=np.float32), shape)  # noqa: E731
    layout = make_feature_store(["a", "b"], ramp, window_s=10.0)
    tracks = pd.DataFrame({"row": [0, 1], "valid_s": [9.1, 2.0]})
    for hop, starts in ((1.0, [0, 130, 260]), (0.5, [0, 65, 130, 195, 260])):
        reader = PatchReader(layout, Patches(patch_frames=(130,)), hop=hop)  # 3.02 s, 130 frames
        [patches], owners = evaluation_patches(reader, tracks)
        assert owners.tolist() == [0] * len(starts) + [1]  # the 2-s track: one (edge-padded) patch
        assert patches[:-1, 0, 0].tolist() == starts  # each patch's first frame is where it starts
        assert all(np.array_equal(p[0], np.arange(s, s + 130)) for p, s in zip(patches, starts, strict=False))
