"""The overlay against hostile clients on loopback: rebound host names, too many and too slow connections,
malformed requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.config import OverlayConfig
from edge.web.overlay import Overlay


@pytest.fixture
async def overlay() -> AsyncIterator[Overlay]:
    cfg = OverlayConfig(port=0, allowed_hosts=["pi.lan"], max_connections=4, idle_timeout_s=0.3)
    async with Overlay(cfg, device_id="hostile") as ov:
        yield ov


def _port(overlay: Overlay) -> int:
    assert overlay.url is not None
    return int(overlay.url.rstrip("/").rsplit(":", 1)[1])


async def _request(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes (or 5 s): the status line and whatever followed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def _get(host: str) -> bytes:
    return f"GET /api/live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def test_only_configured_host_names_are_served(overlay: Overlay) -> None:
    port = _port(overlay)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "pi.lan"):
        assert (await _request(port, _get(host))).startswith(b"HTTP/1.1 200"), host
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", ""):
        reply = await _request(port, _get(host))
        assert reply.startswith(b"HTTP/1.1 421"), host
        assert b"hostile" not in reply, "no data for a rebound name"
    assert overlay.errors["overlay_host_refused"] == 4


async def test_connections_beyond_the_cap_are_closed_and_the_held_ones_time_out(overlay: Overlay) -> None:
    port = _port(overlay)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    held[0][1].write(b"GET / HTTP/1.1\r\nHost: local")  # slowloris: headers that never end
    await held[0][1].drain()
    assert await _request(port, _get("localhost")) == b"", "the fifth is closed at once"
    assert overlay.errors["overlay_connection_refused"] >= 1
    for reader, writer in held:  # idle and slow ones are closed after idle_timeout_s
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert overlay.errors["overlay_idle_closed"] == 4
    assert (await _request(port, _get("localhost"))).startswith(b"HTTP/1.1 200"), "room again"


async def test_a_stream_being_watched_is_not_timed_out(overlay: Overlay) -> None:
    port = _port(overlay)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream/visible.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    with pytest.raises(TimeoutError):  # still open well past idle_timeout_s: it is in a request
        await asyncio.wait_for(reader.read(1), 1.0)
    assert overlay.viewers == 1
    writer.close()


async def test_malformed_requests_are_logged_once_without_a_traceback(
    overlay: Overlay, caplog: pytest.LogCaptureFixture
) -> None:
    port = _port(overlay)
    for _ in range(20):
        reply = await _request(port, b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n")
        assert b" 400 Bad Request" in reply.split(b"\r\n", 1)[0]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and not lines[0].exc_info and "Traceback" not in caplog.text
    assert (await _request(port, _get("localhost"))).startswith(b"HTTP/1.1 200")


def test_the_unit_sets_an_open_files_limit_above_the_connection_cap() -> None:
    unit = (Path(__file__).resolve().parents[1] / "systemd" / "vitaledge.service").read_text(encoding="utf-8")
    limits = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1 and int(limits[0]) >= 10 * OverlayConfig().max_connections
