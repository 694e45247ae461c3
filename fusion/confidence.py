"""The learned confidence of a heart-rate window (Gideon & Stent 2021): STFT features in, a confidence out.

The pulse window (10 s, every estimator channel) is cut into short-time frames: ``scipy.signal.stft``
with a Hann window of :data:`NPERSEG` = 64 samples (33 frequency bins, 0 to fs/2) every :data:`HOP`
= 16 samples (about 0.5 s at 30 Hz: 15 frames per 10 s window; hop a quarter of the segment, so every
sample lies in four frames). The features of a frame are its magnitude spectrum divided by the
frame's sum (scale-free: a model's or a camera's gain says nothing about reliability), averaged over
the channels. Each frame also gets its own heart rate: the peak in 40–180 bpm of the same frames
zero-padded to :data:`NFFT_HR` bins, after the band-pass the window's rate is computed with.

A 1-D CNN (``models/confidence_net.py``) maps the 33×T features to one confidence per frame in (0, 1).
The window's confidence is the **mean of its frames' confidences**: the training loss
(``models/training/confidence.py``) blends the frames' rates of several windows at once, so a frame's
confidence is comparable across windows, and the mean says how much of the window looks reliable.

edge/ opens the ONNX file and hands the session in (this module does no I/O). The model carries its
input contract in its metadata (``metadata_props``):

========================  =============================================================  ========
key                       meaning                                                         required
========================  =============================================================  ========
``confidence.features``   ``stft_frame_sum``: the features above (nothing else exists)    yes
``confidence.nperseg``    STFT segment length (64, i.e. 33 input channels)                yes
``confidence.hop``        STFT hop in samples                                             yes
``confidence.fs_hz``      the pulse rate the model was trained at (±5 % accepted)        yes
``confidence.threshold``  the confidence under which a reading is flagged, chosen where  yes
                          the model was trained (see the training code)
========================  =============================================================  ========
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from fusion.heartrate import BAND_BPM, band_pass, refined_peak_hz
from fusion.onnx_meta import meta_integer, meta_number

__all__ = [
    "FEATURES",
    "HOP",
    "NFFT_HR",
    "NPERSEG",
    "ConfidenceContract",
    "ConfidenceSession",
    "LearnedConfidence",
    "StftFrames",
    "stft_frames",
]

NPERSEG = 64
HOP = 16
# Zero-padded length of each frame for its rate: 30 Hz / 1024 = 1.8 bpm bins before interpolation.
NFFT_HR = 1024
FEATURES = "stft_frame_sum"
# The pulse may run at a slightly different rate than the model was trained at (29.x fps videos).
_FS_TOLERANCE = 0.05
_REQUIRED = ("confidence.features", "confidence.nperseg", "confidence.hop", "confidence.fs_hz", "confidence.threshold")


class StftFrames:
    """A window's short-time features and per-frame heart rates.

    Attributes:
        features: (nperseg // 2 + 1) × T float32, each frame's magnitude over its sum, channel mean.
        bpm: T per-frame heart rates (peak of the zero-padded, band-passed frame power in 40–180 bpm).
    """

    __slots__ = ("bpm", "features")

    def __init__(self, features: npt.NDArray[np.float32], bpm: npt.NDArray[np.float64]) -> None:
        self.features = features
        self.bpm = bpm


def stft_frames(
    window: npt.NDArray[np.float64], fs_hz: float, *, nperseg: int = NPERSEG, hop: int = HOP, rates: bool = True
) -> StftFrames:
    """The short-time features and per-frame rates of one pulse window.

    Args:
        window: samples × channels (or a 1-D single channel) at ``fs_hz``.
        fs_hz: its rate.
        nperseg: STFT segment (``nperseg // 2 + 1`` feature bins).
        hop: samples between frames.
        rates: also the per-frame rates (training; the runner needs only the features: ``bpm`` is empty).

    Raises:
        ValueError: the window is shorter than one segment, not finite, or the hop is not in 1..nperseg.
    """
    x = np.asarray(window, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < max(nperseg, 2 * fs_hz) or x.shape[1] < 1:
        raise ValueError(f"window must be samples × channels with ≥ {nperseg} samples and ≥ 2 s, got {x.shape}")
    if not 1 <= hop <= nperseg:
        raise ValueError(f"hop must be 1..{nperseg}, got {hop}")
    if not np.all(np.isfinite(x)):
        raise ValueError("window holds non-finite values")
    kw: dict[str, Any] = {"fs": fs_hz, "window": "hann", "nperseg": nperseg, "noverlap": nperseg - hop}
    kw.update(boundary=None, padded=False, detrend=False)
    lo, hi = BAND_BPM[0] / 60, BAND_BPM[1] / 60
    features = np.zeros((nperseg // 2 + 1, 1 + (x.shape[0] - nperseg) // hop))
    power_hr: npt.NDArray[np.float64] | None = None
    f_hr: npt.NDArray[np.float64] = np.zeros(0)
    for c in range(x.shape[1]):
        _, _, z = sps.stft(sps.detrend(x[:, c], type="linear"), **kw)
        mag = np.abs(z)
        features += mag / np.maximum(mag.sum(axis=0, keepdims=True), 1e-12)
        if not rates:
            continue
        f_hr, _, zh = sps.stft(band_pass(x[:, c], fs_hz), nfft=NFFT_HR, **kw)
        p = np.abs(zh) ** 2
        p = p / np.maximum(p.sum(axis=0, keepdims=True), 1e-30)  # each channel's frame to unit power
        power_hr = p if power_hr is None else power_hr + p
    if power_hr is None:
        return StftFrames((features / x.shape[1]).astype(np.float32), np.zeros(0))
    band = np.flatnonzero((f_hr >= lo) & (f_hr <= hi))
    f_band = f_hr[band]
    bpm = np.array(
        [60.0 * refined_peak_hz(f_band, q, int(np.argmax(q))) for q in power_hr[band].T], dtype=np.float64
    )
    return StftFrames((features / x.shape[1]).astype(np.float32), bpm)


class ConfidenceSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` the runner uses."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_modelmeta(self) -> Any: ...

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


class ConfidenceContract:
    """The input contract of a confidence model, from its metadata and input shape.

    Raises:
        ValueError: a key missing or malformed, or an input that is not N × (nperseg/2+1) × T.
    """

    def __init__(self, meta: Mapping[str, str], input_shape: Sequence[int | str | None]) -> None:
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise ValueError(f"not a confidence model: metadata lacks {', '.join(missing)}")
        if meta["confidence.features"] != FEATURES:
            raise ValueError(f"confidence.features must be {FEATURES!r}, got {meta['confidence.features']!r}")
        self.nperseg = meta_integer(meta, "confidence.nperseg")
        self.hop = meta_integer(meta, "confidence.hop")
        self.fs_hz = meta_number(meta, "confidence.fs_hz")
        self.threshold = meta_number(meta, "confidence.threshold")
        if self.nperseg < 8 or not 1 <= self.hop <= self.nperseg or not self.fs_hz > 0:
            raise ValueError(
                f"confidence.nperseg {self.nperseg} (≥ 8), hop {self.hop} (1..nperseg), fs_hz {self.fs_hz} (> 0)"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"confidence.threshold must be in [0, 1], got {self.threshold}")
        bins = self.nperseg // 2 + 1
        if len(input_shape) != 3 or (isinstance(input_shape[1], int) and input_shape[1] != bins):
            raise ValueError(
                f"the model input must be N × {bins} × T (nperseg {self.nperseg}), got {list(input_shape)}"
            )


class LearnedConfidence:
    """A window's confidence from a confidence model: the mean of its per-frame confidences.

    Args:
        session: an onnxruntime session (or anything with the same three calls) of a model whose
            metadata holds the contract above.
        fs_hz: the rate of the pulse it will be given.

    Raises:
        ValueError: the metadata or input breaks the contract, the pulse rate is not the model's, or
            the model does not give one value in (0, 1) per frame.
    """

    def __init__(self, session: ConfidenceSession, *, fs_hz: float) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected a model with one input, got {len(inputs)}")
        meta = dict(session.get_modelmeta().custom_metadata_map or {})
        self.contract = ConfidenceContract(meta, list(inputs[0].shape))
        if abs(fs_hz - self.contract.fs_hz) > _FS_TOLERANCE * self.contract.fs_hz:
            raise ValueError(f"the pulse runs at {fs_hz:g} Hz, the model was trained at {self.contract.fs_hz:g} Hz")
        self.fs_hz = fs_hz
        self.threshold = self.contract.threshold
        self._session = session
        self._input_name = str(inputs[0].name)
        # One inference now: a model whose output does not fit is refused when configured, not live.
        probe = np.sin(2 * np.pi * 1.2 * np.arange(round(10 * fs_hz)) / fs_hz)
        try:
            self.frame_confidences(probe)
        except ValueError:
            raise
        except Exception as exc:  # onnxruntime's own errors are untyped
            raise ValueError(f"the model does not run on STFT features: {exc}") from exc

    def frame_confidences(self, window: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """One confidence per STFT frame of ``window`` (samples × channels, or one channel).

        Raises:
            ValueError: the window is too short, or the model's output is not one value per frame in [0, 1].
        """
        frames = stft_frames(window, self.fs_hz, nperseg=self.contract.nperseg, hop=self.contract.hop, rates=False)
        out = self._session.run(None, {self._input_name: frames.features[None]})[0]
        c = np.asarray(out, dtype=np.float64).reshape(-1)
        if c.size != frames.features.shape[1]:
            raise ValueError(f"model output has {c.size} values for {frames.features.shape[1]} STFT frames")
        if not np.all((c >= 0) & (c <= 1)):
            raise ValueError("model output is not a confidence in [0, 1]")
        return c

    def __call__(self, window: npt.NDArray[np.float64]) -> float:
        """The window's confidence in [0, 1]: the mean of its frames'."""
        return float(self.frame_confidences(window).mean())
