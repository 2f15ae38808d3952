import keras
import numpy as np
import pytest

from genreflow.pipeline.models.layers import FusedBatchNormalization


def _pair(shape, seed=0):
    """A Keras BatchNormalization and a fused one with the same non-trivial weights."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    weights = [
        rng.normal(1, 0.5, channels),  # gamma, some negative
        rng.normal(0, 1, channels),  # beta
        rng.normal(0, 1, channels),  # moving mean
        rng.uniform(0.1, 2, channels),  # moving variance
    ]
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls()
        layer.build((None, *shape))
        layer.set_weights([w.astype(np.float32) for w in weights])
        layers.append(layer)
    return layers, rng.normal(0, 2, (3, *shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(5, 7, 4), (9, 4), (4,)])
def test_fused_batch_norm_equals_keras_in_inference_and_training(shape):
    (plain, fused), x = _pair(shape)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)


def test_frozen_fused_batch_norm_passes_gradients_to_what_comes_before():
    import tensorflow as tf

    (plain, fused), x = _pair((5, 7, 4))
    plain.trainable = fused.trainable = False
    gradients = []
    for layer in (plain, fused):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=True) ** 2)
        gradients.append(tape.gradient(loss, inputs).numpy())
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-4, atol=1e-4)
