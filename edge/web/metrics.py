"""The app's counters as Prometheus metrics (prometheus_client), served at ``/metrics``.

A custom collector reads what the app already keeps (AppStats), the MQTT publisher's counters and the
outbox at scrape time; it never keeps a copy of its own except the previous sample counts, to turn them
into frames per second. Counters follow the library's convention: the family is named without
``_total`` and its sample carries it (``vitaledge_records_total``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.publish.mqtt import MqttSink
from edge.stats import AppStats, RollingQuantiles

__all__ = ["CONTENT_TYPE", "Metrics"]

# generate_latest writes the 0.0.4 text format (prometheus_client's CONTENT_TYPE_LATEST may name a newer one).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_QUANTILES = (0.5, 0.99)


def _quantiles(name: str, help_text: str, window: RollingQuantiles) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["quantile"])
    for q in _QUANTILES:
        family.add_metric([str(q)], window.quantile(q))
    return family


class Metrics(Collector):
    """Collects the app's metrics and renders the page.

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
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def _fps(self, source: str, kind: str, samples: int, now: float) -> float:
        """Rate since the previous scrape (or since start on the first one)."""
        then, before = self._previous.get((source, kind), (self._started_s, 0))
        self._previous[(source, kind)] = (now, samples)
        return (samples - before) / (now - then) if now > then else 0.0

    def render(self) -> str:
        """The whole page, one family per metric."""
        return generate_latest(self.registry).decode()

    def collect(self) -> Iterator[Metric]:
        """Every family, read from the counters now."""
        now = self._clock()
        st = self._stats
        fps = GaugeMetricFamily(
            "vitaledge_source_fps", "samples per second since the previous scrape", labels=["source", "kind"]
        )
        samples = CounterMetricFamily("vitaledge_source_samples", "samples received", labels=["source", "kind"])
        dropped = CounterMetricFamily(
            "vitaledge_source_dropped", "samples the source dropped because the app was slow", labels=["source"]
        )
        fused_fps = GaugeMetricFamily(
            "vitaledge_fusion_fps", "samples fused per second since the previous scrape", labels=["source", "kind"]
        )
        fusion_skipped = CounterMetricFamily(
            "vitaledge_fusion_skipped", "live frames left out evenly so fusion keeps up (slow CPU)", labels=["source"]
        )
        fusion_dropped = CounterMetricFamily(
            "vitaledge_fusion_dropped", "live samples the fusion queue dropped, oldest first", labels=["source"]
        )
        restarts = CounterMetricFamily(
            "vitaledge_source_restarts", "times the supervisor reopened a source", labels=["source"]
        )
        connected = GaugeMetricFamily("vitaledge_source_connected", "1 while the source is open", labels=["source"])
        errors = CounterMetricFamily(
            "vitaledge_errors", "faults counted and skipped, by source and kind", labels=["source", "kind"]
        )
        for name, src in sorted(st.sources.items()):
            for kind, count in sorted(src.samples_by_kind.items()):
                fps.add_metric([name, kind], self._fps(name, kind, count, now))
                samples.add_metric([name, kind], count)
            for kind, count in sorted(src.fused_by_kind.items()):
                fused_fps.add_metric([name, kind], self._fps(name, f"fused:{kind}", count, now))
            fusion_skipped.add_metric([name], src.fusion_skipped)
            dropped.add_metric([name], src.dropped)
            fusion_dropped.add_metric([name], src.fusion_dropped)
            restarts.add_metric([name], src.restarts)
            connected.add_metric([name], 1.0 if src.connected else 0.0)
            for kind, count in sorted(src.errors.items()):
                errors.add_metric([name, kind], count)
        for kind, count in sorted(st.errors.items()):
            errors.add_metric(["app", kind], count)
        yield from (fps, samples, fused_fps, dropped, fusion_skipped, fusion_dropped, restarts, connected, errors)
        yield CounterMetricFamily("vitaledge_records", "VitalsRecords produced by fusion", value=st.records)
        yield GaugeMetricFamily(
            "vitaledge_fusion_latency_seconds", "fusion time of the latest sample", value=st.fusion_latency_s
        )
        yield _quantiles(
            "vitaledge_fusion_latency_quantile_seconds", "fusion time per sample, recent window", st.fusion_latency
        )
        yield GaugeMetricFamily(
            "vitaledge_fusion_queue_depth", "samples waiting for the fusion worker", value=st.fusion_queue_depth
        )
        yield GaugeMetricFamily(
            "vitaledge_degraded", "1 while frames are thinned because fusion cannot keep up", value=float(st.degraded)
        )
        yield GaugeMetricFamily(
            "vitaledge_fusion_scale", "share of each frame stream fusion keeps (floors apply)", value=st.fusion_scale
        )
        yield CounterMetricFamily(
            "vitaledge_record_queue_waits", "times fusion waited for room in the record queue", value=st.record_waits
        )
        yield _quantiles(
            "vitaledge_event_loop_lag_seconds", "how late the event loop woke a timer, recent window", st.event_loop_lag
        )
        age = time.monotonic() - st.last_record_monotonic_s if st.last_record_monotonic_s is not None else -1.0
        yield GaugeMetricFamily(
            "vitaledge_last_record_age_seconds", "time since the latest record (-1: none)", value=age
        )
        uptime_s = now - self._started_s
        yield GaugeMetricFamily("vitaledge_uptime_seconds", "time since the metrics started", value=uptime_s)
        if self._mqtt is not None:
            yield from self._mqtt_families(self._mqtt)
        if self._viewers is not None:
            yield GaugeMetricFamily("vitaledge_overlay_viewers", "overlay streams being watched", value=self._viewers())

    @staticmethod
    def _mqtt_families(mqtt: MqttSink) -> Iterator[Metric]:
        pub, outbox = mqtt.stats, mqtt.outbox
        yield GaugeMetricFamily("vitaledge_outbox_depth", "records waiting for a PUBACK", value=outbox.depth)
        yield GaugeMetricFamily("vitaledge_outbox_bytes", "payload bytes waiting", value=outbox.size_bytes)
        yield CounterMetricFamily(
            "vitaledge_outbox_evicted", "records dropped by the outbox bounds", value=outbox.evicted
        )
        yield GaugeMetricFamily(
            "vitaledge_outbox_quarantined", "1 when a damaged outbox was moved aside at start",
            value=outbox.quarantined is not None,
        )
        yield CounterMetricFamily(
            "vitaledge_outbox_salvaged", "records copied out of a damaged outbox at start", value=outbox.salvaged
        )
        yield CounterMetricFamily(
            "vitaledge_outbox_write_failures", "records the outbox could not store (disk full)",
            value=pub.outbox_write_failures,
        )
        yield GaugeMetricFamily(
            "vitaledge_outbox_memory_depth", "records held in memory while the outbox cannot write",
            value=mqtt.memory_depth,
        )
        yield CounterMetricFamily(
            "vitaledge_records_lost", "records dropped while the outbox could not write", value=pub.memory_dropped
        )
        published = CounterMetricFamily(
            "vitaledge_mqtt_published", "records acknowledged by the broker", labels=["topic"]
        )
        published.add_metric(["vitals"], pub.published)
        published.add_metric(["history"], pub.replayed)
        yield published
        yield GaugeMetricFamily("vitaledge_mqtt_connected", "1 while connected to the broker", value=pub.connected)
        yield CounterMetricFamily(
            "vitaledge_mqtt_reconnects", "connections after the first", value=max(0, pub.connects - 1)
        )
        yield CounterMetricFamily(
            "vitaledge_mqtt_connect_failures", "failed connection attempts", value=pub.connect_failures
        )
