"""Names that become paths (a model's name and version): one pattern, checked where they enter.

Light on purpose (no numpy): the CLI checks them while parsing, the registry again before any path.
"""

from __future__ import annotations

import re

from .errors import ParameterError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # no separators, no "..", nothing hidden, never empty
NAME_RULE = "letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(name: str, *, what: str = "model name") -> str:
    """``name`` when it is safe as one path segment.

    Raises
    ------
    ParameterError
        Empty, or with a character outside :data:`NAME` (``/``, a space), or starting with ``.``.

    Examples
    --------
    >>> check_name("genre-2026.v1")
    'genre-2026.v1'
    """
    if not NAME.fullmatch(name):
        raise ParameterError(f"{what} {name!r} is not allowed: use {NAME_RULE}")
    return name


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME[@VERSION]`` as its checked name and version (``""`` when none is given).

    Raises
    ------
    ParameterError
        The name or the version is not a safe name.
    """
    name, _, version = spec.partition("@")
    check_name(name)
    if version:
        check_name(version, what="model version")
    return name, version
