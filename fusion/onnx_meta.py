"""Reading a model's contract from its ONNX metadata (``custom_metadata_map``: string keys and values).

Every learned model vitaledge runs (pulse, confidence, colouriser) states its contract there; these
read one key each, with a default where the contract has one, and refuse a malformed value with an
error that names the key and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["meta_choice", "meta_integer", "meta_number", "meta_size_hw"]


def meta_number(meta: Mapping[str, str], key: str, default: float | None = None) -> float:
    """A finite number; ``default`` when the key is absent (None: the key is required).

    Raises:
        ValueError: the key is required and absent, or its value is not a finite number.
    """
    if key not in meta:
        if default is None:
            raise ValueError(f"the model's metadata lacks {key}")
        return default
    try:
        value = float(meta[key])
    except ValueError as exc:
        raise ValueError(f"{key} must be a number, got {meta[key]!r}") from exc
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {meta[key]!r}")
    return value


def meta_integer(meta: Mapping[str, str], key: str, default: int | None = None) -> int:
    """An integer; ``default`` when the key is absent (None: the key is required).

    Raises:
        ValueError: the key is required and absent, or its value is not an integer.
    """
    if key not in meta:
        if default is None:
            raise ValueError(f"the model's metadata lacks {key}")
        return default
    try:
        return int(meta[key])
    except ValueError as exc:
        raise ValueError(f"{key} must be an integer, got {meta[key]!r}") from exc


def meta_choice(meta: Mapping[str, str], key: str, choices: Sequence[str], default: str) -> str:
    """One of ``choices`` (compared in lower case); ``default`` when the key is absent.

    Raises:
        ValueError: the value is not one of the choices.
    """
    value = meta.get(key, default).lower()
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def meta_size_hw(meta: Mapping[str, str], key: str) -> tuple[int, int] | None:
    """An ``HxW`` size (e.g. ``36x36``) as (height, width); None when the key is absent.

    Raises:
        ValueError: the value is not two positive integers joined by ``x``.
    """
    if key not in meta:
        return None
    try:
        h, w = (int(v) for v in meta[key].lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"{key} must be HxW, got {meta[key]!r}") from exc
    if h <= 0 or w <= 0:
        raise ValueError(f"{key} must be positive, got {meta[key]!r}")
    return h, w
