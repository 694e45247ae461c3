"""The overlay page in a real headless Chromium (Debian ``chromium``), driven over the DevTools protocol.

No extra dependency: aiohttp's websocket client speaks CDP to the browser. The page must show a live
heart-rate number (its JavaScript ran against /api/live), a moving image (two screenshots differ) and the
pulse view's two plots (pixels of each plot's colours read back from its canvas).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from edge.config import OverlayConfig
from edge.web.overlay import Overlay
from tests.overlay_frames import readings, thermal_frame, visible_frame
from tests.test_mqtt_outage import make_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed; `make test` installs it")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
    "--window-size=1280,900",
]


class DevTools:
    """One page target over CDP: navigate, evaluate JavaScript, capture screenshots."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = json.loads(await asyncio.wait_for(self._ws.receive_str(), 20))
            if message.get("id") == call_id:
                assert "error" not in message, message
                result = message["result"]
                assert isinstance(result, dict)
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self, *, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            width, height = await self.evaluate("[document.body.scrollWidth, document.body.scrollHeight]")
            clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params |= {"captureBeyondViewport": True, "clip": clip}
        return base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])


# Pixels of each plot's own colours (overlay.js) on the two pulse canvases; 0 where nothing was drawn.
COUNT_PLOT_PIXELS = """(() => {
  const colours = { wave: [102, 221, 102], path: [255, 102, 102], spectrum: [102, 204, 255], peak: [255, 221, 51] };
  const counts = {};
  for (const id of ["pulse-wave", "pulse-track"]) {
    const c = document.getElementById(id);
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const n = {};
    for (const [name, rgb] of Object.entries(colours)) {
      n[name] = 0;
      for (let i = 0; i < d.length; i += 4) {
        const off = Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]);
        if (d[i + 3] > 200 && off < 40) n[name]++;
      }
    }
    counts[id] = n;
  }
  return counts;
})()"""


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        endpoint = None
        deadline = time.monotonic() + 30
        while endpoint is None and time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stderr.readline)
            if not line and proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            if found := re.search(r"DevTools listening on (ws://\S+)", line):
                endpoint = found.group(1)
        assert endpoint is not None, "chromium printed its DevTools endpoint"
        port = int(re.findall(r":(\d+)/", endpoint)[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


async def feed(overlay: Overlay, stop: asyncio.Event) -> None:
    """The pipeline stand-in: 20 fps of moving frames and a record every 0.5 s."""
    hr, th = readings(bpm=72.0)
    seq = 0
    while not stop.is_set():
        overlay.observe(visible_frame(seq), hr, th)
        if seq % 2 == 0:
            overlay.observe(thermal_frame(seq), hr, th)
        if seq % 10 == 0:
            await overlay.send(make_record("browser-test", seq // 10))
        seq += 1
        await asyncio.sleep(0.05)


def png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.mark.slow
async def test_page_shows_live_heart_rate_and_a_moving_image(tmp_path: Path) -> None:
    stop = asyncio.Event()
    async with Overlay(OverlayConfig(port=0, fps=10.0), device_id="browser-test") as overlay:
        feeding = asyncio.create_task(feed(overlay, stop))
        try:
            async with chromium(tmp_path / "profile") as page:
                await page.call("Page.enable")
                await page.call("Page.navigate", url=overlay.url)
                hr_text = ""
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    hr_text = await page.evaluate("document.getElementById('hr').textContent") or ""
                    loaded = await page.evaluate("document.getElementById('visible').naturalWidth")
                    if re.fullmatch(r"\d{2,3}", hr_text) and loaded:
                        break
                    await asyncio.sleep(0.25)
                assert re.fullmatch(r"\d{2,3}", hr_text), f"a live HR number on the page, got {hr_text!r}"
                assert 60 <= int(hr_text) < 90
                assert await page.evaluate("document.getElementById('state').textContent") == "live"
                assert await page.evaluate("document.getElementById('visible').naturalWidth") == 640
                pulse_state = ""
                while time.monotonic() < deadline and "bpm" not in pulse_state:
                    pulse_state = await page.evaluate("document.getElementById('pulse-state').textContent") or ""
                    await asyncio.sleep(0.25)
                assert pulse_state == "pos: 72 bpm, confidence 0.85", pulse_state
                plots = await page.evaluate(COUNT_PLOT_PIXELS)
                (tmp_path / "overlay-full.png").write_bytes(await page.screenshot(full_page=True))
                first = await page.screenshot()
                await asyncio.sleep(1.0)
                second = await page.screenshot()
                (tmp_path / "overlay-1.png").write_bytes(first)
                (tmp_path / "overlay-2.png").write_bytes(second)
                assert overlay.viewers >= 2, "both MJPEG streams are being watched"
        finally:
            stop.set()
            await feeding
    a, b = png(first), png(second)
    assert a.shape == b.shape and a.shape[1] >= 1000
    changed = np.mean(np.any(a != b, axis=2))
    assert changed > 0.005, f"the image moves between screenshots ({changed:.4f} of pixels changed)"
    assert a.std() > 10, "not a blank page"
    wave, track = plots["pulse-wave"], plots["pulse-track"]
    assert wave["wave"] > 300, f"the pulse is drawn across the plot: {wave}"
    assert wave["path"] == wave["peak"] == 0, wave
    assert track["path"] > 150, f"the tracker's path is drawn: {track}"
    assert track["spectrum"] > 100, f"the spectrum is drawn: {track}"
    assert track["peak"] > 40, f"the chosen peak is marked: {track}"
    assert track["wave"] == 0, track
