"""Prometheus text at /metrics: per-source fps and drops, latency, outbox depth, reconnects, errors."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from edge.config import MqttConfig, OverlayConfig
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox
from edge.stats import AppStats
from edge.web.metrics import Metrics
from edge.web.overlay import Overlay

LINE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>[-+0-9.e]+|NaN)$')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample line, keyed by name and labels; asserts each family has HELP and TYPE first."""
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge")
            declared.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = LINE.match(line)
        assert match, f"not exposition format: {line!r}"
        assert match["name"] in declared, f"{match['name']} sampled before its TYPE"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        values[(match["name"], labels)] = float(match["value"])
    return values


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def app_stats() -> AppStats:
    stats = AppStats()
    rig = stats.source("rig")
    rig.samples_by_kind.update({"VisibleFrame": 300, "ThermalFrame": 87})
    rig.dropped = 4
    rig.restarts = 1
    rig.connected = True
    rig.errors["crc"] += 2
    stats.records = 10
    stats.fusion_latency_s = 0.004
    stats.errors["rejected_sample"] += 3
    return stats


def test_fps_per_source_and_kind_over_the_scrape_interval() -> None:
    stats = app_stats()
    now = [100.0]
    metrics = Metrics(stats, clock=lambda: now[0])
    now[0] = 110.0
    first = parse(metrics.render())
    assert first[key("vitaledge_source_fps", source="rig", kind="VisibleFrame")] == pytest.approx(30.0)
    assert first[key("vitaledge_source_fps", source="rig", kind="ThermalFrame")] == pytest.approx(8.7)
    stats.sources["rig"].samples_by_kind["VisibleFrame"] += 150
    now[0] = 120.0
    second = parse(metrics.render())
    assert second[key("vitaledge_source_fps", source="rig", kind="VisibleFrame")] == pytest.approx(15.0)
    assert second[key("vitaledge_source_fps", source="rig", kind="ThermalFrame")] == 0.0
    assert second[key("vitaledge_source_dropped_total", source="rig")] == 4
    assert second[key("vitaledge_source_restarts_total", source="rig")] == 1
    assert second[key("vitaledge_errors_total", source="rig", kind="crc")] == 2
    assert second[key("vitaledge_errors_total", source="app", kind="rejected_sample")] == 3
    assert second[key("vitaledge_fusion_latency_seconds")] == pytest.approx(0.004)
    assert second[key("vitaledge_records_total")] == 10


def test_publisher_and_outbox_figures(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite")
    for seq in range(7):
        outbox.put(seq, b'{"seq":%d}' % seq)
    sink = MqttSink(MqttConfig(), url="mqtt://127.0.0.1:1", device_id="m", outbox=outbox)
    sink.stats.connects, sink.stats.connect_failures, sink.stats.published = 3, 5, 40
    values = parse(Metrics(AppStats(), mqtt=sink).render())
    assert values[key("vitaledge_outbox_depth")] == 7
    assert values[key("vitaledge_outbox_bytes")] == outbox.size_bytes > 0
    assert values[key("vitaledge_mqtt_reconnects_total")] == 2
    assert values[key("vitaledge_mqtt_connect_failures_total")] == 5
    assert values[key("vitaledge_mqtt_published_total", topic="vitals")] == 40
    assert values[key("vitaledge_mqtt_connected")] == 0
    outbox.close()


def test_label_values_are_escaped() -> None:
    stats = AppStats()
    stats.source('cam "a"\\b').samples_by_kind["VisibleFrame"] = 1
    text = Metrics(stats).render()
    assert 'source="cam \\"a\\"\\\\b"' in text
    parse(text)


async def test_served_over_http_even_with_the_overlay_page_off() -> None:
    stats = app_stats()
    server = Overlay(OverlayConfig(port=0), serve_page=False, metrics=Metrics(stats))
    async with server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            values = parse(await resp.text())
        assert values[key("vitaledge_source_connected", source="rig")] == 1
        async with http.get(f"{server.url}") as resp:
            assert resp.status == 404, "the page is off"


def test_fusion_queue_drops_latency_and_event_loop_lag_quantiles() -> None:
    stats = app_stats()
    stats.source("rig").fusion_dropped = 5
    for ms in range(1, 101):  # 1..100 ms: the median is 50 ms, the 99th percentile 99 ms
        stats.fusion_latency.add(ms / 1000)
        stats.event_loop_lag.add(ms / 10_000)
    values = parse(Metrics(stats).render())
    assert values[key("vitaledge_fusion_dropped_total", source="rig")] == 5
    assert values[key("vitaledge_fusion_latency_quantile_seconds", quantile="0.5")] == pytest.approx(0.050)
    assert values[key("vitaledge_fusion_latency_quantile_seconds", quantile="0.99")] == pytest.approx(0.099)
    assert values[key("vitaledge_event_loop_lag_seconds", quantile="0.99")] == pytest.approx(0.0099)
