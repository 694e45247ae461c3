"""A learned pulse estimator: an ONNX model (PhysNet-style 3D-CNN) over sliding chunks of face crops.

edge/ opens the model and hands the inference session in; this module does no I/O. The model carries
its input contract in its ONNX metadata (``metadata_props``), which the estimator reads:

=====================  ==========================================================  ===========
key                    meaning                                                     default
=====================  ==========================================================  ===========
``rppg.layout``        order of the 5-D input: ``NCTHW`` (PhysNet) or ``NTCHW``     ``NCTHW``
``rppg.size``          crop size ``HxW`` in pixels (else the input's static dims)  input shape
``rppg.colour``        ``yuv`` (Y, U, V as OpenCV computes them), ``rgb`` or       ``yuv``
                       ``bgr``
``rppg.normalisation`` ``temporal_z``: each pixel and channel z-normalised over    ``temporal_z``
                       the chunk's frames; ``none``: values 0..255 as they are
``rppg.chunk_frames``  frames per chunk T (else the input's static T dim)          input shape
``rppg.fs_hz``         frame rate the model was trained at                          the video's
=====================  ==========================================================  ===========

The output is the pulse over the chunk's T frames, any shape with T elements per batch item. Chunks
overlap by half; each output is z-scored (a model's scale is arbitrary), Hann-weighted and
overlap-added into one continuous signal.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from fusion.onnx_meta import meta_choice, meta_integer, meta_number, meta_size_hw
from fusion.pulse import OverlapAdd, Pulse, PulseHistory, UniformResampler

__all__ = ["InferenceSession", "OnnxPulseEstimator", "RppgModelContract"]

_LAYOUTS = ("NCTHW", "NTCHW")
_COLOURS = {"yuv": cv2.COLOR_BGR2YUV, "rgb": cv2.COLOR_BGR2RGB, "bgr": None}
_EPS = 1e-6


class InferenceSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` the estimator uses."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def get_modelmeta(self) -> Any: ...

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


class RppgModelContract:
    """The input contract of a pulse model, from its metadata and input shape.

    Raises:
        ValueError: an unknown value, a non-5-D input, or a size or chunk length given nowhere.
    """

    def __init__(self, meta: Mapping[str, str], input_shape: Sequence[int | str | None], fs_hz: float) -> None:
        self.layout = meta_choice(meta, "rppg.layout", tuple(x.lower() for x in _LAYOUTS), "NCTHW").upper()
        if len(input_shape) != 5:
            raise ValueError(f"the model input must be 5-D ({self.layout}), got shape {list(input_shape)}")
        dims = dict(zip(self.layout, input_shape, strict=True))
        self.colour = meta_choice(meta, "rppg.colour", tuple(_COLOURS), "yuv")
        self.normalisation = meta_choice(meta, "rppg.normalisation", ("temporal_z", "none"), "temporal_z")
        self.size_hw = meta_size_hw(meta, "rppg.size") or (_static(dims["H"], "H"), _static(dims["W"], "W"))
        self.chunk = (
            meta_integer(meta, "rppg.chunk_frames") if "rppg.chunk_frames" in meta else _static(dims["T"], "T")
        )
        if isinstance(dims["T"], int) and dims["T"] > 0 and dims["T"] != self.chunk:
            raise ValueError(f"rppg.chunk_frames {self.chunk} disagrees with the input's T dimension {dims['T']}")
        if self.chunk < 8 or self.chunk % 2:
            raise ValueError(f"chunk of {self.chunk} frames: need an even number ≥ 8")
        self.fs_hz = meta_number(meta, "rppg.fs_hz", fs_hz)
        if not self.fs_hz > 0:
            raise ValueError(f"rppg.fs_hz must be positive, got {self.fs_hz}")


def _static(dim: int | str | None, name: str) -> int:
    if isinstance(dim, int) and dim > 0:
        return dim
    raise ValueError(f"input dimension {name} is dynamic and the metadata does not give it")


class OnnxPulseEstimator:
    """Pulse from a learned model run on overlapping chunks of resized, normalised face crops.

    Args:
        session: an onnxruntime session (or anything with the same three calls).
        fs_hz: the video's nominal rate, used when the model does not say its own.
        history_s: how much finished signal ``pulse()`` returns.

    Raises:
        ValueError: the model's metadata or input shape breaks the contract above.
    """

    name = "onnx"

    def __init__(self, session: InferenceSession, *, fs_hz: float, history_s: float = 20.0) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected a model with one input, got {len(inputs)}")
        meta = dict(session.get_modelmeta().custom_metadata_map or {})
        self.contract = RppgModelContract(meta, list(inputs[0].shape), fs_hz)
        self._session = session
        self._input_name = str(inputs[0].name)
        self.fs_hz = self.contract.fs_hz
        self._hop = self.contract.chunk // 2
        self._hann = sps.get_window("hann", self.contract.chunk)
        self._resampler = UniformResampler(self.fs_hz)
        self._history = PulseHistory(self.fs_hz, history_s)
        self.inferences = 0
        self.reset()
        # One inference on a blank chunk now: a model whose output does not fit is refused when it is
        # configured, not on the first chunk of a live run.
        h, w = self.contract.size_hw
        try:
            self._infer(np.zeros((self.contract.chunk, h, w, 3)))
        except ValueError:
            raise
        except Exception as exc:  # onnxruntime's own errors are untyped
            raise ValueError(f"the model does not run on a {self.contract.chunk}-frame chunk: {exc}") from exc
        self.inferences = 0

    def reset(self) -> None:
        self._resampler.reset()
        self._history.clear()
        n = self.contract.chunk
        self._frames: collections.deque[npt.NDArray[np.float64]] = collections.deque(maxlen=n)
        self._times: collections.deque[int] = collections.deque(maxlen=n)
        self._since = 0
        self._ola = OverlapAdd(n, self._hop)

    def push(self, crop_bgr: npt.NDArray[np.uint8], t_mono: int) -> None:
        if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3 or crop_bgr.dtype != np.uint8 or crop_bgr.size == 0:
            raise ValueError(f"crop must be a non-empty H×W×3 uint8 BGR image, got {crop_bgr.shape} {crop_bgr.dtype}")
        h, w = self.contract.size_hw
        small = cv2.resize(crop_bgr, (w, h), interpolation=cv2.INTER_AREA)
        code = _COLOURS[self.contract.colour]
        if code is not None:
            small = cv2.cvtColor(small, code)
        for t, frame in self._resampler.push(small.astype(np.float64), t_mono):
            self._frames.append(frame)
            self._times.append(t)
            self._since += 1
            if len(self._frames) == self.contract.chunk and self._since >= self._hop:
                self._since = 0
                y = self._infer(np.stack(self._frames))
                for t_done, v in self._ola.add(y * self._hann, list(self._times)):
                    self._history.add(v, t_done)

    def pulse(self) -> Pulse | None:
        return self._history.pulse(self.fs_hz)

    def _infer(self, chunk_thwc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x = chunk_thwc
        if self.contract.normalisation == "temporal_z":
            x = (x - x.mean(axis=0)) / (x.std(axis=0) + _EPS)
        x = x.transpose(3, 0, 1, 2) if self.contract.layout == "NCTHW" else x.transpose(0, 3, 1, 2)
        out = self._session.run(None, {self._input_name: x[None].astype(np.float32)})[0]
        self.inferences += 1
        y = np.asarray(out, dtype=np.float64).reshape(-1)
        if y.size != self.contract.chunk:
            raise ValueError(f"model output has {y.size} values for a chunk of {self.contract.chunk} frames")
        y = y - y.mean()
        return y / (y.std() + _EPS)  # type: ignore[no-any-return]
