"""Running counters the app keeps for metrics, the status line and the watchdog."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

__all__ = ["AppStats", "RollingQuantiles", "SourceStats"]


class RollingQuantiles:
    """The latest ``window`` observations and their quantiles (nearest rank); cheap to add to.

    Args:
        window: how many observations to keep (older ones fall out).
    """

    def __init__(self, window: int = 1000) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0  # observations ever added

    def add(self, value: float) -> None:
        self._values.append(value)
        self.count += 1

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the window; NaN while it is empty."""
        if not self._values:
            return math.nan
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(slots=True)
class SourceStats:
    """Per-source counters; ``samples_by_kind`` counts samples per sample type name."""

    samples: int = 0
    dropped: int = 0  # copied from the source's own drop counter
    fusion_dropped: int = 0  # live samples the fusion queue dropped (oldest first) because fusion was behind
    fusion_skipped: int = 0  # live frames left out evenly to keep up (edge.decimate): a slow CPU, not a fault
    fused_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)  # samples fusion processed
    restarts: int = 0  # times the supervisor reopened it
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind
    last_t_mono: int | None = None
    samples_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    connected: bool = False


@dataclass(slots=True)
class AppStats:
    """Everything a metrics page or status line reads; mutated only on the event-loop thread."""

    sources: dict[str, SourceStats] = field(default_factory=dict)
    records: int = 0  # VitalsRecords produced by fusion
    last_record_monotonic_s: float | None = None  # wall-monotonic time of the last record (watchdog)
    fusion_latency_s: float = 0.0  # fusion time of the latest sample (worker thread, queue wait excluded)
    fusion_latency: RollingQuantiles = field(default_factory=RollingQuantiles)  # per sample, seconds
    fusion_queue_depth: int = 0  # samples waiting for the fusion worker
    record_waits: int = 0  # times the worker waited because the record queue was full
    degraded: bool = False  # frames are being thinned to keep up (edge.decimate)
    fusion_scale: float = 1.0  # share of each frame stream's rate fusion keeps now (floors apply)
    event_loop_lag: RollingQuantiles = field(default_factory=RollingQuantiles)  # how late a timer woke, seconds
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind, app-wide

    def source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())
