"""The heart-rate path: webcam frames in, a HeartRateReading out (DESIGN §3).

face tracker (buffered box) → crop → pulse estimators (POS, CHROM, ONNX; several are fused by their
normalised spectra) → heart-rate estimator (windowed PSD, a tracker over the spectrogram, confidence).
The fusion loop calls ``push`` for every webcam frame and ``reading`` once a second; ``vitaledge eval
rppg`` and ``vitaledge bench rppg`` drive the same class.

A greyscale frame (IR or mono camera: ``VisibleFrame.greyscale``) has no chrominance, which POS, CHROM
and the colour models need. On such frames the pipeline runs the intensity-only ``LumaEstimator``
instead, says so in ``method`` ("luma") and flags every reading ``greyscale``; a switch between colour
and greyscale restarts the windows, as a lost face does.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fusion.face import Box, FaceDetector
from fusion.heartrate import HeartRate, HeartRateEstimator, WindowConfidence
from fusion.hrtrack import DEFAULT_TRACKER, TrackerSettings
from fusion.privacy import Lensing
from fusion.pulse import LumaEstimator, PulseEstimator
from fusion.tracking import FaceTracker
from fusion.vitals import HeartRateReading

__all__ = [
    "DETECT_INTERVAL_S",
    "GREYSCALE_FLAG",
    "LOW_CONFIDENCE",
    "LOW_SUPPORT",
    "HeartRatePipeline",
    "low_confidence_threshold",
]

_NS_PER_S = 1_000_000_000
# Detector every ~0.2 s: a seated head rarely moves an eighth of the face width (the buffer's margin)
# faster than that, and the detector is the most expensive step per frame.
DETECT_INTERVAL_S = 0.2
# Below this spectral confidence (the median blend's) the window's spectrum is close to what noise
# would give: flagged so that consumers can tell a measured rate from a guess.
LOW_CONFIDENCE = 0.25
# Below this support (the tracker's confidence, fusion.heartrate.peak_support) the window does not back
# the published rate. The lowest support at which the published windows of the seven UBFC clips, POS
# and CHROM fused, have an MAE ≤ 2 bpm (edge.evaluation.folds.flag_threshold on all seven; each
# leave-one-out fold's own choice is in the README).
LOW_SUPPORT = 0.88
# On readings whose rate came from intensity alone (greyscale frames): no chrominance, weaker signal.
GREYSCALE_FLAG = "greyscale"


def low_confidence_threshold(tracker: TrackerSettings | None) -> float:
    """The flag threshold of the confidence the heart-rate estimator publishes without a learned one."""
    return LOW_SUPPORT if tracker is not None else LOW_CONFIDENCE


class HeartRatePipeline:
    """Tracks the face, extracts the pulse and estimates the heart rate, frame by frame.

    Args:
        detector: face detector (edge/ builds it: Haar or ONNX).
        estimators: pulse estimators fed the same crops (edge/ builds them; ONNX ones get their session
            from edge/); the first sets the pulse's clock, the others are sampled at its times and
            their spectra fused with its own. All must share one rate.
        fs_hz: nominal video rate; sets how often the detector runs.
        window_s: PSD window of the heart-rate estimate.
        step_s: time between heart-rate estimates.
        detect_every: detector period in frames; None: about every ``DETECT_INTERVAL_S``.
        record_pulse: keep every pulse sample fed to the heart-rate estimator in ``pulse_segments``
            (one list of ``(t_mono, values)`` per stretch of tracking, a value per estimator), for
            evaluation: the signal the published rates came from, without stitching it again.
        tracker: the spectrogram tracker's settings; None: the median blend of earlier versions.
        lensing: a privacy lens every frame passes through first (rPPG on lensed video; the detector
            then sees only lensed frames, e.g. a :class:`fusion.skinregion.SkinRegionDetector`).
        confidence: a learned window confidence (:class:`fusion.confidence.LearnedConfidence`) published
            instead of the spectral one; None: spectral.
        low_confidence: the confidence under which a reading is flagged ``low_confidence`` (a learned
            model brings its own threshold, chosen where it was trained); None: that of the confidence
            the estimator publishes (:func:`low_confidence_threshold`).
    """

    def __init__(
        self,
        *,
        detector: FaceDetector,
        estimators: Sequence[PulseEstimator],
        fs_hz: float,
        window_s: float = 10.0,
        step_s: float = 1.0,
        detect_every: int | None = None,
        record_pulse: bool = False,
        tracker: TrackerSettings | None = DEFAULT_TRACKER,
        lensing: Lensing | None = None,
        confidence: WindowConfidence | None = None,
        low_confidence: float | None = None,
    ) -> None:
        self.lensing = lensing
        if not fs_hz > 0:
            raise ValueError(f"fs_hz must be positive, got {fs_hz}")
        if not estimators or len({e.fs_hz for e in estimators}) != 1:
            raise ValueError(f"need one or more pulse estimators at one rate, got {[e.fs_hz for e in estimators]}")
        every = detect_every if detect_every is not None else max(1, round(DETECT_INTERVAL_S * fs_hz))
        # On lensed frames the region is sized from the blur's width in frame pixels: whole frames only.
        self.tracker = FaceTracker(detector, detect_every=every, search_near=lensing is None)
        self._colour = tuple(estimators)
        self._grey: tuple[PulseEstimator, ...] = (LumaEstimator(estimators[0].fs_hz),)
        self._hr_settings = (window_s, step_s, tracker)
        self._confidence = confidence
        self.low_confidence = low_confidence if low_confidence is not None else low_confidence_threshold(tracker)
        self.greyscale = False
        self._use(self._colour)
        self._consumed = 0  # pulse samples already fed to the heart-rate estimator
        self._box: Box | None = None
        self._tracking = False
        self._last_t: int | None = None
        self.frames = 0
        self.record_pulse = record_pulse
        self.pulse_segments: list[list[tuple[int, tuple[float, ...]]]] = []
        self._new_segment = True
        self.rejected: collections.Counter[str] = collections.Counter()  # frames not used, by reason

    def _use(self, estimators: tuple[PulseEstimator, ...]) -> None:
        """Make ``estimators`` the active set, with a fresh heart-rate estimator of as many channels."""
        window_s, step_s, tracker = self._hr_settings
        self.estimators = estimators
        self.estimator = estimators[0]
        self.method = "+".join(e.name for e in estimators)
        self._hr = HeartRateEstimator(
            self.estimator.fs_hz,
            window_s=window_s,
            step_s=step_s,
            channels=len(estimators),
            tracker=tracker,
            confidence=self._confidence,
        )

    def _set_greyscale(self, greyscale: bool) -> None:
        if greyscale == self.greyscale:
            return
        self._face_lost()  # the signal changes meaning: no window may mix the two
        self.greyscale = greyscale
        self._use(self._grey if greyscale else self._colour)
        for estimator in self.estimators:
            estimator.reset()
        self._consumed = 0
        self._new_segment = True

    def push(self, image_bgr: npt.NDArray[np.uint8], t_mono: int, *, greyscale: bool = False) -> None:
        """Process one webcam frame (H×W×3 uint8 BGR) captured at ``t_mono`` (ns).

        ``greyscale`` (the frame's ``VisibleFrame.greyscale``) switches to the intensity-only estimator.

        A frame not later than the previous one (a duplicate, a source restarted on another clock) is
        counted in ``rejected["time_not_increasing"]`` and skipped: the resampled signal must stay in
        time order, and an unattended run must not stop over one frame.

        Raises:
            ValueError: the image is not H×W×3 uint8.
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"webcam frame must be H×W×3 uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}")
        if self._last_t is not None and t_mono <= self._last_t:
            self.rejected["time_not_increasing"] += 1
            return
        self._last_t = t_mono
        self.frames += 1
        if self.lensing is not None:
            image_bgr = self.lensing.apply(image_bgr)
        self._set_greyscale(greyscale)
        state = self.tracker.update(image_bgr, t_mono)
        if state.box is None:
            self._face_lost()
            self.rejected["no_face"] += 1
            return
        x0, y0, x1, y1 = state.box.clipped(image_bgr.shape[1], image_bgr.shape[0])
        if x1 - x0 < 2 or y1 - y0 < 2:
            self._face_lost()
            self.rejected["face_outside_image"] += 1
            return
        self._box = state.box
        self._tracking = True
        crop = image_bgr[y0:y1, x0:x1]
        for estimator in self.estimators:
            estimator.push(crop, t_mono)
        self._feed_heart_rate()

    def heart_rate(self) -> HeartRate | None:
        """The latest full heart-rate result (with its window end time), or None."""
        return self._hr.result() if self._tracking else None

    def reading(self) -> HeartRateReading:
        """The current state: a heart rate only when the face is tracked and a full window was seen."""
        grey = (GREYSCALE_FLAG,) if self.greyscale else ()
        if not self._tracking:
            return HeartRateReading(
                bpm=None, confidence=0.0, method=self.method, face_box=None, flags=("no_face", *grey)
            )
        hr = self._hr.result()
        if hr is None:
            return HeartRateReading(
                bpm=None, confidence=0.0, method=self.method, face_box=self._box, flags=("warming_up", *grey)
            )
        flags = (("low_confidence",) if hr.confidence < self.low_confidence else ()) + grey
        return HeartRateReading(
            bpm=hr.bpm,
            confidence=hr.confidence,
            method=self.method,
            face_box=self._box,
            flags=flags,
            window_end_t_mono=hr.t_mono,
            pulse_view=self._hr.view(low_confidence_below=self.low_confidence),
        )

    def _face_lost(self) -> None:
        # The colour signal is discontinuous across a loss: start the windows afresh (the session
        # median survives), so no window ever mixes two faces or a face and the background.
        if self._tracking:
            for estimator in self.estimators:
                estimator.reset()
            self._hr.reset()
            self._consumed = 0
            self._new_segment = True
        self._tracking = False
        self._box = None

    def _feed_heart_rate(self) -> None:
        pulse = self.estimator.pulse()
        if pulse is None or pulse.count == self._consumed:
            return
        others = [e.pulse() for e in self.estimators[1:]]
        if any(p is None for p in others):
            return  # a companion still filling its first window: wait, the primary keeps its history
        new = min(pulse.count - self._consumed, len(pulse.signal))
        n = len(pulse.signal)
        step_ns = _NS_PER_S / pulse.fs_hz
        times = [pulse.t_end - round((n - 1 - i) * step_ns) for i in range(n - new, n)]
        columns = [np.asarray(pulse.signal[n - new :], dtype=np.float64)]
        for other in others:
            assert other is not None
            m = len(other.signal)
            other_times = other.t_end - np.round((m - 1 - np.arange(m)) * (_NS_PER_S / other.fs_hz))
            # Companions run on their own delays: sample each at the primary's times (held at its ends).
            columns.append(np.interp(np.asarray(times, dtype=np.float64), other_times, other.signal))
        values = np.column_stack(columns)
        if self.record_pulse and self._new_segment:
            self.pulse_segments.append([])
            self._new_segment = False
        for t, row in zip(times, values, strict=True):
            self._hr.push(row, t)
            if self.record_pulse:
                self.pulse_segments[-1].append((t, tuple(float(v) for v in row)))
        self._consumed = pulse.count
