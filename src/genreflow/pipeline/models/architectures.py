"""Named architectures: what each reads from the store and how its Keras model is built.

Every model takes 3-s patches of stored feature sets (frequency bins × frames, exactly as stored)
and returns class probabilities; any per-model preparation (normalisation, MFCCs, 3-channel images)
is a layer inside the model, so a registered ``model.keras`` needs nothing but store patches.

=====================  =====================  =============================================
name                   input                  from
=====================  =====================  =============================================
musicnn-msd/-mtt       musicnn96              pretrained musicnn (every depth) + head; seed 000's recipe
vgg-msd/-mtt           musicnn96              pretrained musicnn VGG + head
*-linear               musicnn96              frozen features of every depth → logistic regression
auto                   musicnn96              the *-linear probe of lowest cross-validated log loss
cnn1, cnn2             mel128                 seed 001: one / two conv-pool blocks
cnn2-stft              stft512                seed 002: cnn2 on the linear-frequency spectrogram
rnn-mfcc               mel128 → 20 MFCCs      seed 003: recurrent net on MFCC sequences
mlp-mfcc               mel128 → MFCC stats    seed 003: MLP on MFCC means and deviations
vgg16, resnet50, ...   mel128 as an image     seeds 000/002/004: keras.applications (ImageNet file or random)
fusion                 mel128 + wavelet       seed 004: late fusion of two CNN branches
=====================  =====================  =============================================
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..features import get_feature_set
from ..training.config import AUTO, AUTO_CANDIDATES
from . import musicnn

SECONDS_PER_PATCH = 3.0
# Moving statistics of the BatchNormalization layers trained here, as inference reads them, follow
# about the last 10 steps (PyTorch's default) rather than Keras' 100: a small catalogue gives a few
# steps an epoch (72 six-second tracks: 3), and after 24 steps at 0.99 the input standardisation
# still held 79 % of its initial mean 0 and variance 1 against dB values near -40, so every
# from-scratch CNN scored at chance at inference though it had learned in training mode.
BN_MOMENTUM = 0.9


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
    probe_of : tuple of str
        A linear probe: the pretrained taggers whose frozen features (side by side, in this order)
        a scikit-learn classifier reads instead of gradient training.
    """

    name: str
    inputs: tuple[str, ...]
    patch_frames: tuple[int, ...]
    build: Callable[..., Any]
    pretrained: str | None = None
    probe_of: tuple[str, ...] = ()
    description: str = ""

    @property
    def linear_probe(self) -> bool:
        return bool(self.probe_of)

    @property
    def input_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(bins, frames)`` of each input patch, as the store holds them."""
        return tuple(
            (get_feature_set(name).n_bins, frames) for name, frames in zip(self.inputs, self.patch_frames, strict=True)
        )


def _normalised(x: Any, name: str) -> Any:
    """Learned input standardisation (a BatchNormalization over the frequency axis' values)."""
    from keras import layers

    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_input_norm")(x)


# TrainConfig.head → hidden Dense widths and the dropout after each (None: the architecture's own)
HEAD_LAYERS: dict[str, tuple[tuple[int, ...], float | None]] = {
    "softmax": ((), None),
    "dense256": ((256,), None),
    "dense256x2": ((256, 256), 0.2),
    "deep5": ((256, 128, 64, 32, 16), 0.2),
}


def _head(features: Any, n_classes: int, *, head: str = "softmax", dropout: float = 0.5, name: str = "head") -> Any:
    """The classifier on a backbone's features (:data:`HEAD_LAYERS`), ending in the ``head_softmax``
    layer: for the ``softmax`` head that layer alone, which a linear probe's solution fills."""
    from keras import layers

    widths, rate = HEAD_LAYERS[head]
    x = features
    for i, width in enumerate(widths, start=1):
        x = layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dropout(dropout if rate is None else rate, name=f"{name}_dropout{i}")(x)
    if not widths:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name=f"{name}_softmax", dtype="float32")(x)


def build_pretrained_transfer(
    arch: Architecture, n_classes: int, *, load_weights: bool = True, head: str = "softmax", **_: Any
) -> Any:
    """musicnn/vgg backbone (frozen; :func:`unfreeze_top` opens its top) with a new head, on the
    features the linear probe of the same backbone reads, so a ``softmax`` head can start from its solution."""
    backbone = musicnn.transfer_features_model(arch.pretrained, load_weights=load_weights)
    return _on_store_patches(backbone, n_classes, arch, head=head)


def _on_store_patches(backbone: Any, n_classes: int, arch: Architecture, *, head: str = "softmax") -> Any:
    """A frozen musicnn-family backbone read from store patches, with a new head."""
    import keras
    from keras import layers

    backbone.trainable = False
    patches, frames_first = musicnn.store_patches()
    features = backbone(frames_first)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(features), n_classes, head=head),
                       name=arch.name)  # fmt: skip


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


