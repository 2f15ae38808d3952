"""The pretrained musicnn taggers (Pons & Serra, 2019) rebuilt in Keras 3, weights from the PyPI wheel.

``musicnn==0.1.0`` ships four TF1 checkpoints (MSD/MTT × musicnn/vgg) trained on 3-s log-mel patches
(16 kHz, 96 bands: our ``musicnn96`` feature set). Each Keras layer here carries the name of the TF1
variable scope it replaces (``conv2d_3``, ``batch_normalization_7``, ...), so loading is a name map;
a convolution that TF1 normalised and then pooled is one :class:`~.blocks.ConvReluNormPool`, which
reads both scopes and pools first. ``tests/pipeline/models/test_musicnn_port.py`` checks every tag
probability against the original graph.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenreflowError

PATCH_FRAMES = 187  # 3 s of musicnn96 frames: what every model was trained on
N_MELS = 96
MUSICNN_DIR_ENV = "GENREFLOW_MUSICNN_DIR"
INSTALL_HINT = "install the weights with `pip install --no-deps musicnn==0.1.0` (or `make setup`)"

MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)  # fmt: skip


@dataclass(frozen=True)
class PretrainedTagger:
    """One of the four checkpoints: its folder in the wheel, architecture, tags and file digests."""

    checkpoint: str
    architecture: str  # "musicnn" or "vgg"
    tags: tuple[str, ...]
    sha256: dict[str, str]
    # vgg only: (pool size, stride) of its five max-pools; the MSD and MTT releases differ
    vgg_pools: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()

    @property
    def embedding_size(self) -> int:
        """Width of the penultimate embedding (musicnn: the 200-unit dense; vgg: flattened pool5)."""
        return 200 if self.architecture == "musicnn" else 256


def _digests(data: str, index: str, meta: str) -> dict[str, str]:
    return {".data-00000-of-00001": data, ".index": index, ".meta": meta}


_MSD_VGG_POOLS = (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
_MTT_VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
PRETRAINED: dict[str, PretrainedTagger] = {
    "musicnn-msd": PretrainedTagger(
        "MSD_musicnn",
        "musicnn",
        MSD_TAGS,
        _digests(
            "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
            "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
            "046dc0f4f95374c3fc435a1c6619f6d1b9c82794ea2d2ef0a362a59630b5b1ec",
        ),
    ),
    "musicnn-mtt": PretrainedTagger(
        "MTT_musicnn",
        "musicnn",
        MTT_TAGS,
        _digests(
            "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
            "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
            "48f2b91a234a1feaaae6b084bd49668428cdfc54912805617582aa585daabb25",
        ),
    ),
    "vgg-msd": PretrainedTagger(
        "MSD_vgg",
        "vgg",
        MSD_TAGS,
        _digests(
            "9683d756b8311146534f333502ebf4a2a78a3e320c54ab0411dff6186d8375fc",
            "50e499238457558bba9f34f8b84d4afb8279afd43520cdf0a4fdf805a49c9ca3",
            "f2f4718d0e2d9ea54d97bac053ca2dc3fa237b6521913b3ebe01164300ad201b",
        ),
        _MSD_VGG_POOLS,
    ),
    "vgg-mtt": PretrainedTagger(
        "MTT_vgg",
        "vgg",
        MTT_TAGS,
        _digests(
            "458f5c8bcecc086a3bba3dce83809df6da6e0a3560a59ddd84711bf3d5fd8303",
            "4b0d3d2d02bbe0919c063c1fb74bfa9018ac3517e362d681b07444d4207a5f5f",
            "407ea5964eac3b053356d94be866da8b513778175216e741280a5c202cf9c8a4",
        ),
        _MTT_VGG_POOLS,
    ),
}


class WeightsError(GenreflowError):
    """The pretrained checkpoint is missing or is not the file musicnn 0.1.0 shipped."""


def checkpoint_dir(name: str) -> Path:
    """The verified checkpoint folder of ``name`` (``GENREFLOW_MUSICNN_DIR`` or the installed wheel).

    Raises
    ------
    WeightsError
        The folder or one of its files is missing, or a file's sha256 differs from the release.
    """
    tagger = _tagger(name)
    override = os.environ.get(MUSICNN_DIR_ENV)
    if override:
        root = Path(override)
    else:
        spec = importlib.util.find_spec("musicnn")
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"{name}: the musicnn package is not installed; {INSTALL_HINT}")
        root = Path(next(iter(spec.submodule_search_locations)))
    folder = root / tagger.checkpoint
    for suffix, expected in tagger.sha256.items():
        path = folder / suffix
        if not path.is_file():
            raise WeightsError(f"{path}: missing checkpoint file of {name}; {INSTALL_HINT}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise WeightsError(
                f"{path}: sha256 {digest[:16]}… is not musicnn 0.1.0's {expected[:16]}… (altered or "
                f"another release); {INSTALL_HINT}"
            )
    return folder


def _tagger(name: str) -> PretrainedTagger:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise GenreflowError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}") from None


def build_tagger(name: str, *, load_weights: bool = True) -> Any:
    """The Keras model of ``name``: patches ``(batch, frames, 96)`` → a dict of outputs.

    Outputs: ``tags`` (sigmoid probabilities, one per tag), ``embedding`` (the penultimate layer),
    ``mean_pool`` and ``max_pool``: musicnn's temporal pooling of its front- and mid-end features
    (753 each), vgg's global pooling of each of its five convolution blocks (5 × 128 each).
    musicnn models take any number of frames; vgg models exactly 187.
    """
    tagger = _tagger(name)
    if tagger.architecture == "musicnn":
        model = _build_musicnn(len(tagger.tags), name=name)
    else:
        model = _build_vgg(len(tagger.tags), tagger.vgg_pools, name=name)
    if load_weights:
        load_checkpoint(model, checkpoint_dir(name))
    return model


def embedding_model(name: str, *, load_weights: bool = True) -> Any:
    """The tagger cut at its penultimate layer: patches ``(batch, frames, 96)`` → embeddings."""
    import keras

    tagger = build_tagger(name, load_weights=load_weights)
    return keras.Model(tagger.input, tagger.output["embedding"], name="backbone")


def transfer_features_model(name: str, *, load_weights: bool = True, model_name: str = "backbone") -> Any:
    """What a linear probe reads: patches ``(batch, frames, 96)`` → every depth the tagger exposes.

    For musicnn models that is the max- and mean-pooled mid-end (753 each, itself the front end and
    the three mid-end layers side by side) and the penultimate layer (200): 1,706 values; for vgg
    models the max- and mean-pooled maps of its five blocks (640 each) and the flattened last pool
    (256): 1,536. Features concatenated across layers transfer to new music tasks better than the
    last layer alone (Choi et al., "Transfer learning for music classification and regression
    tasks", ISMIR 2017).
    """
    import keras
    from keras import layers

    tagger = build_tagger(name, load_weights=load_weights)
    depths = [tagger.output[key] for key in ("max_pool", "mean_pool", "embedding") if key in tagger.output]
    return keras.Model(tagger.input, layers.Concatenate(name="all_depths")(depths), name=model_name)


def tags_model(name: str) -> Any:
    """The tagger of ``name`` on store patches: ``(batch, 96, 187)`` → tag probabilities ``(batch, 50)``."""
    import keras

    patches, frames_first = store_patches()
    tags = build_tagger(name)(frames_first)["tags"]
    return keras.Model(patches, tags, name=f"{name}-tags")


def store_patches() -> tuple[Any, Any]:
    """A ``musicnn96`` store-patch input ``(batch, 96, 187)`` and the same patches frames-first, as
    the musicnn layers read them."""
    import keras
    from keras import layers

    patches = keras.Input((N_MELS, PATCH_FRAMES), name="musicnn96")
    return patches, layers.Permute((2, 1), name="frames_first")(patches)


def _build_musicnn(n_tags: int, *, name: str) -> Any:
    import keras
    from keras import layers

    from .blocks import ConvReluNormPool

    patches = keras.Input((None, N_MELS), name="patches")
    x = layers.Reshape((-1, N_MELS, 1), name="expand")(patches)
    x = layers.BatchNormalization(name="batch_normalization")(x)

    def pooled_over_frequency(inputs: Any, conv: str, bn: str, filters: int, kernel: tuple[int, int]) -> Any:
        same = kernel[1] == 1  # temporal filters pad 'same'; timbral ones pad time only, by hand
        width = N_MELS if same else N_MELS - kernel[1] + 1
        block = ConvReluNormPool(filters, kernel, (1, width), padding="same" if same else "valid", norm_scope=bn,
                                 name=conv)  # fmt: skip
        return layers.Reshape((-1, filters), name=f"{conv}_squeeze")(block(inputs))

    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="time_pad")(x)
    front = [
        pooled_over_frequency(padded, "conv2d", "batch_normalization_1", 204, (7, 38)),
        pooled_over_frequency(padded, "conv2d_1", "batch_normalization_2", 204, (7, 67)),
        pooled_over_frequency(x, "conv2d_2", "batch_normalization_3", 51, (128, 1)),
        pooled_over_frequency(x, "conv2d_3", "batch_normalization_4", 51, (64, 1)),
        pooled_over_frequency(x, "conv2d_4", "batch_normalization_5", 51, (32, 1)),
    ]
    frontend = layers.Concatenate(name="frontend")(front)  # (frames, 561)
    # Mid-end: TF1 ran (7 × width) 2-D convolutions over (frames, width, 1); a 1-D convolution over
    # (frames, width) with 3 frames of zero padding on each side is the same arithmetic.
    cnn1 = layers.Conv1D(64, 7, padding="same", activation="relu", name="conv2d_5")(frontend)
    cnn1 = layers.BatchNormalization(name="batch_normalization_6")(cnn1)
    cnn2 = layers.Conv1D(64, 7, padding="same", activation="relu", name="conv2d_6")(cnn1)
    cnn2 = layers.Add(name="residual_2")([layers.BatchNormalization(name="batch_normalization_7")(cnn2), cnn1])
    cnn3 = layers.Conv1D(64, 7, padding="same", activation="relu", name="conv2d_7")(cnn2)
    cnn3 = layers.Add(name="residual_3")([layers.BatchNormalization(name="batch_normalization_8")(cnn3), cnn2])
    midend = layers.Concatenate(name="midend")([frontend, cnn1, cnn2, cnn3])  # (frames, 753)

    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(midend)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(midend)
    # TF1 concatenated (753, 1) max and mean maps on the last axis and flattened: interleaved.
    width = midend.shape[-1]
    pooled = layers.Concatenate(name="pool_pairs")(
        [layers.Reshape((width, 1), name=f"{p.name}_column")(p) for p in (max_pool, mean_pool)]
    )
    pooled = layers.Flatten(name="pooled")(pooled)
    pooled = layers.BatchNormalization(name="batch_normalization_9")(pooled)
    hidden = layers.Dense(200, activation="relu", name="dense")(layers.Dropout(0.5, name="dropout")(pooled))
    embedding = layers.BatchNormalization(name="batch_normalization_10")(hidden)
    logits = layers.Dense(n_tags, name="dense_1")(layers.Dropout(0.5, name="dropout_1")(embedding))
    tags = layers.Activation("sigmoid", name="tags")(logits)
    outputs = {"tags": tags, "embedding": embedding, "mean_pool": mean_pool, "max_pool": max_pool}
    return keras.Model(patches, outputs, name=name)


def _build_vgg(n_tags: int, pools: tuple[tuple[tuple[int, int], tuple[int, int]], ...], *, name: str) -> Any:
    import keras
    from keras import layers

    from .blocks import ConvReluNormPool

    patches = keras.Input((PATCH_FRAMES, N_MELS), name="patches")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(patches)
    x = layers.BatchNormalization(name="batch_normalization")(x)
    blocks = []
    for i, (pool, stride) in enumerate(pools, start=1):
        if i > 1:
            x = layers.Dropout(0.25, name=f"dropout_{i - 1}")(x)
        x = ConvReluNormPool(128, (3, 3), pool, stride, norm_scope=f"batch_normalization_{i}", name=f"{i}CNN")(x)
        blocks.append(x)
    embedding = layers.Flatten(name="embedding")(x)
    logits = layers.Dense(n_tags, name="dense")(layers.Dropout(0.5, name="dropout_5")(embedding))
    tags = layers.Activation("sigmoid", name="tags")(logits)
    outputs = {"tags": tags, "embedding": embedding}
    for pooling, key in ((layers.GlobalMaxPooling2D, "max_pool"), (layers.GlobalAveragePooling2D, "mean_pool")):
        per_block = [pooling(name=f"{i}CNN_{key}")(b) for i, b in enumerate(blocks, start=1)]
        outputs[key] = layers.Concatenate(name=key)(per_block)
    return keras.Model(patches, outputs, name=name)


def load_checkpoint(model: Any, folder: Path) -> None:
    """Assign every weight of ``model`` from the TF1 checkpoint in ``folder`` (by layer name).

    Raises
    ------
    WeightsError
        A variable is missing or has another shape: the architecture does not match the checkpoint.
    """
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        scopes = getattr(layer, "checkpoint_scopes", {})  # a ConvReluNormPool spans two TF1 scopes
        for weight in layer.weights:
            key = f"{scopes.get(weight.name, layer.name)}/{weight.name}"  # kernel, bias, gamma, beta, ...
            if not reader.has_tensor(key):
                raise WeightsError(f"{folder}: checkpoint has no variable {key}")
            value = reader.get_tensor(key)
            if value.size != np.prod(weight.shape):
                raise WeightsError(f"{folder}: {key} has shape {value.shape}, the model expects {weight.shape}")
            values.append(value.reshape(weight.shape))  # Conv1D kernels drop TF1's unit width axis
        layer.set_weights(values)
