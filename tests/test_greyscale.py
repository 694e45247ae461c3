"""Greyscale frames: Rec. 709 luma, detection, CLAHE, and every visible-frame driver marking them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.flirone import FlirOneSource
from drivers.flirone_frames import encode_frame
from drivers.synthetic import SimulatedRig
from drivers.video_file import VideoFileSource
from drivers.webcam import WebcamSource
from fusion.greyscale import clahe, grey_as_bgr, is_greyscale, luma_709
from fusion.samples import VisibleFrame
from tests.test_flirone import PLANCK, ReplayBackend, take


def test_luma_is_rec_709_not_601() -> None:
    bgr = np.array([[[0, 0, 255], [0, 255, 0], [255, 0, 0], [255, 255, 255]]], np.uint8)
    # 0.2126·255 = 54.2, 0.7152·255 = 182.4, 0.0722·255 = 18.4 (Rec. 601 would give 76, 150, 29)
    assert luma_709(bgr).tolist() == [[54, 182, 18, 255]]
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert luma_709(grey) is grey
    with pytest.raises(ValueError, match="uint8"):
        luma_709(np.zeros((2, 2, 3), np.float32))


def test_greyscale_detection() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    assert is_greyscale(grey)
    assert is_greyscale(grey_as_bgr(grey))
    nearly = grey_as_bgr(grey).astype(np.int16)
    nearly[..., 2] += 2  # an MJPEG mono camera: channels a level or two apart
    assert is_greyscale(np.clip(nearly, 0, 255).astype(np.uint8))
    colour = grey_as_bgr(grey)
    colour[20:30, 20:40] = (40, 80, 160)  # a patch of skin tone in a grey frame
    assert not is_greyscale(colour)


def test_clahe_lifts_a_dim_low_contrast_face() -> None:
    rng = np.random.default_rng(1)
    dim = (40 + 10 * rng.random((64, 64))).astype(np.uint8)
    out = clahe(dim)
    assert out.shape == dim.shape and out.dtype == np.uint8
    assert out.std() > 2 * dim.std()
    with pytest.raises(ValueError, match="clip_limit"):
        clahe(dim, clip_limit=0)


def _clip(path: Path, colour: bool) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"FFV1"), 30.0, (64, 48))
    assert writer.isOpened()
    rng = np.random.default_rng(2)
    for _ in range(4):
        grey = rng.integers(30, 220, (48, 64), dtype=np.uint8)
        image = grey_as_bgr(grey)
        if colour:
            image[..., 2] = np.clip(image[..., 2].astype(np.int16) + 40, 0, 255).astype(np.uint8)
        writer.write(image)
    writer.release()
    return path


@pytest.mark.parametrize("colour", [False, True])
async def test_webcam_marks_greyscale_frames(tmp_path: Path, colour: bool) -> None:
    source = WebcamSource("webcam", device=str(_clip(tmp_path / "c.mkv", colour)), queue_size=8)
    async with source:
        it = aiter(source.samples())
        frames = [await asyncio.wait_for(anext(it), 5.0) for _ in range(3)]
    assert [f.greyscale for f in frames] == [not colour] * 3
    assert all(f.image.ndim == 3 for f in frames)


@pytest.mark.parametrize("colour", [False, True])
async def test_video_file_marks_greyscale_frames(tmp_path: Path, colour: bool) -> None:
    source = VideoFileSource("cam", path=_clip(tmp_path / "v.mkv", colour), realtime=False)
    async with source:
        frames = [f async for f in source.samples()]
    assert len(frames) == 4
    assert [f.greyscale for f in frames] == [not colour] * 4


def test_rig_webcam_is_colour_unless_it_is_an_ir_camera() -> None:
    def first_webcam(rig: SimulatedRig) -> VisibleFrame:
        return next(s for s in rig.stream(0.2) if isinstance(s, VisibleFrame))

    colour = first_webcam(SimulatedRig(seed=3, thermal=False, wristband=False))
    ir = first_webcam(SimulatedRig(seed=3, thermal=False, wristband=False, ir_webcam=True))
    assert not colour.greyscale
    assert ir.greyscale
    assert np.array_equal(ir.image[..., 0], ir.image[..., 2])
    assert np.array_equal(ir.image[..., 1], luma_709(colour.image))


@pytest.mark.parametrize("colour", [False, True])
async def test_flir_one_marks_a_greyscale_sled_image(colour: bool) -> None:
    image = np.tile(np.linspace(20, 200, 32, dtype=np.uint8), (24, 1))
    if colour:
        image = np.dstack([image, image // 2, np.full_like(image, 180)])
    _, jpeg = cv2.imencode(".jpg", image)  # a 2-D image makes a one-component (mono) JPEG
    stream = b"".join(
        encode_frame(np.full((60, 80), 3500 + n, np.uint16), jpeg.tobytes(), {"shutterState": "ON"}) for n in range(2)
    )
    source = FlirOneSource("thermal", planck=PLANCK, backend=ReplayBackend([stream]), queue_size=8)
    async with source:
        frames = await take(source, 2)
    assert all(f.visible is not None and f.visible.shape == (24, 32, 3) for f in frames)
    assert [f.visible_greyscale for f in frames] == [not colour] * 2
