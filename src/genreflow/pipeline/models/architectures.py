"""Named architectures: what each reads from the store and how its Keras model is built.

Every model takes 3-s patches of stored feature sets (frequency bins × frames, exactly as stored)
and returns class probabilities; any per-model preparation (normalisation, MFCCs, 3-channel images)
is a layer inside the model, so a registered ``model.keras`` needs nothing but store patches.

=====================  =====================  =============================================
name                   input                  from
=====================  =====================  =============================================
musicnn-msd/-mtt       musicnn96              pretrained musicnn + head; seed 000's recipe
vgg-msd/-mtt           musicnn96              pretrained musicnn VGG + head
musicnn-*-linear       musicnn96              frozen features of every depth → logistic regression
cnn1, cnn2             mel128                 seed 001: one / two conv-pool blocks
rnn-mfcc               mel128 → 20 MFCCs      seed 003: recurrent net on MFCC sequences
mlp-mfcc               mel128 → MFCC stats    seed 003: MLP on MFCC means and deviations
vgg16, resnet50, ...   mel128 as 3 channels   seeds 000/002/004: keras.applications transfer
fusion                 mel128 + wavelet       seed 004: late fusion of two CNN branches
=====================  =====================  =============================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..features import get_feature_set
from . import musicnn

SECONDS_PER_PATCH = 3.0


@dataclass(frozen=True)
class Architecture:
    """A buildable model family.

    Attributes
    ----------
    inputs : tuple of str
        Feature sets read from the store, in the order of the model's inputs.
    patch_frames : tuple of int
        Frames per patch of each input (3 s at that set's hop).
    pretrained : str or None
        The musicnn checkpoint the backbone starts from.
    linear_probe : bool
        Fit a scikit-learn classifier on frozen embeddings instead of gradient training.
    """

    name: str
    inputs: tuple[str, ...]
    patch_frames: tuple[int, ...]
    build: Callable[..., Any]
    pretrained: str | None = None
    linear_probe: bool = False
    description: str = ""

    @property
    def input_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(bins, frames)`` of each input patch, as the store holds them."""
        return tuple(
            (get_feature_set(name).n_bins, frames) for name, frames in zip(self.inputs, self.patch_frames, strict=True)
        )


def _normalised(x: Any, name: str) -> Any:
    """Learned input standardisation (a BatchNormalization over the frequency axis' values)."""
    from keras import layers

    return layers.BatchNormalization(name=f"{name}_input_norm")(x)


def _head(features: Any, n_classes: int, *, dropout: float = 0.5, name: str = "head") -> Any:
    from keras import layers

    x = layers.Dropout(dropout, name=f"{name}_dropout")(features)
    return layers.Dense(n_classes, activation="softmax", name=f"{name}_softmax", dtype="float32")(x)


def build_pretrained_transfer(arch: Architecture, n_classes: int, *, load_weights: bool = True, **_: Any) -> Any:
    """musicnn/vgg backbone (frozen; :func:`unfreeze_top` opens its top) with a new softmax head."""
    return _on_store_patches(musicnn.embedding_model(arch.pretrained, load_weights=load_weights), n_classes, arch)


def _on_store_patches(backbone: Any, n_classes: int, arch: Architecture) -> Any:
    """A frozen musicnn-family backbone read from store patches, with a new softmax head."""
    import keras
    from keras import layers

    backbone.trainable = False
    patches, frames_first = musicnn.store_patches()
    features = backbone(frames_first)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(features), n_classes), name=arch.name)


def unfreeze_top(model: Any, n_layers: int) -> None:
    """Seed 000's second phase: make the top ``n_layers`` weighted layers of the backbone trainable.

    BatchNormalization layers stay frozen (their statistics come from the pretraining data).
    """
    from keras import layers

    backbone = model.get_layer("backbone")
    backbone.trainable = True
    weighted = [layer for layer in backbone.layers if layer.weights]
    for layer in weighted:
        layer.trainable = False
    for layer in [w for w in weighted if not isinstance(w, layers.BatchNormalization)][-n_layers:]:
        layer.trainable = True


