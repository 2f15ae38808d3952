import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from genreflow.pipeline.models.blocks import ConvReluNormPool
from genreflow.pipeline.registry import load_keras_file


def _reference(block: ConvReluNormPool, input_shape: tuple[int, ...]) -> keras.Model:
    """The same weights in TF1's order: convolution, relu, normalisation of the full map, pooling."""
    x = keras.Input(input_shape)
    conv = layers.Conv2D(block.filters, block.kernel_size, padding=block.padding, activation="relu")
    norm = layers.BatchNormalization(epsilon=block.epsilon)
    pooled = layers.MaxPooling2D(block.pool_size, block.pool_strides)(norm(conv(x), training=False))
    model = keras.Model(x, pooled)
    conv.set_weights([block.kernel.numpy(), block.bias.numpy()])
    norm.set_weights([w.numpy() for w in (block.gamma, block.beta, block.moving_mean, block.moving_variance)])
    return model


@pytest.mark.parametrize(
    ("kernel", "pool", "strides", "padding"),
    [
        ((3, 3), (4, 1), (2, 2), "same"),  # vgg-mtt's first block: the stride-2 columns are never computed
        ((3, 3), (2, 2), (2, 2), "same"),
        ((7, 5), (1, 12), (1, 12), "valid"),  # musicnn's timbral filters, pooled over all frequencies
        ((8, 1), (1, 16), (1, 16), "same"),  # musicnn's temporal filters
    ],
)
def test_block_equals_normalising_before_pooling_in_value_and_gradient(kernel, pool, strides, padding):
    rng = np.random.default_rng(0)
    shape = (19, 16, 3)
    block = ConvReluNormPool(6, kernel, pool, strides, padding=padding)
    block.build((None, *shape))
    gamma = rng.normal(0, 1, 6)
    gamma[:3] = -np.abs(gamma[:3])  # both signs of scale, as the shipped checkpoints have
    block.set_weights([
        rng.normal(0, 0.5, block.kernel.shape), rng.normal(0, 0.5, 6),
        gamma, rng.normal(0, 1, 6), rng.normal(0, 1, 6), rng.uniform(0.1, 2, 6),
    ])  # fmt: skip
    reference = _reference(block, shape)
    x = tf.constant(rng.normal(0, 1, (2, *shape)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        ours, theirs = block(x), reference(x)
    assert ours.shape == theirs.shape == block.compute_output_shape((2, *shape))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for mine, other in ((block.kernel, reference.layers[1].kernel), (block.bias, reference.layers[1].bias)):
        np.testing.assert_allclose(tape.gradient(ours, mine), tape.gradient(theirs, other), atol=1e-4)
    assert [w.name for w in block.trainable_weights] == ["kernel", "bias"]  # the statistics stay frozen


def test_block_saves_and_loads_in_safe_mode(tmp_path):
    x = keras.Input((10, 8, 1))
    model = keras.Model(x, ConvReluNormPool(4, (3, 3), (2, 2), norm_scope="batch_normalization_1")(x))
    batch = np.random.default_rng(1).normal(size=(2, 10, 8, 1)).astype(np.float32)
    model.save(tmp_path / "block.keras")
    loaded = load_keras_file(tmp_path / "block.keras")
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0))
    assert loaded.layers[1].checkpoint_scopes["gamma"] == "batch_normalization_1"
