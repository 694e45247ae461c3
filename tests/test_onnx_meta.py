"""The shared readers of a model's metadata contract: defaults, required keys, errors that name the key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fusion.onnx_meta import meta_choice, meta_integer, meta_number, meta_size_hw

META = {"a.rate": "29.97", "a.chunk": "160", "a.colour": "YUV", "a.size": "36x48", "a.bad": "nan"}


def test_values_are_read_and_absent_keys_take_their_default() -> None:
    assert meta_number(META, "a.rate") == pytest.approx(29.97)
    assert meta_number(META, "a.missing", 30.0) == 30.0
    assert meta_integer(META, "a.chunk") == 160 and meta_integer(META, "a.missing", 8) == 8
    assert meta_choice(META, "a.colour", ("yuv", "rgb"), "rgb") == "yuv"  # compared in lower case
    assert meta_choice(META, "a.missing", ("yuv", "rgb"), "rgb") == "rgb"
    assert meta_size_hw(META, "a.size") == (36, 48) and meta_size_hw(META, "a.missing") is None


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda: meta_number(META, "a.missing"), "metadata lacks a.missing"),
        (lambda: meta_number(META, "a.bad"), "a.bad must be finite, got 'nan'"),
        (lambda: meta_number(META, "a.colour"), "a.colour must be a number, got 'YUV'"),
        (lambda: meta_integer(META, "a.rate"), "a.rate must be an integer, got '29.97'"),
        (lambda: meta_choice(META, "a.colour", ("rgb", "bgr"), "rgb"), "a.colour must be one of rgb, bgr, got 'yuv'"),
        (lambda: meta_size_hw({"s": "36 by 36"}, "s"), "s must be HxW, got '36 by 36'"),
        (lambda: meta_size_hw({"s": "0x36"}, "s"), "s must be positive"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_key_and_the_value(read: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read()
