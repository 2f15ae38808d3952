import keras
import numpy as np
import pytest
import scipy.fft

from genreflow.pipeline.models.architectures import ARCHITECTURES, dct_matrix, get_architecture, unfreeze_top
from genreflow.pipeline.registry import load_keras_file

N_CLASSES = 3


def _batch(arch, n=4, seed=0):
    rng = np.random.default_rng(seed)
    inputs = [rng.normal(0, 1, (n, bins, frames)).astype(np.float32) for bins, frames in arch.input_shapes]
    return (inputs if len(inputs) > 1 else inputs[0]), np.arange(n) % N_CLASSES


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_builds_trains_a_step_and_round_trips(name, tmp_path):
    arch = get_architecture(name)
    keras.utils.set_random_seed(0)
    model = arch.build(arch, N_CLASSES)
    x, y = _batch(arch)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    trainable_before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    if not arch.linear_probe:  # gradient models move their weights
        after = [w.numpy() for w in model.trainable_weights]
        assert any(not np.allclose(a, b) for a, b in zip(trainable_before, after, strict=True))
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (4, N_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = load_keras_file(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probabilities, atol=1e-6)
    assert loaded.get_layer("embedding") is not None


def test_fine_tuning_opens_only_the_top_of_a_frozen_backbone():
    arch = get_architecture("musicnn-msd")
    model = arch.build(arch, N_CLASSES)
    head_only = len(model.trainable_weights)
    assert head_only == 2  # the softmax's kernel and bias
    unfreeze_top(model, 2)
    trainable = [w.path for w in model.trainable_weights]
    assert len(trainable) == head_only + 4 and any("dense/kernel" in p for p in trainable)
    assert not any("batch_normalization" in p for p in trainable)


def test_linear_probe_reads_every_depth_of_the_pretrained_tagger():
    from genreflow.pipeline.models import musicnn

    arch = get_architecture("musicnn-msd-linear")
    model = arch.build(arch, N_CLASSES)
    x, _ = _batch(arch)
    features = keras.Model(model.input, model.get_layer("embedding").output).predict(x, verbose=0)
    outputs = musicnn.build_tagger("musicnn-msd").predict(x.transpose(0, 2, 1), verbose=0)
    expected = np.concatenate([outputs["max_pool"], outputs["mean_pool"], outputs["embedding"]], axis=1)
    assert features.shape == (4, 753 + 753 + 200)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    frames_first = x.transpose(0, 2, 1)
    vgg = musicnn.build_tagger("vgg-mtt").predict(frames_first, verbose=0)  # each of 5 blocks pooled, then pool5
    assert vgg["max_pool"].shape == vgg["mean_pool"].shape == (4, 5 * 128) and vgg["embedding"].shape == (4, 256)
    assert (vgg["max_pool"] >= vgg["mean_pool"] - 1e-5).all()
    np.testing.assert_allclose(vgg["max_pool"][:, -128:], vgg["embedding"].reshape(4, -1, 128).max(axis=1), atol=1e-5)
    np.testing.assert_allclose(
        musicnn.transfer_features_model("vgg-mtt").predict(frames_first, verbose=0),
        np.concatenate([vgg["max_pool"], vgg["mean_pool"], vgg["embedding"]], axis=1), rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    both = get_architecture("musicnn-vgg-msd-linear")
    side_by_side = both.build(both, N_CLASSES)
    msd_vgg = musicnn.transfer_features_model("vgg-msd").predict(frames_first, verbose=0)
    np.testing.assert_allclose(
        keras.Model(side_by_side.input, side_by_side.get_layer("embedding").output).predict(x, verbose=0),
        np.concatenate([expected, msd_vgg], axis=1), rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_mfcc_layer_is_the_orthonormal_dct():
    x = np.random.default_rng(1).normal(size=(5, 128))
    np.testing.assert_allclose(x @ dct_matrix(128, 20).T, scipy.fft.dct(x, norm="ortho")[:, :20], atol=1e-5)


def test_imagenet_weights_come_from_a_file_or_the_keras_cache_never_a_download(tmp_path, monkeypatch):
    from genreflow.pipeline.errors import ParameterError
    from genreflow.pipeline.models.architectures import imagenet_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert imagenet_weights("mobilenetv2", None) is None  # nothing cached: random init
    cached = tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"h5")
    assert imagenet_weights("mobilenetv2", None) == str(cached)
    assert imagenet_weights("inceptionv3", None) is None
    assert imagenet_weights("vgg16", cached) == str(cached)
    with pytest.raises(ParameterError, match="no such file"):
        imagenet_weights("vgg16", tmp_path / "missing.h5")


@pytest.mark.parametrize("name", ["cnn1", "cnn2", "cnn2-stft", "fusion"])  # those that standardise their input
def test_inference_statistics_follow_the_data_within_a_small_catalogues_epochs(name):
    """30 steps (ten epochs of 72 six-second tracks) leave every BatchNormalization's moving mean where
    the data is: stored dB values near -40 are standardised at inference as they were in training."""
    arch = get_architecture(name)
    keras.utils.set_random_seed(0)
    model = arch.build(arch, N_CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    for _ in range(30):
        inputs = [rng.normal(-40, 15, (8, bins, frames)).astype(np.float32) for bins, frames in arch.input_shapes]
        model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], rng.integers(0, N_CLASSES, 8))
    norms = [layer for layer in model.layers if layer.name.endswith("_input_norm")]
    assert norms
    for layer in norms:
        mean, variance = (float(np.mean(w)) for w in (layer.moving_mean.numpy(), layer.moving_variance.numpy()))
        assert abs(mean + 40) < 4 and abs(variance / 225 - 1) < 0.15, (layer.name, mean, variance)
