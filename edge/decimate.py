"""Degrade, never stop: which live frames fusion takes when the CPU cannot fuse them all.

A slow CPU (a Pi, a busy Pi, a cgroup quota) must still give one record a second, with the temperature
whenever a thermal frame exists. Dropping the oldest sample of a full queue keeps fusion going but
thins the webcam stream at random, in bursts, which the heart-rate path cannot use. Instead, the worker
measures how busy fusion is and this class thins each frame stream *evenly in sample time* down to
what fusion can take, never below a floor the product still needs:

- webcam frames: 10 fps keeps the highest heart rate of the band (180 bpm = 3 Hz) well below Nyquist;
  the pulse estimators resample on ``t_mono``, so a skipped frame is a gap, not a restart;
- thermal frames: 1 Hz, one per record;
- anything else (a wristband reading: four a second, microseconds each) is always taken.

Each source's stream is paced on its own (two webcams are two streams, each kept at the floor); the floor
is its sample type's. The decision is made on sample times only (``admit(kind, t_mono, source)``), so it
is testable without a clock; how much to keep (``scale``) follows the measured busy fraction
(``observe``), with a clock the caller owns.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLOORS_HZ", "Decimator"]

_NS_PER_S = 1_000_000_000
# The least each frame stream is thinned to, by sample type name.
FLOORS_HZ = {"VisibleFrame": 10.0, "ThermalFrame": 1.0}
_MAX_GAP_NS = 2 * _NS_PER_S  # a longer gap between two frames is a pause, not the stream's rate


@dataclass(slots=True)
class _Stream:
    last_t: int | None = None
    period_ns: float | None = None  # smoothed arrival interval
    next_keep_t: float | None = None


class Decimator:
    """Keeps every frame while fusion keeps up, and evenly spaced frames at a reduced rate when it does not.

    Args:
        budget: the busy fraction fusion may use (fused time / wall time); above it ``scale`` shrinks.
        floors_hz: the least rate kept per sample type name; types not named are always kept.
        min_scale: the smallest ``scale`` (floors apply whatever the scale).
        interval_s: how often ``observe`` re-decides ``scale``.
    """

    def __init__(
        self,
        *,
        budget: float = 0.6,
        floors_hz: dict[str, float] | None = None,
        min_scale: float = 0.02,
        interval_s: float = 1.0,
    ) -> None:
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be in (0, 1], got {budget}")
        self.budget = budget
        self.floors_hz = dict(FLOORS_HZ if floors_hz is None else floors_hz)
        self.min_scale = min_scale
        self.interval_s = interval_s
        self.scale = 1.0  # share of each stream's arrival rate to keep (floors apply)
        self.busy = 0.0  # the latest measured busy fraction
        self._streams: dict[tuple[str, str], _Stream] = {}  # by (type name, source)
        self._window_start_s: float | None = None
        self._window_busy_s = 0.0
        self._backlog = False

    @property
    def degraded(self) -> bool:
        """Whether frames are being thinned now."""
        return self.scale < 1.0

    def target_hz(self, kind: str, source: str = "") -> float | None:
        """The rate kept now for ``source``'s frames of type ``kind`` (None: every frame, or not yet known)."""
        stream = self._streams.get((kind, source))
        if kind not in self.floors_hz or stream is None or stream.period_ns is None:
            return None
        arrival_hz = _NS_PER_S / stream.period_ns
        return min(arrival_hz, max(self.floors_hz[kind], self.scale * arrival_hz))

    def admit(self, kind: str, t_mono: int, source: str = "") -> bool:
        """Whether fusion takes ``source``'s frame of type ``kind`` captured at ``t_mono`` (ns).

        Kept frames lie on a grid of the target period, each the first frame at or after its grid point
        (less half an arrival interval, so jitter does not skip the frame nearest the point).
        """
        if kind not in self.floors_hz:
            return True
        stream = self._streams.setdefault((kind, source), _Stream())
        if stream.last_t is not None:
            dt = t_mono - stream.last_t
            if 0 < dt < _MAX_GAP_NS:
                stream.period_ns = dt if stream.period_ns is None else 0.8 * stream.period_ns + 0.2 * dt
        stream.last_t = t_mono
        target = self.target_hz(kind, source)
        if target is None or stream.period_ns is None:
            stream.next_keep_t = None
            return True
        keep_period_ns = _NS_PER_S / target
        if keep_period_ns <= stream.period_ns * 1.001:  # the target is the arrival rate: keep all
            stream.next_keep_t = t_mono + keep_period_ns
            return True
        tolerance_ns = stream.period_ns / 2
        if stream.next_keep_t is not None and t_mono < stream.next_keep_t - tolerance_ns:
            return False
        base = stream.next_keep_t
        if base is None or base < t_mono - keep_period_ns:  # first frame, or after a pause: restart the grid
            base = t_mono
        stream.next_keep_t = base + keep_period_ns
        return True

    def observe(self, fused_s: float, now_s: float, *, backlog: bool = False) -> None:
        """Account ``fused_s`` seconds of fusion work, finished at ``now_s``; re-decide ``scale`` each interval.

        Args:
            fused_s: wall time fusion spent on one sample (it includes time the CPU gave to others).
            now_s: the caller's clock, seconds.
            backlog: fusion's input queue is more than half full (it is behind whatever it measures).
        """
        if self._window_start_s is None:
            self._window_start_s = now_s
        self._window_busy_s += fused_s
        self._backlog = self._backlog or backlog
        elapsed_s = now_s - self._window_start_s
        if elapsed_s < self.interval_s:
            return
        self.busy = self._window_busy_s / elapsed_s
        if self.busy > self.budget or self._backlog:
            # Proportional cut: the frames fused scale with the work, so this lands near the budget.
            cut = min(self.budget / self.busy, 0.7 if self._backlog else 1.0) if self.busy > 0 else 0.7
            self.scale = max(self.min_scale, self.scale * cut)
        elif self.busy < 0.7 * self.budget:
            self.scale = min(1.0, self.scale * 1.15)  # creep back up, a little each interval
        self._window_start_s, self._window_busy_s, self._backlog = now_s, 0.0, False
