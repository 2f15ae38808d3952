"""The model registry: ``<root>/models/<name>/<version>/`` plus a ``production`` pointer per name.

A version folder is complete once its ``card.json`` exists (written last), so a crash mid-way
never lists a half-written model. Versions are UTC timestamps, so they sort in creation order.
Models load with Keras' safe mode: a model file cannot run arbitrary code. A file whose config holds
code is refused earlier too, when its version is resolved (:func:`require_safe_model`, no TensorFlow):
``score`` plans and ``predict``, ``models show`` and ``promote`` stop with one line before any work.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import GenreflowError
from .names import check_name, split_spec
from .store import StoreLayout
from .training.config import PRODUCTION
from .uri import filesystem, is_remote, join

CARD = "card.json"
MODEL = "model.keras"
# Config entries that carry or fetch code: a Python lambda's bytecode, a Lambda layer (any function),
# a TFSMLayer (a TensorFlow SavedModel's graph). Keras' safe mode refuses them on load; genreflow
# builds none of them, so it refuses them before Keras is even imported.
CODE_CLASSES = {"__lambda__": "a Python lambda", "Lambda": "a Lambda layer", "TFSMLayer": "a TFSMLayer"}


class RegistryError(GenreflowError):
    """No such model or version, or a malformed registry entry."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def new_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def register(layout: StoreLayout, name: str, staged: Path, card: dict[str, Any]) -> ModelRef:
    """Publish the files in ``staged`` as a new version of ``name``; the card goes last."""
    check_name(name)
    version = new_version()
    (staged / CARD).write_text(json.dumps({**card, "name": name, "version": version}, indent=2, default=str))
    target = layout.model_dir(name, version)
    if is_remote(target):
        fs, path = filesystem(target, layout.storage_options)
        for file in sorted(staged.rglob("*"), key=lambda p: p.name == CARD):
            if file.is_file():
                fs.put_file(str(file), f"{path}/{file.relative_to(staged).as_posix()}")
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, f"{target}.partial")
        os.replace(f"{target}.partial", target)
    return ModelRef(name, version)


def list_models(layout: StoreLayout) -> list[dict[str, Any]]:
    """One entry per complete version: name, version, production flag and headline metrics."""
    fs, root = filesystem(layout.models, layout.storage_options)
    if not fs.exists(root):
        return []
    entries = []
    for name_dir in sorted(fs.ls(root, detail=False)):
        name = name_dir.rstrip("/").rsplit("/", 1)[-1]
        production = _read_production(fs, name_dir)
        for version_dir in sorted(fs.ls(name_dir, detail=False)):
            card_path = f"{version_dir}/{CARD}"
            if not fs.isdir(version_dir) or not fs.exists(card_path):
                continue
            card = json.loads(fs.cat_file(card_path))
            entries.append({
                "name": name,
                "version": card["version"],
                "production": card["version"] == production,
                "architecture": card.get("architecture"),
                **{k: card.get("metrics", {}).get(k) for k in ("accuracy", "top3_accuracy", "macro_f1")},
            })  # fmt: skip
    return entries


def resolve(layout: StoreLayout, spec: str) -> ModelRef:
    """``name``, ``name@version`` or ``name@production``; a bare name means its production version,
    else its newest."""
    name, version = split_spec(spec)
    versions = [e["version"] for e in list_models(layout) if e["name"] == name]
    if not versions:
        raise RegistryError(f"{layout.models}: no model named {name!r} (see `genreflow models list`)")
    if version in ("", PRODUCTION):
        fs, root = filesystem(layout.model_dir(name), layout.storage_options)
        production = _read_production(fs, root)
        if production is None and version == PRODUCTION:
            raise RegistryError(f"{name}: no version is promoted to production")
        version = production or versions[-1]
    if version not in versions:
        raise RegistryError(f"{name}: no version {version!r}; versions: {', '.join(versions)}")
    ref = ModelRef(name, version)
    require_safe_model(layout, ref)
    return ref


