"""The video-file source: timeline from frame index and rate, pacing, no drops unpaced, lifecycle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.video_file import VideoFileSource
from fusion.errors import SourceError, SourceUnavailableError, UnavailableReason

FPS = 25.0


def _write_video(path: Path, frames: int) -> Path:
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]  # missing from the cv2 stubs
    writer = cv2.VideoWriter(str(path), fourcc, FPS, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (i * 10) % 250, np.uint8))
    writer.release()
    return path


async def test_frames_in_order_on_the_file_timeline_and_the_end_ends(tmp_path: Path) -> None:
    src = VideoFileSource("cam", path=_write_video(tmp_path / "v.avi", 12), realtime=False)
    async with src:
        frames = [f async for f in src.samples()]
    assert [f.seq for f in frames] == list(range(12))
    t0 = frames[0].t_mono
    assert [f.t_mono - t0 for f in frames] == [round(i * 1e9 / FPS) for i in range(12)]
    assert frames[3].image.shape == (48, 64, 3) and not frames[3].image.flags.writeable
    assert abs(float(frames[3].image.mean()) - 30) < 4  # decoded, not garbage
    assert src.dropped == 0


async def test_unpaced_slow_consumer_loses_nothing(tmp_path: Path) -> None:
    src = VideoFileSource("cam", path=_write_video(tmp_path / "v.avi", 20), realtime=False, queue_size=2)
    seqs = []
    async with src:
        async for f in src.samples():
            await asyncio.sleep(0.01)
            seqs.append(f.seq)
    assert seqs == list(range(20)) and src.dropped == 0


async def test_realtime_is_paced_and_loop_continues_the_timeline(tmp_path: Path) -> None:
    src = VideoFileSource("cam", path=_write_video(tmp_path / "v.avi", 5), realtime=True, loop=True)
    start = time.monotonic()
    async with src:
        frames = []
        async for f in src.samples():
            frames.append(f)
            if len(frames) == 8:
                break
    assert time.monotonic() - start >= 7 / FPS * 0.9
    assert [f.seq for f in frames] == list(range(8))
    assert frames[7].t_mono - frames[0].t_mono == round(7 * 1e9 / FPS)


async def test_missing_file_is_unavailable_and_a_retry_works(tmp_path: Path) -> None:
    path = tmp_path / "later.avi"
    src = VideoFileSource("cam", path=path, realtime=False)
    with pytest.raises(SourceUnavailableError) as info:
        await src.__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT and info.value.source == "cam"
    assert "later.avi" in str(info.value)
    _write_video(path, 3)
    async with src:
        assert len([f async for f in src.samples()]) == 3


async def test_not_a_video_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "x.avi"
    path.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="not a video"):
        async with VideoFileSource("cam", path=path):
            pass
