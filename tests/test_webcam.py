"""Webcam source with a real video file as the capture target, plus absent devices and lifecycle."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.webcam import WebcamSource
from edge.build import build_source
from edge.config import load_config
from fusion.errors import ConfigError, SourceUnavailableError, UnavailableReason
from fusion.samples import VisibleFrame

N_FRAMES = 6


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A lossless 64x48 clip at 30 fps whose frame k is filled with value 40*k."""
    path = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"FFV1"), 30.0, (64, 48))
    assert writer.isOpened()
    for k in range(N_FRAMES):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    return path


def _source(device: str) -> WebcamSource:
    return WebcamSource("webcam", device=device, queue_size=16)


async def _take(it: AsyncIterator[VisibleFrame], n: int) -> list[VisibleFrame]:
    return [await asyncio.wait_for(anext(it), 5.0) for _ in range(n)]


async def test_frames_meta_and_reopen_after_end(video: Path) -> None:
    source = _source(str(video))
    async with source:
        it = aiter(source.samples())
        frames = await _take(it, N_FRAMES)
        with pytest.raises(SourceUnavailableError) as info:  # the end of the clip is a failed read
            await asyncio.wait_for(anext(it), 5.0)
        assert info.value.reason is UnavailableReason.DISCONNECTED
    async with source:  # the supervisor's reopen starts the clip again
        frames += await _take(aiter(source.samples()), 3)
    first = frames[0]
    assert first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
    assert not first.image.flags.writeable
    assert [int(f.image[0, 0, 0]) for f in frames] == [40 * k for k in range(N_FRAMES)] + [0, 40, 80]
    assert [f.seq for f in frames] == list(range(N_FRAMES + 3))
    assert (first.meta["width"], first.meta["height"], first.meta["fps"]) == (64, 48, 30.0)
    assert first.meta["width_requested"] == 640 and first.meta["fps_requested"] == 30.0
    assert source.read_failures == 1
    gaps_ms = [(b.t_mono - a.t_mono) / 1e6 for a, b in itertools.pairwise(frames[:4])]
    assert all(15 < g < 200 for g in gaps_ms)  # paced near 30 fps, not read instantly


async def test_slow_consumer_gets_the_newest_frames(video: Path) -> None:
    source = WebcamSource("webcam", device=str(video), queue_size=1)
    async with source:
        it = aiter(source.samples())
        await asyncio.sleep(0.3)
        frame = await asyncio.wait_for(anext(it), 5.0)
    assert frame.seq >= 3 and source.dropped >= 3


@pytest.mark.parametrize("device", ["/dev/video97", "no-such-clip.mp4"])
async def test_absent_device(device: str) -> None:
    with pytest.raises(SourceUnavailableError) as info:
        await _source(device).__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT
    assert info.value.source == "webcam" and device in str(info.value)


def test_config_and_build() -> None:
    cfg = load_config(None, {"sources": [{"kind": "webcam", "device": "/dev/video2", "width": 1280, "height": 720}]})
    source = build_source(cfg.sources[0])
    assert isinstance(source, WebcamSource)
    assert (source._device, source._requested) == ("/dev/video2", (1280, 720, 30.0))
    with pytest.raises(ConfigError, match="queue_size"):
        load_config(None, {"sources": [{"kind": "webcam", "queue_size": 0}]})
