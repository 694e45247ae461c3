"""A learned pulse estimator run one frame at a time with recurrent state (ME-rPPG's contract).

edge/ opens the model and hands the inference session in; this module does no I/O. The contract is
read from the model's inputs and outputs, not from names (exported names such as ``onnx::Mul_37``
mean nothing):

- the **frame**: the one input of shape ``[1, 1, H, W, 3]`` (static H and W): the central part of
  the buffered crop that the detector found (the tracker's 25 % margin removed), resized to H×W,
  RGB, values 0..1;
- the **frame interval**: the one scalar float input (rank 0, or shape ``[1]``), in seconds;
- the **states**: every other input, in order. They start at zeros and are fed back from outputs
  ``1 … n`` (in the same order) after every frame;
- output 0: the pulse sample for this frame (one value).

States are reset with :meth:`StreamingOnnxPulseEstimator.reset`, which the pipeline calls when the
face is lost. Output samples are timed by their frames and resampled to a uniform ``fs_hz``.
:func:`streaming_contract` says whether a session fits this contract; the chunked contract is in
:mod:`fusion.pulse_onnx`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from fusion.pulse import Pulse, PulseHistory, UniformResampler
from fusion.pulse_onnx import InferenceSession, OnnxPulseEstimator

__all__ = ["StreamingContract", "StreamingOnnxPulseEstimator", "onnx_pulse_estimator", "streaming_contract"]

_NS_PER_S = 1_000_000_000
_FLOAT = "tensor(float)"
# The tracker's buffered box is the detector's box grown by 25 %; streaming face models (ME-rPPG) are
# trained on a tight face box (landmark extent), and background in the crop costs them most of their
# accuracy (UBFC subject 12, first 30 s: 27.5 → 2.9 bpm windowed MAE). The central 1/1.25 of the crop
# is the detector's box again.
_BUFFER_MARGIN = (1 - 1 / 1.25) / 2


@dataclass(frozen=True, slots=True)
class StreamingContract:
    """Which input is which in a streaming model.

    Attributes:
        frame_input: name of the ``[1, 1, H, W, 3]`` frame input.
        size_hw: the frame's H and W.
        interval_input: name of the scalar frame-interval input.
        interval_shape: its shape (``()`` or ``(1,)``).
        state_inputs: the state inputs' names, in the order outputs 1… feed them.
        state_shapes: their shapes.
    """

    frame_input: str
    size_hw: tuple[int, int]
    interval_input: str
    interval_shape: tuple[int, ...]
    state_inputs: tuple[str, ...]
    state_shapes: tuple[tuple[int, ...], ...]


def streaming_contract(inputs: Sequence[Any], outputs: Sequence[Any]) -> StreamingContract:
    """The streaming contract of a model's inputs and outputs (onnxruntime ``NodeArg``-like).

    Raises:
        ValueError: the inputs do not hold exactly one frame, one interval and at least one state, a
            state shape is dynamic, or the outputs do not match the states one for one.
    """
    frames = [i for i in inputs if _is_frame(list(i.shape))]
    if len(frames) != 1:
        raise ValueError(
            f"a streaming model needs exactly one frame input of shape [1, 1, H, W, 3], found {len(frames)} "
            f"among {_describe(inputs)}"
        )
    intervals = [i for i in inputs if str(i.type) == _FLOAT and list(i.shape) in ([], [1])]
    if len(intervals) != 1:
        raise ValueError(
            f"a streaming model needs exactly one scalar float frame-interval input, found {len(intervals)} "
            f"among {_describe(inputs)}"
        )
    frame, interval = frames[0], intervals[0]
    states = [i for i in inputs if i is not frame and i is not interval]
    if not states:
        raise ValueError(f"a streaming model needs state inputs besides frame and interval: {_describe(inputs)}")
    shapes = []
    for s in states:
        shape = list(s.shape)
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"state input {s.name!r} has a dynamic shape {shape}")
        shapes.append(tuple(shape))
    if len(outputs) != 1 + len(states):
        raise ValueError(
            f"a streaming model with {len(states)} state inputs needs {1 + len(states)} outputs "
            f"(pulse, then the states), got {len(outputs)}"
        )
    for k, (s, o) in enumerate(zip(states, outputs[1:], strict=True), start=1):
        out_shape = list(o.shape)
        if all(isinstance(d, int) for d in out_shape) and tuple(out_shape) != shapes[k - 1]:
            raise ValueError(f"output {k} {out_shape} cannot feed state input {s.name!r} {list(shapes[k - 1])}")
    return StreamingContract(
        frame_input=str(frame.name),
        size_hw=(int(frame.shape[2]), int(frame.shape[3])),
        interval_input=str(interval.name),
        interval_shape=tuple(int(d) for d in interval.shape),
        state_inputs=tuple(str(s.name) for s in states),
        state_shapes=tuple(shapes),
    )


def _is_frame(shape: list[Any]) -> bool:
    return (
        len(shape) == 5
        and shape[:2] == [1, 1]
        and shape[4] == 3
        and all(isinstance(d, int) and d > 0 for d in shape[2:4])
    )


def _describe(args: Sequence[Any]) -> str:
    return ", ".join(f"{a.name} {list(a.shape)}" for a in args)


class StreamingOnnxPulseEstimator:
    """Pulse from a stateful model run frame by frame, its states fed back, reset when the face is lost.

    Args:
        session: an onnxruntime session (``get_inputs``, ``get_outputs``, ``run``).
        fs_hz: rate of the output pulse signal (the video's nominal rate).
        history_s: how much finished signal ``pulse()`` returns.

    Raises:
        ValueError: the model does not fit the streaming contract or does not run on a blank frame.
    """

    name = "onnx"

    def __init__(self, session: InferenceSession, *, fs_hz: float, history_s: float = 20.0) -> None:
        if not fs_hz > 0:
            raise ValueError(f"fs_hz must be positive, got {fs_hz}")
        self.contract = streaming_contract(session.get_inputs(), session.get_outputs())
        self._session = session
        self.fs_hz = fs_hz
        self._resampler = UniformResampler(fs_hz)
        self._history = PulseHistory(fs_hz, history_s)
        self.inferences = 0
        self.reset()
        h, w = self.contract.size_hw
        try:
            self._step(np.zeros((1, 1, h, w, 3), dtype=np.float32), 1.0 / fs_hz)
        except ValueError:
            raise
        except Exception as exc:  # onnxruntime's own errors are untyped
            raise ValueError(f"the model does not run on one blank frame: {exc}") from exc
        self.reset()
        self.inferences = 0

    def reset(self) -> None:
        """Zero the states and forget the signal (face lost: the next frame starts a new stream)."""
        self._states = [np.zeros(s, dtype=np.float32) for s in self.contract.state_shapes]
        self._resampler.reset()
        self._history.clear()
        self._last_t: int | None = None

    def push(self, crop_bgr: npt.NDArray[np.uint8], t_mono: int) -> None:
        if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3 or crop_bgr.dtype != np.uint8 or crop_bgr.size == 0:
            raise ValueError(f"crop must be a non-empty H×W×3 uint8 BGR image, got {crop_bgr.shape} {crop_bgr.dtype}")
        value = self.sample(crop_bgr, t_mono)
        for t, v in self._resampler.push(np.array([value]), t_mono):
            self._history.add(float(v[0]), t)

    def sample(self, crop_bgr: npt.NDArray[np.uint8], t_mono: int) -> float:
        """The model's pulse sample for this frame (states advanced), as ``push`` feeds it to the signal.

        Training uses it to take the model's output as a teacher's target, exactly as it runs live.
        """
        ch, cw = crop_bgr.shape[:2]
        dy, dx = round(ch * _BUFFER_MARGIN), round(cw * _BUFFER_MARGIN)
        if ch - 2 * dy > 0 and cw - 2 * dx > 0:
            crop_bgr = crop_bgr[dy : ch - dy, dx : cw - dx]
        h, w = self.contract.size_hw
        small = cv2.cvtColor(cv2.resize(crop_bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        # The first frame of a stream has no predecessor: the nominal interval stands in.
        dt_s = 1.0 / self.fs_hz if self._last_t is None else max(t_mono - self._last_t, 1) / _NS_PER_S
        self._last_t = t_mono
        return self._step((small.astype(np.float32) / 255.0)[None, None], dt_s)

    def pulse(self) -> Pulse | None:
        return self._history.pulse(self.fs_hz)

    def _step(self, frame: npt.NDArray[np.float32], dt_s: float) -> float:
        c = self.contract
        feed: dict[str, Any] = {
            c.frame_input: frame,
            c.interval_input: np.full(c.interval_shape, dt_s, dtype=np.float32),
        }
        feed.update(zip(c.state_inputs, self._states, strict=True))
        out = self._session.run(None, feed)
        self.inferences += 1
        y = np.asarray(out[0], dtype=np.float64).reshape(-1)
        if y.size != 1:
            raise ValueError(f"output 0 must be one pulse sample per frame, got {y.size} values")
        self._states = [np.asarray(o, dtype=np.float32) for o in out[1:]]
        return float(y[0])


def onnx_pulse_estimator(
    session: InferenceSession, *, fs_hz: float, history_s: float = 20.0
) -> OnnxPulseEstimator | StreamingOnnxPulseEstimator:
    """The estimator whose contract the model's inputs fit: one input → chunked, more → streaming.

    Raises:
        ValueError: the model fits neither contract; the message says what each one needs.
    """
    inputs = session.get_inputs()
    if len(inputs) == 1:
        return OnnxPulseEstimator(session, fs_hz=fs_hz, history_s=history_s)
    try:
        return StreamingOnnxPulseEstimator(session, fs_hz=fs_hz, history_s=history_s)
    except ValueError as exc:
        raise ValueError(
            f"the model fits neither contract: a chunked model has one 5-D clip input, and as a streaming "
            f"model with {len(inputs)} inputs: {exc}"
        ) from exc