def require_safe_model(layout: StoreLayout, ref: ModelRef) -> None:
    """Raise unless the version's ``model.keras`` is a Keras archive whose config carries no code.

    Reads only the archive's ``config.json`` (a few range requests on S3), without Keras.

    Raises
    ------
    RegistryError
        Naming the file and what in it is refused (or why it does not read).
    """
    source = join(layout.model_dir(ref.name, ref.version), MODEL)
    fs, path = filesystem(source, layout.storage_options)
    try:
        with fs.open(path, "rb") as file:
            _refuse_code(file, source)
    except FileNotFoundError:
        raise RegistryError(f"{source}: missing (the version has a card but no model)") from None


def read_card(layout: StoreLayout, ref: ModelRef) -> dict[str, Any]:
    fs, path = filesystem(join(layout.model_dir(ref.name, ref.version), CARD), layout.storage_options)
    return json.loads(fs.cat_file(path))


def read_labels(layout: StoreLayout, ref: ModelRef) -> list[str]:
    """The class names of a version, in the order of the model's outputs."""
    fs, path = filesystem(join(layout.model_dir(ref.name, ref.version), "labels.json"), layout.storage_options)
    return list(json.loads(fs.cat_file(path)))


def promote(layout: StoreLayout, spec: str) -> ModelRef:
    """Make ``spec`` the version nightly scoring uses for its name."""
    ref = resolve(layout, spec if "@" in spec else f"{spec}@")
    pointer = join(layout.model_dir(ref.name), PRODUCTION)
    fs, path = filesystem(pointer, layout.storage_options)
    if is_remote(pointer):  # one PUT replaces the object whole
        fs.pipe_file(path, ref.version.encode())
    else:
        staged = f"{path}.tmp"
        Path(staged).write_text(ref.version)
        os.replace(staged, path)
    return ref


def load_model(layout: StoreLayout, ref: ModelRef) -> Any:
    """The registered Keras model, loaded in safe mode."""
    source = join(layout.model_dir(ref.name, ref.version), MODEL)
    if not is_remote(source):
        return load_keras_file(source)
    fs, path = filesystem(source, layout.storage_options)
    with tempfile.TemporaryDirectory(prefix="genreflow-model-") as tmp:
        local = Path(tmp) / MODEL
        fs.get_file(path, str(local))
        return load_keras_file(local)


def load_keras_file(path: str | Path) -> Any:
    """A ``.keras`` file in safe mode: no code from the file runs, only layers genreflow registers.

    Raises
    ------
    RegistryError
        The file holds code (:data:`CODE_CLASSES`), or Keras' safe mode refuses it; the message names
        the file and Keras' reason in one line.
    """
    with open(path, "rb") as file:
        _refuse_code(file, str(path))
    import keras

    from .models import blocks  # noqa: F401  registers the pretrained taggers' layers

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError) as error:  # safe mode's refusals, and configs Keras cannot rebuild
        innermost = str(error).rsplit("Exception encountered:", 1)[-1]  # Keras nests one per enclosing layer
        reason = " ".join(innermost.split()).split(". ")[0]
        raise RegistryError(f"{path}: cannot load in Keras safe mode: {reason}") from None


def _refuse_code(file: IO[bytes], source: str) -> None:
    """Raise :class:`RegistryError` when the ``.keras`` archive ``file`` is unreadable or its config
    holds one of :data:`CODE_CLASSES`."""
    try:
        with zipfile.ZipFile(file) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise RegistryError(f"{source}: not a Keras model archive ({error})") from None
    found = sorted({CODE_CLASSES[name] for name in _class_names(config) if name in CODE_CLASSES})
    if found:
        raise RegistryError(
            f"{source}: refused: its config holds {' and '.join(found)}, code that would run on load "
            "(genreflow loads models only in Keras safe mode)"
        )


def _class_names(node: Any) -> Iterator[str]:
    """Every ``class_name`` in a Keras config, however deeply nested."""
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str):
            yield node["class_name"]
        for value in node.values():
            yield from _class_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_names(value)


def _read_production(fs: Any, name_dir: str) -> str | None:
    path = f"{name_dir.rstrip('/')}/{PRODUCTION}"
    return fs.cat_file(path).decode().strip() if fs.exists(path) else None