def build_small_cnn(arch: Architecture, n_classes: int, *, blocks: int, **_: Any) -> Any:
    """Seed 001: conv-pool blocks with BatchNorm and dropout, then a dense layer."""
    import keras
    from keras import layers

    bins, frames = arch.input_shapes[0]
    patches = keras.Input((bins, frames), name="mel128")
    x = layers.Reshape((bins, frames, 1), name="image")(patches)
    x = _normalised(x, "mel128")
    for block in range(blocks):
        x = layers.Conv2D(32 * 2**block, 3, padding="same", activation="relu", name=f"conv{block + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{block + 1}")(x)
        x = layers.MaxPooling2D(4 if blocks == 1 else 3, name=f"pool{block + 1}")(x)
        x = layers.Dropout(0.25, name=f"dropout{block + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes), name=arch.name)


N_MFCC = 20


def _mfcc(mel_db: Any, name: str) -> Any:
    """MFCCs from stored dB mel bands: an orthonormal DCT-II over frequency, a fixed matrix."""
    from keras import layers

    bins = mel_db.shape[1]
    frames_first = layers.Permute((2, 1), name=f"{name}_frames_first")(mel_db)
    dct = layers.Dense(N_MFCC, use_bias=False, trainable=False, name=f"{name}_dct")
    out = dct(frames_first)
    dct.set_weights([dct_matrix(bins, N_MFCC).T])
    return out


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II rows (``scipy.fft.dct(x, norm="ortho")[:n_out]`` as a matrix)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def build_rnn_mfcc(arch: Architecture, n_classes: int, **_: Any) -> Any:
    """Seed 003: two LSTM layers over the MFCC sequence of a patch."""
    import keras
    from keras import layers

    patches = keras.Input(arch.input_shapes[0], name="mel128")
    x = layers.LayerNormalization(name="mfcc_norm")(_mfcc(patches, "mfcc"))
    x = layers.LSTM(64, return_sequences=True, name="lstm1")(x)
    x = layers.LSTM(64, name="lstm2")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes, dropout=0.3), name=arch.name)


def build_mlp_mfcc(arch: Architecture, n_classes: int, **_: Any) -> Any:
    """Seed 003: an MLP on tabular MFCC statistics (mean and standard deviation per coefficient)."""
    import keras
    from keras import layers

    patches = keras.Input(arch.input_shapes[0], name="mel128")
    mfcc = _mfcc(patches, "mfcc")
    mean = layers.GlobalAveragePooling1D(name="mfcc_mean")(mfcc)
    centred = layers.Subtract(name="mfcc_centred")([mfcc, layers.RepeatVector(arch.patch_frames[0])(mean)])
    deviation = layers.GlobalAveragePooling1D(name="mfcc_var")(layers.Multiply()([centred, centred]))
    x = layers.Concatenate(name="mfcc_stats")([mean, deviation])
    x = layers.BatchNormalization(name="stats_norm")(x)
    for i, units in enumerate((256, 128), start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(0.3, name=f"dropout{i}")(x)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes, dropout=0.2), name=arch.name)


# keras.applications class, and the file name Keras caches its ImageNet no-top weights under
IMAGE_BACKBONES = {
    "vgg16": ("VGG16", "vgg16_weights_*_notop.h5"),
    "resnet50": ("ResNet50", "resnet50_weights_*_notop.h5"),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2_weights_*_1.0_*_no_top.h5"),
    "inceptionv3": ("InceptionV3", "inception_v3_weights_*_notop.h5"),
}


def imagenet_weights(arch_name: str, weights: Path | None) -> str | None:
    """A local ImageNet weights file for ``keras.applications``: ``weights``, else the Keras cache, else None.

    Never a download: random init is the fallback.
    """
    if weights is not None:
        if not Path(weights).is_file():
            raise ParameterError(f"--weights {weights}: no such file")
        return str(weights)
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"  # where Keras keeps downloads
    found = sorted(cache.glob(IMAGE_BACKBONES[arch_name][1])) if cache.is_dir() else []
    return str(found[0]) if found else None


