"""The overlay server over real HTTP: lazy encoding, capped MJPEG, live numbers, faults never fatal."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import cv2
import numpy as np
import pytest

from edge.config import OverlayConfig
from edge.web.overlay import Overlay, pulse_view_json
from tests.overlay_frames import pulse_view, readings, thermal_frame, visible_frame
from tests.test_mqtt_outage import make_record


@pytest.fixture
async def overlay() -> AsyncIterator[Overlay]:
    async with Overlay(OverlayConfig(port=0, fps=10.0, chart_s=10.0), device_id="test-overlay") as ov:
        assert ov.url is not None and ov.url.startswith("http://127.0.0.1:")
        yield ov


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "a valid JPEG"
    return image


async def test_nothing_is_encoded_until_someone_watches(overlay: Overlay) -> None:
    hr, th = readings()
    for seq in range(50):
        overlay.observe(visible_frame(seq), hr, th)
        overlay.observe(thermal_frame(seq), hr, th)
    assert overlay.encoded_frames == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{overlay.url}snapshot/visible.jpg") as resp:
            assert resp.status == 200 and resp.content_type == "image/jpeg"
            assert decode(await resp.read()).shape == (480, 640, 3)
        async with http.get(f"{overlay.url}snapshot/visible.jpg") as resp:
            await resp.read()
        assert overlay.encoded_frames == 1, "one frame encoded once, whatever the number of requests"
        async with http.get(f"{overlay.url}snapshot/thermal.jpg") as resp:
            assert decode(await resp.read()).shape == (480, 640, 3), "160×120 thermal drawn ×4"


async def read_parts(resp: aiohttp.ClientResponse, seconds: float) -> list[bytes]:
    parts: list[bytes] = []
    buffer = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(resp.content.readany(), deadline - time.monotonic())
        except TimeoutError:
            break
        buffer += chunk
        while (start := buffer.find(b"\xff\xd8")) >= 0 and (end := buffer.find(b"\xff\xd9", start)) >= 0:
            parts.append(buffer[start : end + 2])
            buffer = buffer[end + 2 :]
    return parts


async def test_mjpeg_sends_the_latest_frame_at_the_capped_rate(overlay: Overlay) -> None:
    hr, th = readings()
    overlay.observe(visible_frame(0), hr, th)

    async def feed() -> None:  # 50 fps in, 10 fps cap out
        for seq in range(1, 100):
            overlay.observe(visible_frame(seq), hr, th)
            await asyncio.sleep(0.02)

    feeding = asyncio.create_task(feed())
    async with aiohttp.ClientSession() as http, http.get(f"{overlay.url}stream/visible.mjpg") as resp:
        assert resp.content_type == "multipart/x-mixed-replace"
        parts = await read_parts(resp, 1.5)
        assert overlay.viewers == 1
    await feeding
    assert 5 <= len(parts) <= 18, f"about 10 fps for 1.5 s, got {len(parts)}"
    images = [decode(p) for p in parts]
    assert not np.array_equal(images[0], images[-1]), "the square moves"
    assert overlay.encoded_frames <= len(parts) + 2, "frames nobody was sent were never encoded"
    await asyncio.sleep(0.3)
    assert overlay.viewers == 0


async def test_live_numbers_and_a_bounded_chart(overlay: Overlay) -> None:
    start = time.time() - 30
    for seq in range(30):
        record = make_record("test-overlay", seq)
        record = type(record)(device_id=record.device_id, seq=seq, t_mono=record.t_mono, t_wall=start + seq,
                              heart_rate=record.heart_rate, thermal=record.thermal)
        await overlay.send(record)
    async with aiohttp.ClientSession() as http, http.get(f"{overlay.url}api/live") as resp:
        live = await resp.json()
    assert live["record"]["seq"] == 29
    assert live["record"]["heart_rate"]["bpm"] == pytest.approx(60.0 + 29 % 30)
    assert len(live["history"]["t"]) == 11, "chart_s = 10: the last 10 s of records"
    assert live["history"]["temp_c"][-1] == pytest.approx(36.6)


async def test_the_page_and_its_assets_are_served_locally(overlay: Overlay) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(overlay.url or "") as resp:
            page = await resp.text()
        assert resp.status == 200 and "/stream/visible.mjpg" in page and "<canvas" in page
        assert "http://" not in page and "https://" not in page, "nothing external can load"
        for name in ("overlay.js", "overlay.css"):
            async with http.get(f"{overlay.url}static/{name}") as resp:
                assert resp.status == 200 and "http" not in await resp.text()
        async with http.get(f"{overlay.url}static/../config.py") as resp:
            assert resp.status == 404


async def test_a_corrupt_frame_is_counted_logged_once_and_the_stream_goes_on(
    overlay: Overlay, caplog: pytest.LogCaptureFixture
) -> None:
    hr, th = readings(bpm=None)
    async with aiohttp.ClientSession() as http:
        for seq in range(3):
            overlay.observe(visible_frame(seq, shape=(480, 640)), hr, th)  # greyscale where BGR is expected
            async with http.get(f"{overlay.url}snapshot/visible.jpg") as resp:
                assert resp.status == 503
        overlay.observe(visible_frame(3), hr, th)
        async with http.get(f"{overlay.url}snapshot/visible.jpg") as resp:
            assert resp.status == 200
    assert overlay.errors["overlay_visible_frame"] == 3
    lines = [r for r in caplog.records if "overlay_visible_frame" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING


async def test_a_taken_port_disables_the_overlay_without_failing(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Overlay(OverlayConfig(port=port)) as ov:
            assert ov.url is None
            hr, th = readings()
            ov.observe(visible_frame(0), hr, th)  # still a harmless sink
    assert any("cannot listen" in r.getMessage() for r in caplog.records)


def test_thermal_view_draws_face_palm_and_wrist_regions() -> None:
    from edge.web.draw import false_colour

    _, th = readings()
    frame = thermal_frame(0)
    drawn = false_colour(frame.celsius, th)
    bare = false_colour(frame.celsius, dataclasses.replace(th, palm_box=None, wrist_box=None))
    assert drawn.shape == (480, 640, 3)
    for box in (th.palm_box, th.wrist_box):
        assert box is not None
        x0, y0 = round(box.x * 4), round(box.y * 4)
        edge = (slice(y0, y0 + round(box.h * 4)), slice(x0 - 1, x0 + 2))  # the left side of the rectangle
        assert not np.array_equal(drawn[edge], bare[edge]), "region outlined"


async def test_pulse_view_json(overlay: Overlay) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{overlay.url}api/pulse") as resp:
            assert resp.status == 200 and await resp.json() == {"method": None, "flags": [], "view": None}
        hr, th = readings(bpm=None)
        overlay.observe(visible_frame(0), dataclasses.replace(hr, flags=("warming_up",)), th)
        async with http.get(f"{overlay.url}api/pulse") as resp:
            assert await resp.json() == {"method": "pos", "flags": ["warming_up"], "view": None}
        view = pulse_view(80.0, confidence=0.2)
        overlay.observe(thermal_frame(1), dataclasses.replace(hr, bpm=view.peak_bpm, pulse_view=view), th)
        async with http.get(f"{overlay.url}api/pulse") as resp:
            body = await resp.json()
    shown = body["view"]
    assert body["method"] == "pos" and shown is not None
    assert len(shown["pulse"]["age_s"]) == len(shown["pulse"]["value"]) == 300
    assert shown["pulse"]["age_s"][-1] == 0.0 and shown["pulse"]["age_s"][0] == pytest.approx(9.967)
    spectrum = shown["spectrum"]
    assert len(spectrum["bpm"]) == len(spectrum["chosen_power"]) == len(spectrum["newest_power"]) == 318
    assert spectrum["bpm"][int(np.argmax(spectrum["chosen_power"]))] == pytest.approx(80.0, abs=0.3)
    assert spectrum["chosen_age_s"] == 3.0
    assert shown["peak"] == {"bpm": 80.0, "confidence": 0.2, "low_confidence": True, "low_confidence_below": 0.25}
    assert shown["path"]["age_s"][0] == 30.0 and shown["path"]["age_s"][-1] == 3.0
    assert shown["path"]["bpm"][-1] == 80.0 and len(shown["path"]["confidence"]) == 28
    assert shown["ahead"] == {"age_s": [2.0, 1.0, 0.0], "bpm": [80.5, 81.0, 81.5]}


def test_pulse_view_json_has_no_nan() -> None:
    view = pulse_view()
    power = view.power.copy()
    power[:5] = np.nan
    shown = pulse_view_json(dataclasses.replace(view, power=power))
    spectrum = shown["spectrum"]
    assert isinstance(spectrum, dict)
    assert spectrum["newest_power"][:6] == [None] * 5 + [pytest.approx(float(power[5]), abs=1e-4)]
