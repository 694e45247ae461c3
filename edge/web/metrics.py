"""Prometheus text exposition (format 0.0.4) of the app's counters, served at ``/metrics``.

Reads what the app already keeps (AppStats), the MQTT publisher's counters and the outbox; it never
keeps a copy of its own except the previous sample counts, to turn them into frames per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge.publish.mqtt import MqttSink
from edge.stats import AppStats

__all__ = ["Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


@dataclass(slots=True)
class _Family:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            yield f"{self.name}{_labels(labels)} {value:.6g}"


class Metrics:
    """Renders the metrics page.

    Args:
        stats: the app's counters.
        mqtt: the MQTT sink (publisher counters and outbox), if any.
        viewers: how many overlay viewers are connected now, if an overlay runs.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        stats: AppStats,
        *,
        mqtt: MqttSink | None = None,
        viewers: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._mqtt = mqtt
        self._viewers = viewers
        self._clock = clock
        self._started_s = clock()
        self._previous: dict[tuple[str, str], tuple[float, int]] = {}  # (source, kind) -> (time, samples)

    def _fps(self, source: str, kind: str, samples: int, now: float) -> float:
        """Rate since the previous scrape (or since start on the first one)."""
        then, before = self._previous.get((source, kind), (self._started_s, 0))
        self._previous[(source, kind)] = (now, samples)
        return (samples - before) / (now - then) if now > then else 0.0

    def render(self) -> str:
        """The whole page, one family per metric."""
        now = self._clock()
        st = self._stats
        fps = _Family("vitaledge_source_fps", "gauge", "samples per second since the previous scrape")
        samples = _Family("vitaledge_source_samples_total", "counter", "samples received")
        dropped = _Family("vitaledge_source_dropped_total", "counter", "samples dropped because fusion was slow")
        restarts = _Family("vitaledge_source_restarts_total", "counter", "times the supervisor reopened a source")
        connected = _Family("vitaledge_source_connected", "gauge", "1 while the source is open")
        errors = _Family("vitaledge_errors_total", "counter", "faults counted and skipped, by source and kind")
        for name, src in sorted(st.sources.items()):
            for kind, count in sorted(src.samples_by_kind.items()):
                fps.add(self._fps(name, kind, count, now), source=name, kind=kind)
                samples.add(count, source=name, kind=kind)
            dropped.add(src.dropped, source=name)
            restarts.add(src.restarts, source=name)
            connected.add(1.0 if src.connected else 0.0, source=name)
            for kind, count in sorted(src.errors.items()):
                errors.add(count, source=name, kind=kind)
        for kind, count in sorted(st.errors.items()):
            errors.add(count, source="app", kind=kind)
        records = _Family("vitaledge_records_total", "counter", "VitalsRecords produced by fusion")
        records.add(st.records)
        latency = _Family("vitaledge_fusion_latency_seconds", "gauge", "processing time of the latest sample")
        latency.add(st.fusion_latency_s)
        age = _Family("vitaledge_last_record_age_seconds", "gauge", "time since the latest record (-1: none)")
        age.add(time.monotonic() - st.last_record_monotonic_s if st.last_record_monotonic_s is not None else -1.0)
        uptime = _Family("vitaledge_uptime_seconds", "gauge", "time since the metrics started")
        uptime.add(now - self._started_s)
        families = [fps, samples, dropped, restarts, connected, errors, records, latency, age, uptime]
        if self._mqtt is not None:
            families += self._mqtt_families()
        if self._viewers is not None:
            viewers = _Family("vitaledge_overlay_viewers", "gauge", "overlay streams being watched")
            viewers.add(self._viewers())
            families.append(viewers)
        return "\n".join(line for family in families for line in family.lines()) + "\n"

    def _mqtt_families(self) -> list[_Family]:
        assert self._mqtt is not None
        pub, outbox = self._mqtt.stats, self._mqtt.outbox
        depth = _Family("vitaledge_outbox_depth", "gauge", "records waiting for a PUBACK")
        depth.add(outbox.depth)
        size = _Family("vitaledge_outbox_bytes", "gauge", "payload bytes waiting")
        size.add(outbox.size_bytes)
        evicted = _Family("vitaledge_outbox_evicted_total", "counter", "records dropped by the outbox bounds")
        evicted.add(outbox.evicted)
        published = _Family("vitaledge_mqtt_published_total", "counter", "records acknowledged by the broker")
        published.add(pub.published, topic="vitals")
        published.add(pub.replayed, topic="history")
        up = _Family("vitaledge_mqtt_connected", "gauge", "1 while connected to the broker")
        up.add(1.0 if pub.connected else 0.0)
        reconnects = _Family("vitaledge_mqtt_reconnects_total", "counter", "connections after the first")
        reconnects.add(max(0, pub.connects - 1))
        failures = _Family("vitaledge_mqtt_connect_failures_total", "counter", "failed connection attempts")
        failures.add(pub.connect_failures)
        return [depth, size, evicted, published, up, reconnects, failures]