def build_image_transfer(arch: Architecture, n_classes: int, *, weights: Path | None = None, **_: Any) -> Any:
    """A ``keras.applications`` backbone on the mel patch as a 3-channel image (seeds 000/002/004)."""
    import keras
    from keras import layers

    bins, frames = arch.input_shapes[0]
    application = getattr(keras.applications, IMAGE_BACKBONES[arch.name][0])
    size = 75 if arch.name == "inceptionv3" else 32
    patches = keras.Input((bins, frames), name="mel128")
    x = layers.Reshape((bins, frames, 1), name="image")(patches)
    x = _normalised(x, "mel128")
    if frames < size:
        x = layers.ZeroPadding2D(((0, 0), (0, size - frames)), name="min_size_pad")(x)
    x = layers.Concatenate(name="rgb")([x, x, x])
    backbone = application(include_top=False, weights=imagenet_weights(arch.name, weights), input_shape=x.shape[1:])
    backbone.name = "backbone"
    x = layers.GlobalAveragePooling2D(name="pooled")(backbone(x))
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes), name=arch.name)


def build_fusion(arch: Architecture, n_classes: int, **_: Any) -> Any:
    """Seed 004: late fusion of a mel128 CNN branch and a wavelet CNN branch."""
    import keras
    from keras import layers

    branches, inputs = [], []
    for feature_set, (bins, frames) in zip(arch.inputs, arch.input_shapes, strict=True):
        patches = keras.Input((bins, frames), name=feature_set)
        x = layers.Reshape((bins, frames, 1), name=f"{feature_set}_image")(patches)
        x = _normalised(x, feature_set)
        for block in range(2):
            x = layers.Conv2D(32 * 2**block, 3, padding="same", activation="relu", name=f"{feature_set}_conv{block}")(x)
            x = layers.BatchNormalization(name=f"{feature_set}_bn{block}")(x)
            x = layers.MaxPooling2D(3, name=f"{feature_set}_pool{block}")(x)
        branches.append(layers.GlobalAveragePooling2D(name=f"{feature_set}_pooled")(x))
        inputs.append(patches)
    x = layers.Concatenate(name="fused")(branches)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    return keras.Model(inputs, _head(layers.Identity(name="embedding")(x), n_classes), name=arch.name)


def build_linear_probe(arch: Architecture, n_classes: int, *, load_weights: bool = True, **_: Any) -> Any:
    """Frozen features from every depth of the backbone (:func:`musicnn.transfer_features_model`)
    into a softmax layer whose weights a scikit-learn classifier sets."""
    backbone = musicnn.transfer_features_model(arch.pretrained, load_weights=load_weights)
    model = _on_store_patches(backbone, n_classes, arch)
    model.trainable = False
    return model


def _patch_frames(feature_set: str) -> int:
    """Frames in 3 s of ``feature_set``; musicnn96 patches are the 187 frames musicnn was trained on."""
    if feature_set == "musicnn96":
        return musicnn.PATCH_FRAMES
    fs = get_feature_set(feature_set)
    return int(np.ceil(SECONDS_PER_PATCH * fs.sample_rate / fs.hop_length))


def _arch(name: str, inputs: tuple[str, ...], build: Callable[..., Any], **kwargs: Any) -> Architecture:
    return Architecture(name, inputs, tuple(_patch_frames(i) for i in inputs), build, **kwargs)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        *(
            _arch(name, ("musicnn96",), build_pretrained_transfer, pretrained=name)
            for name in ("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt")
        ),
        *(
            _arch(f"{name}-linear", ("musicnn96",), build_linear_probe, pretrained=name, linear_probe=True)
            for name in ("musicnn-msd", "musicnn-mtt")
        ),
        _arch("cnn1", ("mel128",), lambda a, n, **k: build_small_cnn(a, n, blocks=1, **k)),
        _arch("cnn2", ("mel128",), lambda a, n, **k: build_small_cnn(a, n, blocks=2, **k)),
        _arch("rnn-mfcc", ("mel128",), build_rnn_mfcc),
        _arch("mlp-mfcc", ("mel128",), build_mlp_mfcc),
        *(_arch(name, ("mel128",), build_image_transfer) for name in IMAGE_BACKBONES),
        _arch("fusion", ("mel128", "wavelet"), build_fusion),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ParameterError(f"unknown backbone {name!r}; known: {', '.join(ARCHITECTURES)}") from None