def build_small_cnn(arch: Architecture, n_classes: int, *, blocks: int, head: str = "softmax", **_: Any) -> Any:
    """Seed 001: conv-pool blocks with BatchNorm and dropout, then a dense layer."""
    import keras
    from keras import layers

    bins, frames = arch.input_shapes[0]
    patches = keras.Input((bins, frames), name="mel128")
    x = layers.Reshape((bins, frames, 1), name="image")(patches)
    x = _normalised(x, "mel128")
    for block in range(blocks):
        x = layers.Conv2D(32 * 2**block, 3, padding="same", activation="relu", name=f"conv{block + 1}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{block + 1}")(x)
        x = layers.MaxPooling2D(4 if blocks == 1 else 3, name=f"pool{block + 1}")(x)
        x = layers.Dropout(0.25, name=f"dropout{block + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes, head=head), name=arch.name)


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


def build_rnn_mfcc(arch: Architecture, n_classes: int, *, head: str = "softmax", **_: Any) -> Any:
    """Seed 003: two LSTM layers over the MFCC sequence of a patch."""
    import keras
    from keras import layers

    patches = keras.Input(arch.input_shapes[0], name="mel128")
    x = layers.LayerNormalization(name="mfcc_norm")(_mfcc(patches, "mfcc"))
    x = layers.LSTM(64, return_sequences=True, name="lstm1")(x)
    x = layers.LSTM(64, name="lstm2")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    embedding = layers.Identity(name="embedding")(x)
    return keras.Model(patches, _head(embedding, n_classes, head=head, dropout=0.3), name=arch.name)


def build_mlp_mfcc(arch: Architecture, n_classes: int, *, head: str = "softmax", **_: Any) -> Any:
    """Seed 003: an MLP on tabular MFCC statistics (mean and standard deviation per coefficient)."""
    import keras
    from keras import layers

    patches = keras.Input(arch.input_shapes[0], name="mel128")
    mfcc = _mfcc(patches, "mfcc")
    mean = layers.GlobalAveragePooling1D(name="mfcc_mean")(mfcc)
    centred = layers.Subtract(name="mfcc_centred")([mfcc, layers.RepeatVector(arch.patch_frames[0])(mean)])
    deviation = layers.GlobalAveragePooling1D(name="mfcc_var")(layers.Multiply()([centred, centred]))
    x = layers.Concatenate(name="mfcc_stats")([mean, deviation])
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stats_norm")(x)
    for i, units in enumerate((256, 128), start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(0.3, name=f"dropout{i}")(x)
    embedding = layers.Identity(name="embedding")(x)
    return keras.Model(patches, _head(embedding, n_classes, head=head, dropout=0.2), name=arch.name)


# keras.applications class, the file name Keras caches its ImageNet no-top weights under, and the
# keras.applications module whose preprocess_input it was trained with
IMAGE_BACKBONES = {
    "vgg16": ("VGG16", "vgg16_weights_*_notop.h5", "vgg16"),
    "resnet50": ("ResNet50", "resnet50_weights_*_notop.h5", "resnet50"),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2_weights_*_1.0_*_no_top.h5", "mobilenet_v2"),
    "inceptionv3": ("InceptionV3", "inception_v3_weights_*_notop.h5", "inception_v3"),
}
RANDOM_INIT = "random init"


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


def initial_weights(arch: Architecture, weights: Path | None) -> dict[str, Any]:
    """What the backbone starts from, as the card records it: ``pretrained`` (whether seed 000's freeze,
    head, unfreeze recipe applies) and ``source``: the musicnn checkpoint, an ImageNet file with its
    sha256, or random init.

    Raises
    ------
    ParameterError
        ``weights`` for an architecture that takes none, or a file that does not exist.
    """
    if weights is not None and arch.name not in IMAGE_BACKBONES:
        raise ParameterError(f"--weights is for the keras.applications backbones ({', '.join(IMAGE_BACKBONES)})")
    if arch.pretrained or arch.linear_probe:
        taggers = ", ".join(arch.probe_of or (str(arch.pretrained),))
        return {"pretrained": True, "source": f"musicnn 0.1.0 checkpoints: {taggers} (sha256-checked)"}
    found = imagenet_weights(arch.name, weights) if arch.name in IMAGE_BACKBONES else None
    if found is None:
        return {"pretrained": False, "source": RANDOM_INIT}
    digest = hashlib.sha256(Path(found).read_bytes()).hexdigest()
    return {"pretrained": True, "source": found, "sha256": digest}


def build_image_transfer(
    arch: Architecture, n_classes: int, *, weights: Path | None = None, head: str = "softmax", **_: Any
) -> Any:
    """A ``keras.applications`` backbone on the mel patch as an image, through the backbone's own
    ``preprocess_input`` (:class:`~.blocks.SpectrogramImage`), seeds 000/002/004.

    With ImageNet weights (``weights``, else the Keras cache) the backbone starts frozen, for seed
    000's recipe (head, then :func:`unfreeze_top`); from random init there is nothing to keep and
    the whole network trains.
    """
    import keras
    from keras import layers

    from .blocks import SpectrogramImage

    bins, frames = arch.input_shapes[0]
    class_name, _, module = IMAGE_BACKBONES[arch.name]
    size = 75 if arch.name == "inceptionv3" else 32
    patches = keras.Input((bins, frames), name="mel128")
    x = layers.Reshape((bins, frames, 1), name="image")(patches)
    x = SpectrogramImage(module, name="rgb")(x)
    if frames < size:
        x = layers.ZeroPadding2D(((0, 0), (0, size - frames)), name="min_size_pad")(x)
    found = imagenet_weights(arch.name, weights)
    backbone = getattr(keras.applications, class_name)(include_top=False, weights=found, input_shape=x.shape[1:])
    backbone.name = "backbone"
    backbone.trainable = found is None
    x = layers.GlobalAveragePooling2D(name="pooled")(backbone(x))
    return keras.Model(patches, _head(layers.Identity(name="embedding")(x), n_classes, head=head), name=arch.name)


def build_fusion(arch: Architecture, n_classes: int, *, head: str = "softmax", **_: Any) -> Any:
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
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{feature_set}_bn{block}")(x)
            x = layers.MaxPooling2D(3, name=f"{feature_set}_pool{block}")(x)
        branches.append(layers.GlobalAveragePooling2D(name=f"{feature_set}_pooled")(x))
        inputs.append(patches)
    x = layers.Concatenate(name="fused")(branches)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    return keras.Model(inputs, _head(layers.Identity(name="embedding")(x), n_classes, head=head), name=arch.name)


def build_linear_probe(
    arch: Architecture,
    n_classes: int,
    *,
    load_weights: bool = True,
    backbones: Mapping[str, Any] | None = None,
    **_: Any,
) -> Any:
    """Frozen features from every depth of each tagger in ``arch.probe_of``
    (:func:`musicnn.transfer_features_model`, side by side) into a softmax layer whose weights a
    scikit-learn classifier sets.

    ``backbones`` (tagger name → its features model) reuses models already built, as a run that
    compares probes does, instead of loading the checkpoints again.
    """
    import keras
    from keras import layers

    built = dict(backbones or {})
    for name in arch.probe_of:
        if name not in built:
            built[name] = probe_backbone(name, load_weights=load_weights)
    if len(arch.probe_of) == 1:
        backbone = built[arch.probe_of[0]]
    else:
        frames_first = keras.Input((musicnn.PATCH_FRAMES, musicnn.N_MELS), name="patches")
        features = layers.Concatenate(name="side_by_side")([built[name](frames_first) for name in arch.probe_of])
        backbone = keras.Model(frames_first, features, name="backbone")
    model = _on_store_patches(backbone, n_classes, arch)
    model.trainable = False
    return model


def probe_backbone(tagger: str, *, load_weights: bool = True) -> Any:
    """One tagger's frozen features model, named after it so that several fit side by side in a probe."""
    return musicnn.transfer_features_model(tagger, load_weights=load_weights, model_name=f"{tagger}_features")


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
            _arch(f"{name}-linear", ("musicnn96",), build_linear_probe, pretrained=name, probe_of=(name,))
            for name in ("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt")
        ),
        _arch("musicnn-vgg-msd-linear", ("musicnn96",), build_linear_probe, probe_of=("musicnn-msd", "vgg-msd")),
        _arch("cnn1", ("mel128",), lambda a, n, **k: build_small_cnn(a, n, blocks=1, **k)),
        _arch("cnn2", ("mel128",), lambda a, n, **k: build_small_cnn(a, n, blocks=2, **k)),
        # seed 002's comparison: the same network on the linear-frequency spectrogram
        _arch("cnn2-stft", ("stft512",), lambda a, n, **k: build_small_cnn(a, n, blocks=2, **k)),
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
        raise ParameterError(f"unknown backbone {name!r}; known: {AUTO}, {', '.join(ARCHITECTURES)}") from None


def backbone_candidates(name: str) -> tuple[Architecture, ...]:
    """What ``--backbone name`` fits: ``auto``'s candidate probes (one kept by cross-validation), else the one named.

    Raises
    ------
    ParameterError
        An unknown name.
    """
    return tuple(get_architecture(n) for n in (AUTO_CANDIDATES if name == AUTO else (name,)))
