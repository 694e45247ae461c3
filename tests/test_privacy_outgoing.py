"""privacy.mode reaches every image that leaves the device; heart rate runs on lensed input.

What leaves is compared with the raw frame and with the lensed one: with privacy on it must be the
lensed frame (up to JPEG and sensor noise) and far from the raw one, on a sharp texture where the two
differ everywhere. A source scan fails when a new module starts writing or encoding images without
being listed here (and so tested).
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from edge.build import build_fusion, build_heart_rate_pipeline
from edge.config import HeartRateConfig, OverlayConfig, VitalEdgeConfig, load_config
from edge.privacy import build_lensing
from edge.publish.sinks import build_dispatcher
from edge.recorder import Recorder
from edge.stats import AppStats
from edge.web.draw import false_colour
from edge.web.overlay import Overlay
from edge.web.window import WindowSink
from fusion.errors import ConfigError
from fusion.privacy import Lensing
from fusion.samples import ThermalFrame, VisibleFrame
from fusion.skinregion import SkinRegionDetector
from tests.overlay_frames import readings

REPO = Path(__file__).resolve().parents[1]
_BANNER_ROWS = 70  # annotate_visible shades and writes on the top rows

# Every module that encodes, shows or writes an image, and the test below that covers it.
IMAGE_OUTPUTS = {
    "edge/web/draw.py": "encode_jpeg itself; its callers are listed",
    "edge/web/overlay.py": "test_overlay_streams_and_snapshots_carry_only_lensed_frames",
    "edge/web/window.py": "test_window_shows_the_lensed_frame",
    "edge/recorder.py": "test_shareable_recording_holds_only_lensed_images",
    "edge/evaluation/masks_plot.py": "matplotlib plot of agreement maps, no camera frame",
}


def _texture(seed: int = 0, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (shape[0] // 4, shape[1] // 4, 3), dtype=np.uint8)
    image = np.asarray(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST), np.uint8)
    image.flags.writeable = False
    return image


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[_BANNER_ROWS:].astype(np.int16) - b[_BANNER_ROWS:].astype(np.int16)).mean())


def _plain_readings() -> tuple[object, object]:
    hr, th = readings(None)
    hr = dataclasses.replace(hr, face_box=None)
    th = dataclasses.replace(th, face_box=None, palm_box=None, wrist_box=None)
    return hr, th


def _lensed_reference(image: np.ndarray, mode: str) -> np.ndarray:
    lensing = build_lensing(mode)  # type: ignore[arg-type]
    assert lensing is not None
    return lensing.apply(image)


def test_every_module_that_writes_images_is_covered() -> None:
    pattern = re.compile(r"imencode|imshow|imwrite|VideoWriter\(|savez|encode_jpeg\(")
    writers = {
        str(p.relative_to(REPO))
        for folder in ("edge", "fusion", "drivers")
        for p in (REPO / folder).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
        and not str(p.relative_to(REPO)).startswith("drivers/synthetic_scene")  # simulates a camera's JPEG
    }
    assert writers <= set(IMAGE_OUTPUTS), f"uncovered image outputs: {sorted(writers - set(IMAGE_OUTPUTS))}"
    # MQTT publishes records only: nothing under edge/publish encodes an image.
    assert not [w for w in writers if w.startswith("edge/publish/")]


def test_privacy_config_validates() -> None:
    assert VitalEdgeConfig().privacy.mode == "off"
    assert VitalEdgeConfig(privacy={"mode": "lens"}).privacy.mode == "lens"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"privacy\.mode"):
        load_config(None, {"privacy": {"mode": "blur"}})
    with pytest.raises(ConfigError, match="lensed"):
        load_config(None, {"heart_rate": {"input": "lensed"}})


def test_the_configured_mode_reaches_the_overlay_and_window_sinks() -> None:
    cfg = load_config(None, {"privacy": {"mode": "lens"}, "overlay": {"window": True, "port": 0}})
    sinks = build_dispatcher(cfg, AppStats(), mqtt_url="mqtt://127.0.0.1:1").sinks
    image = _texture(1)
    hr, th = _plain_readings()
    overlay = next(s for s in sinks if isinstance(s, Overlay))
    window = next(s for s in sinks if isinstance(s, WindowSink))
    frame = VisibleFrame(t_mono=1, t_wall=0.0, source="webcam", seq=0, image=image)
    shown = window.render(frame, hr, th)  # type: ignore[arg-type]
    assert _distance(shown, _lensed_reference(image, "lens")) < 3.0
    assert _distance(shown, image) > 30.0
    assert overlay._lensing["visible"] is not None and overlay._lensing["visible"].name == "lens"


@pytest.mark.parametrize("mode", ["defocus", "lowres16", "lens"])
async def test_overlay_streams_and_snapshots_carry_only_lensed_frames(mode: str) -> None:
    image = _texture(2)
    celsius = (24.0 + 12.0 * _texture(3, (120, 160))[:, :, 0] / 255.0).astype(np.float32)
    hr, th = _plain_readings()
    async with Overlay(OverlayConfig(port=0), privacy=mode) as overlay:  # type: ignore[arg-type]
        overlay.observe(VisibleFrame(t_mono=1, t_wall=0.0, source="webcam", seq=0, image=image), hr, th)  # type: ignore[arg-type]
        overlay.observe(ThermalFrame(t_mono=2, t_wall=0.0, source="thermal", seq=0, celsius=celsius), hr, th)  # type: ignore[arg-type]
        got: dict[str, np.ndarray] = {}
        async with aiohttp.ClientSession() as http:
            for stream in ("visible", "thermal"):
                async with http.get(f"{overlay.url}snapshot/{stream}.jpg") as resp:
                    got[f"snapshot {stream}"] = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), 1)
                async with http.get(f"{overlay.url}stream/{stream}.mjpg") as resp:
                    buffer = b""
                    deadline = time.monotonic() + 5
                    while b"\xff\xd9" not in buffer and time.monotonic() < deadline:
                        buffer += await resp.content.readany()
                    start = buffer.index(b"\xff\xd8")
                    part = buffer[start : buffer.index(b"\xff\xd9", start) + 2]
                    got[f"mjpeg {stream}"] = cv2.imdecode(np.frombuffer(part, np.uint8), 1)
    lensed = _lensed_reference(image, mode)
    raw_thermal = false_colour(celsius, th)  # type: ignore[arg-type]
    lens_thermal = build_lensing(mode)  # type: ignore[arg-type]
    lensed_thermal = false_colour(celsius, th, lens_thermal)  # type: ignore[arg-type]
    for name, out in got.items():
        raw_ref, lens_ref = (image, lensed) if "visible" in name else (raw_thermal, lensed_thermal)
        assert _distance(out, lens_ref) < 4.0, name
        assert _distance(out, raw_ref) > 5 * _distance(out, lens_ref), name


def test_overlay_without_privacy_serves_the_frame_as_captured() -> None:
    image = _texture(4)
    hr, th = _plain_readings()
    overlay = Overlay(OverlayConfig(port=0))
    assert overlay._lensing == {"visible": None, "thermal": None}
    window = WindowSink()
    shown = window.render(VisibleFrame(t_mono=1, t_wall=0.0, source="w", seq=0, image=image), hr, th)  # type: ignore[arg-type]
    assert _distance(shown, image) == 0.0


def test_window_shows_the_lensed_frame() -> None:
    image = _texture(5)
    hr, th = _plain_readings()
    shown = WindowSink(privacy="defocus").render(
        VisibleFrame(t_mono=1, t_wall=0.0, source="w", seq=0, image=image), hr, th  # type: ignore[arg-type]
    )
    assert _distance(shown, _lensed_reference(image, "defocus")) < 3.0
    assert _distance(shown, image) > 30.0


def test_shareable_recording_holds_only_lensed_images(tmp_path: Path) -> None:
    lensing = build_lensing("lens")
    assert lensing is not None
    image, sled = _texture(6), _texture(7, (240, 320))
    celsius = (24.0 + 12.0 * _texture(8, (120, 160))[:, :, 0] / 255.0).astype(np.float32)
    raw_counts = (celsius * 100).astype(np.uint16)
    with Recorder(tmp_path / "s", video_codec="png", lensing=lensing) as recorder:
        recorder.write(VisibleFrame(t_mono=1, t_wall=0.0, source="webcam", seq=0, image=image))
        recorder.write(ThermalFrame(t_mono=2, t_wall=0.0, source="thermal", seq=0, celsius=celsius,
                                    raw=raw_counts, visible=sled))
    written = sorted((tmp_path / "s" / "video").rglob("*.png"))
    assert len(written) == 2
    for path in written:
        stored = cv2.imread(str(path))
        raw = image if stored.shape == image.shape else sled
        reference = _lensed_reference(raw, "lens")
        assert np.abs(stored.astype(int) - reference).mean() < 2.0, path.name
        assert np.abs(stored.astype(int) - raw).mean() > 30.0, path.name
    chunk = np.load(next((tmp_path / "s").rglob("*.npz")))
    stored_c = chunk["celsius"][0]
    assert np.abs(stored_c - lensing.apply_field(celsius)).max() < 1e-4
    assert np.abs(stored_c - celsius).mean() > 1.0
    assert np.abs(chunk["raw"][0].astype(float) - raw_counts).mean() > 100
    assert '"privacy": "lens"' in (tmp_path / "s" / "session.json").read_text()


def test_lensed_input_needs_a_lens_and_uses_the_skin_region() -> None:
    cfg = HeartRateConfig(input="lensed")
    with pytest.raises(ConfigError, match="lensed"):
        build_heart_rate_pipeline(cfg, 30.0)
    pipeline = build_heart_rate_pipeline(cfg, 30.0, lensing=build_lensing("lens"))
    assert isinstance(pipeline.tracker._detector, SkinRegionDetector)
    fusion = build_fusion(load_config(None, {"privacy": {"mode": "defocus"}, "heart_rate": {"input": "lensed"}}))
    assert fusion._heart_rate.lensing is not None  # type: ignore[attr-defined]
    raw = build_fusion(load_config(None, {"privacy": {"mode": "defocus"}}))
    assert raw._heart_rate.lensing is None  # type: ignore[attr-defined]  # privacy alone: analysis stays raw


def test_the_lensed_heart_rate_path_looks_further_ahead_than_the_raw_one() -> None:
    lensing = build_lensing("lens")
    lensed = build_heart_rate_pipeline(HeartRateConfig(input="lensed"), 30.0, lensing=lensing)
    raw = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    assert lensed._hr_settings[2].lag_steps == 6  # type: ignore[union-attr]
    assert raw._hr_settings[2].lag_steps == 3  # type: ignore[union-attr]


def test_heart_rate_through_the_lens_on_a_pulsing_skin_patch() -> None:
    """A skin-coloured face-sized ellipse whose colour pulses at 72 bpm, on a green wall, through the lens."""
    lensing: Lensing | None = build_lensing("lens")
    pipeline = build_heart_rate_pipeline(HeartRateConfig(input="lensed", tracker=None), 30.0, lensing=lensing)
    rng = np.random.default_rng(0)
    base = np.full((240, 320, 3), (150, 170, 60), np.float64)
    mask = np.zeros((240, 320), np.uint8)
    cv2.ellipse(mask, (160, 110), (40, 55), 0, 0, 360, 1, -1)
    skin = np.array([120.0, 150.0, 205.0])
    bpm = []
    for i in range(30 * 20):
        t = i / 30
        pulse = 1.0 + 0.004 * np.sin(2 * np.pi * 1.2 * t) * np.array([0.6, 1.0, 0.4])
        frame = base.copy()
        frame[mask == 1] = skin * pulse
        frame += rng.normal(0, 1.0, frame.shape)
        pipeline.push(np.clip(frame, 0, 255).astype(np.uint8), round(t * 1e9))
        hr = pipeline.heart_rate()
        if hr is not None:
            bpm.append(hr.bpm)
    assert bpm, "a heart rate once a window is full"
    assert abs(float(np.median(bpm)) - 72.0) < 3.0
