"""keras.applications transfer as seed 000 did it: the backbone's own preprocessing inside the model,
weights from a real file (saved here from the same architecture: nothing can be downloaded), the
backbone frozen until its top layers are opened, and a saved model that loads in safe mode alone."""

import hashlib

import keras
import numpy as np
import pytest
from keras import layers

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.models.architectures import RANDOM_INIT, get_architecture, initial_weights, unfreeze_top
from genreflow.pipeline.models.blocks import SpectrogramImage
from genreflow.pipeline.registry import load_keras_file


def _pixels(x):
    low, high = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    return np.repeat((255 * (x - low) / (high - low))[..., None], 3, axis=-1)


@pytest.mark.parametrize("application", ["vgg16", "mobilenet_v2"])
def test_spectrogram_image_is_the_picture_through_the_backbones_own_preprocess_input(application):
    x = np.random.default_rng(0).normal(-40, 15, (2, 16, 12)).astype(np.float32)
    got = np.asarray(SpectrogramImage(application)(x[..., None]))
    expected = getattr(keras.applications, application).preprocess_input(_pixels(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
    assert got.shape == (2, 16, 12, 3)


def test_imagenet_backbone_from_a_weights_file_starts_frozen_opens_its_top_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))  # no cached ImageNet file
    arch = get_architecture("mobilenetv2")
    bins, frames = arch.input_shapes[0]
    keras.utils.set_random_seed(7)
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(bins, frames, 3))
    weights = tmp_path / "mobilenetv2-notop.weights.h5"
    donor.save_weights(weights)

    assert initial_weights(arch, None) == {"pretrained": False, "source": RANDOM_INIT}
    assert initial_weights(arch, weights) == {"pretrained": True, "source": str(weights),
                                              "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}  # fmt: skip
    with pytest.raises(ParameterError, match=r"keras\.applications"):
        initial_weights(get_architecture("cnn1"), weights)

    keras.utils.set_random_seed(8)  # another seed: equal weights below come from the file
    model = arch.build(arch, 3, weights=weights)
    backbone = model.get_layer("backbone")
    for loaded, saved in zip(backbone.weights, donor.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    assert [w.path for w in model.trainable_weights] == ["head_softmax/kernel", "head_softmax/bias"]  # frozen

    unfreeze_top(model, 4)
    weighted = [layer for layer in backbone.layers if layer.weights]
    opened = [layer for layer in weighted if layer.trainable]
    convolutions = [layer for layer in weighted if not isinstance(layer, layers.BatchNormalization)]
    assert opened == convolutions[-4:]  # the top four, BatchNorm statistics kept

    x = np.random.default_rng(1).normal(-30, 12, (3, bins, frames)).astype(np.float32)
    rgb = keras.Model(model.input, model.get_layer("rgb").output).predict(x, verbose=0)
    np.testing.assert_allclose(rgb, keras.applications.mobilenet_v2.preprocess_input(_pixels(x)), atol=1e-4)
    probabilities = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(load_keras_file(tmp_path / "model.keras").predict(x, verbose=0), probabilities,
                               atol=1e-6)  # fmt: skip
