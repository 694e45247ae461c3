"""A pluggable ONNX colourisation step for greyscale (IR, mono) frames, its contract read from the model.

No colourisation model ships with vitaledge; any model that states this contract in its ONNX metadata
(``custom_metadata_map``) plugs in through ``heart_rate.greyscale.colouriser`` or ``vitaledge eval
acquisition --colouriser``:

- input: one tensor ``1×1×H×W`` float32. ``colourise.input``: ``grey`` (Rec. 709 luma, 0–255, the
  default) or ``lab_l`` (CIELAB L*, 0–100). ``colourise.mean`` (default 0) and ``colourise.scale``
  (default 1/255 for ``grey``, 1 for ``lab_l``): the model is fed (value − mean) · scale.
  ``colourise.size`` (``HxW``) when the input's spatial dimensions are not static.
- output: the first output, ``1×C×H'×W'`` float32. ``colourise.output``: ``rgb`` or ``bgr`` (C = 3,
  multiplied by ``colourise.output_scale``, default 255, to 0–255), or ``ab`` (C = 2, CIELAB a*, b*
  in their own units, joined to the frame's own L* at full resolution). Any H'×W' is resized to the frame.

The result always has the frame's size, so face boxes found on it are boxes in the frame.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from fusion.onnx_meta import meta_choice, meta_number, meta_size_hw

__all__ = ["OnnxColouriser"]

_INPUTS = ("grey", "lab_l")
_OUTPUTS = ("rgb", "bgr", "ab")


class OnnxColouriser:
    """Runs a colourisation model (contract in the module docstring) on greyscale frames.

    Args:
        session: an onnxruntime session (opened by edge/), or anything with the same calls.

    Raises:
        ValueError: the model's input, output or metadata breaks the contract; the message names the key.
    """

    def __init__(self, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError("a colouriser takes one 1×1×H×W input")
        channels = inputs[0].shape[1]
        if isinstance(channels, int) and channels != 1:
            raise ValueError(f"a colouriser's input has one channel, this one has {channels}")
        meta = dict(session.get_modelmeta().custom_metadata_map or {})
        self.input_kind = meta_choice(meta, "colourise.input", _INPUTS, "grey")
        self.output_kind = meta_choice(meta, "colourise.output", _OUTPUTS, "")
        size = meta_size_hw(meta, "colourise.size")
        if size is None:
            size = inputs[0].shape[2], inputs[0].shape[3]
            if not (isinstance(size[0], int) and isinstance(size[1], int)):
                raise ValueError("the input size is dynamic and colourise.size does not give it")
        h, w = size
        self.size_wh = (w, h)
        self._mean = meta_number(meta, "colourise.mean", 0.0)
        self._scale = meta_number(meta, "colourise.scale", 1 / 255 if self.input_kind == "grey" else 1.0)
        self._output_scale = meta_number(meta, "colourise.output_scale", 255.0)
        self._session = session
        self._input = str(inputs[0].name)

    def colourise(self, grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The BGR colourisation of an H×W uint8 luma image, at its size.

        Raises:
            ValueError: not an H×W uint8 image, or the model's output has the wrong channel count.
        """
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"colourise takes an H×W uint8 luma image, got {grey.shape} {grey.dtype}")
        height, width = grey.shape
        small = cv2.resize(grey, self.size_wh, interpolation=cv2.INTER_AREA).astype(np.float32)
        lab_l = self._lab_l(grey) if self.input_kind == "lab_l" or self.output_kind == "ab" else None
        value = small
        if lab_l is not None and self.input_kind == "lab_l":
            value = np.asarray(cv2.resize(lab_l, self.size_wh, interpolation=cv2.INTER_AREA), dtype=np.float32)
        blob = ((value - self._mean) * self._scale).astype(np.float32)[None, None]
        out = np.asarray(self._session.run(None, {self._input: blob})[0], dtype=np.float32)
        if out.ndim != 4 or out.shape[0] != 1:
            raise ValueError(f"a colouriser's output is 1×C×H×W, got {out.shape}")
        want = 2 if self.output_kind == "ab" else 3
        if out.shape[1] != want:
            raise ValueError(f"colourise.output {self.output_kind} needs {want} channels, got {out.shape[1]}")
        planes = [cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in out[0]]
        if self.output_kind == "ab":
            assert lab_l is not None
            lab = np.dstack([lab_l, planes[0], planes[1]]).astype(np.float32)
            bgr = cv2.cvtColor(lab, cv2.COLOR_Lab2BGR)  # float Lab → BGR in 0..1
            return np.asarray(np.clip(np.rint(bgr * 255.0), 0, 255), dtype=np.uint8)
        stacked = np.dstack(planes if self.output_kind == "bgr" else planes[::-1]) * self._output_scale
        return np.asarray(np.clip(np.rint(stacked), 0, 255), dtype=np.uint8)

    @staticmethod
    def _lab_l(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """CIELAB L* (0–100) of a grey image taken as neutral sRGB."""
        rgb = np.repeat((grey.astype(np.float32) / 255.0)[:, :, None], 3, axis=2)
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[:, :, 0], dtype=np.float32)
