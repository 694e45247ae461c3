"""Running counters the app keeps for metrics, the status line and the watchdog."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

__all__ = ["AppStats", "SourceStats"]


@dataclass(slots=True)
class SourceStats:
    """Per-source counters; ``samples_by_kind`` counts samples per sample type name."""

    samples: int = 0
    dropped: int = 0  # copied from the source's own drop counter
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
    fusion_latency_s: float = 0.0  # last sample-in → record-out processing time
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind, app-wide

    def source(self, name: str) -> SourceStats:
        return self.sources.setdefault(name, SourceStats())
