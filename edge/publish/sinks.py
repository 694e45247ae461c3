"""Build the configured sinks, in start order (the app stops them in reverse), behind one dispatcher."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

from edge.config import VitalEdgeConfig
from edge.publish.dispatch import Dispatcher, Sink
from edge.publish.homeassistant import discovery_message
from edge.publish.mqtt import MqttSink
from edge.publish.outbox import Outbox, default_outbox_path
from edge.stats import AppStats
from fusion.errors import ConfigError

__all__ = ["build_dispatcher", "build_mqtt_sink"]


def build_mqtt_sink(cfg: VitalEdgeConfig, *, mqtt_url: str) -> MqttSink:
    """The MQTT publisher with its outbox (opened now) and, when enabled, Home Assistant discovery.

    Args:
        cfg: the validated configuration.
        mqtt_url: the broker to use (``cfg.mqtt.url`` or the embedded broker's).

    Returns:
        The sink, not yet started.

    Raises:
        ConfigError: the outbox cannot be created where configured (a read-only or virtual file system).
    """
    out = cfg.outbox
    path = out.path or default_outbox_path(cfg.device_id)
    try:
        outbox = Outbox(path, max_rows=out.max_rows, max_bytes=out.max_bytes, max_age_s=out.max_age_s)
    except (OSError, sqlite3.Error) as exc:  # a damaged file is recovered inside; this is a place it cannot be
        raise ConfigError(f"outbox.path {path}: cannot open an outbox there: {exc}") from exc
    base_topic = f"vitaledge/{cfg.device_id}"
    ha = cfg.homeassistant
    discovery = (
        discovery_message(
            cfg.device_id,
            base_topic=base_topic,
            prefix=ha.discovery_prefix,
            expire_after_s=ha.expire_after_s,
            name=ha.name,
            qos=cfg.mqtt.qos,
        )
        if ha.enabled
        else None
    )
    return MqttSink(
        cfg.mqtt,
        url=mqtt_url,
        device_id=cfg.device_id,
        outbox=outbox,
        replay_rate_hz=out.replay_rate_hz,
        memory_max_records=out.memory_max_records,
        discovery=discovery,
    )


def build_dispatcher(
    cfg: VitalEdgeConfig, stats: AppStats, *, mqtt_url: str, extra_sinks: Sequence[Sink] = ()
) -> Dispatcher:
    """Every sink the configuration asks for (MQTT first, then the overlay/metrics server and systemd), numbering
    records where the outbox left off, so a restarted app continues its predecessor's sequence.

    Args:
        cfg: the validated configuration.
        stats: the app's counters (metrics and the watchdog read them).
        mqtt_url: the broker to use.
        extra_sinks: sinks after the configured ones (the demo's summary, tests).

    Returns:
        The dispatcher; its sinks are not yet started.
    """
    mqtt = build_mqtt_sink(cfg, mqtt_url=mqtt_url)
    sinks: list[Sink] = [mqtt]
    if cfg.overlay.enabled or cfg.metrics.enabled:
        from edge.web.metrics import Metrics
        from edge.web.overlay import Overlay

        overlay = Overlay(
            cfg.overlay, device_id=cfg.device_id, serve_page=cfg.overlay.enabled, privacy=cfg.privacy.mode
        )
        if cfg.metrics.enabled:
            overlay.metrics = Metrics(stats, mqtt=mqtt, viewers=lambda: overlay.viewers)
        sinks.append(overlay)
    if cfg.overlay.window:
        from edge.web.window import WindowSink

        sinks.append(WindowSink(fps=cfg.overlay.fps, privacy=cfg.privacy.mode))
    if os.environ.get("NOTIFY_SOCKET"):
        from edge.service import ServiceSink

        sinks.append(ServiceSink(cfg.service, outbox_depth=lambda: mqtt.outbox.depth))
    return Dispatcher([*sinks, *extra_sinks], first_seq=mqtt.next_seq)
