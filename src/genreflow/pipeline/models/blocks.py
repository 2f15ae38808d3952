"""Keras layers the pretrained musicnn taggers and the ImageNet backbones are built from (registered:
safe-mode loading finds them)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

NORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


@keras.saving.register_keras_serializable(package="genreflow")
class ConvReluNormPool(layers.Layer):
    """``max_pool(batch_norm(relu(conv(x) + bias)))`` with frozen normalisation, as the musicnn taggers
    compute each convolution, with the normalisation folded into the convolution and only a clamp
    left on the pooled map (4 to 96 times smaller than the full one TF1 normalised).

    Frozen normalisation is a per-channel map ``a·z + c``, so with ``u = conv(x) + bias``:
    ``a·relu(u) + c = max(a·u + c, c)`` where ``a ≥ 0`` and ``min(a·u + c, c)`` where ``a < 0``.
    ``a·u + c`` is one convolution (kernel times ``a``, bias ``a·bias + c``), and clamping at ``c``
    is increasing, so it commutes with max-pooling: pool first, clamp after. The result is the same
    function up to float rounding. The full-size map passes through the convolution and the pool
    only, and rows a strided pool skips are not computed. The normalisation weights never train
    (they are the pretraining's statistics); the kernel and bias do when the layer is trainable.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: tuple[int, int],
        pool_size: tuple[int, int],
        pool_strides: tuple[int, int] | None = None,
        padding: str = "same",
        norm_scope: str = "",
        epsilon: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.padding = filters, tuple(kernel_size), padding
        self.pool_size, self.pool_strides = tuple(pool_size), tuple(pool_strides or pool_size)
        self.norm_scope, self.epsilon = norm_scope, epsilon

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(shape=(*self.kernel_size, input_shape[-1], self.filters), name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")
        for name, initializer in zip(NORM_WEIGHTS, ("ones", "zeros", "zeros", "ones"), strict=True):
            setattr(self, name, self.add_weight(shape=(self.filters,), name=name, initializer=initializer,
                                                trainable=False))  # fmt: skip

    @property
    def checkpoint_scopes(self) -> dict[str, str]:
        """The TF1 variable scope of each weight: the convolution's is the layer's own name."""
        return {name: self.norm_scope for name in NORM_WEIGHTS}

    def call(self, inputs: Any) -> Any:
        scale = self.gamma * ops.rsqrt(self.moving_variance + self.epsilon)
        shift = self.beta - self.moving_mean * scale
        # A pool one position wide that strides reads every s-th row only: convolve at those alone.
        conv_strides = tuple(t if p == 1 else 1 for p, t in zip(self.pool_size, self.pool_strides, strict=True))
        pool_strides = tuple(1 if p == 1 else t for p, t in zip(self.pool_size, self.pool_strides, strict=True))
        padding = self.padding
        if padding == "same" and max(conv_strides) > 1:  # strided 'same' would centre on other rows
            inputs = ops.pad(inputs, [(0, 0)] + [((k - 1) // 2, k // 2) for k in self.kernel_size] + [(0, 0)])
            padding = "valid"
        convolved = ops.conv(inputs, self.kernel * scale, strides=conv_strides, padding=padding)
        normalised = ops.max_pool(convolved, self.pool_size, pool_strides) + (self.bias * scale + shift)
        floor = ops.where(scale >= 0, shift, -float("inf"))  # relu's zero, normalised
        ceiling = ops.where(scale < 0, shift, float("inf"))
        return ops.minimum(ops.maximum(normalised, floor), ceiling)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch, *spatial, _ = input_shape
        if self.padding == "valid":
            spatial = [None if s is None else s - k + 1 for s, k in zip(spatial, self.kernel_size, strict=True)]
        pooled = [None if s is None else (s - p) // t + 1
                  for s, p, t in zip(spatial, self.pool_size, self.pool_strides, strict=True)]  # fmt: skip
        return (batch, *pooled, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "pool_size": self.pool_size,
            "pool_strides": self.pool_strides,
            "padding": self.padding,
            "norm_scope": self.norm_scope,
            "epsilon": self.epsilon,
        }


# keras.applications modules whose own ``preprocess_input`` a :class:`SpectrogramImage` applies
IMAGE_PREPROCESSING = ("vgg16", "resnet50", "mobilenet_v2", "inception_v3")


@keras.saving.register_keras_serializable(package="genreflow")
class SpectrogramImage(layers.Layer):
    """A spectrogram patch ``(batch, bins, frames, 1)`` as the RGB image an ImageNet backbone was trained on:
    scaled per patch to 0–255 (the picture of a spectrogram seed 000 fed its VGG16), copied to three
    channels, then put through ``keras.applications.<application>.preprocess_input`` (BGR and mean
    subtraction for VGG16/ResNet50, scaling to [-1, 1] for MobileNetV2/InceptionV3).

    A registered layer rather than a ``Lambda``: a saved model loads in Keras safe mode with nothing else.
    """

    def __init__(self, application: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if application not in IMAGE_PREPROCESSING:
            raise ValueError(f"application must be one of {IMAGE_PREPROCESSING}, got {application!r}")
        self.application = application

    def call(self, inputs: Any) -> Any:
        low = ops.min(inputs, axis=(1, 2, 3), keepdims=True)
        high = ops.max(inputs, axis=(1, 2, 3), keepdims=True)
        pixels = 255.0 * (inputs - low) / ops.maximum(high - low, 1e-6)
        preprocess = getattr(keras.applications, self.application).preprocess_input
        return preprocess(ops.concatenate([pixels, pixels, pixels], axis=-1))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "application": self.application}
