"""Pulse estimators: resampling on t_mono, skin colour mean, POS and CHROM recover a known pulse."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fusion.heartrate import spectral_peak
from fusion.pulse import ChromEstimator, PosEstimator, UniformResampler, mean_rgb

SKIN_BGR = np.array([120.0, 150.0, 200.0])  # a light skin tone, inside the YCrCb skin range


def _face_crops(
    bpm: float, seconds: float, fps: float, jitter_s: float = 0.0, seed: int = 0
) -> Iterator[tuple[np.ndarray, int]]:
    """Skin-coloured crops whose colour pulses at ``bpm`` (blood absorbs green most), plus lighting
    drift common to all channels, at irregular times when ``jitter_s`` > 0."""
    rng = np.random.default_rng(seed)
    n = round(seconds * fps)
    times = np.arange(n) / fps + rng.uniform(-jitter_s, jitter_s, n)
    times.sort()
    for t in times:
        pulse = np.sin(2 * np.pi * bpm / 60 * t)
        light = 1 + 0.05 * np.sin(2 * np.pi * 0.2 * t)
        bgr = SKIN_BGR * light * (1 + 0.004 * pulse * np.array([0.3, -1.0, 0.2]))
        crop = np.clip(bgr + rng.normal(0, 2.0, (40, 40, 3)), 0, 255).astype(np.uint8)
        yield crop, round(t * 1e9)


@pytest.mark.parametrize("cls", [PosEstimator, ChromEstimator])
@pytest.mark.parametrize("bpm", [55.0, 96.0, 150.0])
def test_estimator_recovers_the_pulse_rate(cls: type, bpm: float) -> None:
    est = cls(30.0, history_s=12.0)
    for crop, t in _face_crops(bpm, 15.0, 29.5, jitter_s=0.005):
        est.push(crop, t)
    pulse = est.pulse()
    assert pulse is not None and pulse.fs_hz == 30.0
    assert 300 <= len(pulse.signal) <= 360  # history bound; start-up of two 1.6 s windows
    assert spectral_peak(np.asarray(pulse.signal[-300:]), pulse.fs_hz).bpm == pytest.approx(bpm, abs=1.5)


def test_pulse_counts_samples_and_reset_starts_afresh() -> None:
    est = PosEstimator(30.0, history_s=2.0)
    assert est.pulse() is None
    for crop, t in _face_crops(70, 6.0, 30.0):
        est.push(crop, t)
    p = est.pulse()
    assert p is not None and len(p.signal) == 60 and p.count > 60
    assert not p.signal.flags.writeable
    est.reset()
    assert est.pulse() is None


def test_resampler_interpolates_onto_the_grid() -> None:
    r = UniformResampler(10.0)
    first = r.push(np.array([0.0]), 1_000_000_000)
    assert [(t, float(v[0])) for t, v in first] == [(1_000_000_000, 0.0)]
    out = r.push(np.array([1.0]), 1_250_000_000)  # grid: 1.1 and 1.2 s
    assert [t for t, _ in out] == [1_100_000_000, 1_200_000_000]
    assert [float(v[0]) for _, v in out] == pytest.approx([0.4, 0.8])
    with pytest.raises(ValueError, match="backwards"):
        r.push(np.array([0.0]), 1_000_000_000)


def test_mean_uses_skin_pixels_only() -> None:
    crop = np.zeros((50, 50, 3), np.uint8)
    crop[:] = (40, 160, 40)  # green background
    crop[15:35, 15:35] = SKIN_BGR.astype(np.uint8)
    r, g, b = mean_rgb(crop)
    assert (b, g, r) == pytest.approx(tuple(SKIN_BGR), abs=1)


def test_greyscale_image_falls_back_to_the_plain_mean() -> None:
    crop = np.full((30, 30, 3), 90, np.uint8)
    assert mean_rgb(crop) == pytest.approx([90, 90, 90])


def test_bad_crops_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        mean_rgb(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        mean_rgb(np.zeros((0, 10, 3), np.uint8))


@pytest.mark.parametrize("bpm", [55.0, 96.0, 150.0])
def test_luma_estimator_recovers_the_rate_from_greyscale_crops(bpm: float) -> None:
    from fusion.pulse import LumaEstimator

    rng = np.random.default_rng(4)
    est = LumaEstimator(30.0, history_s=12.0)
    for i in range(round(15 * 29.5)):
        t = i / 29.5
        level = 140 * (1 + 0.05 * np.sin(2 * np.pi * 0.2 * t)) * (1 - 0.003 * np.sin(2 * np.pi * bpm / 60 * t))
        grey = np.clip(level + rng.normal(0, 2.0, (40, 40)), 0, 255).astype(np.uint8)
        est.push(np.repeat(grey[:, :, None], 3, axis=2), round(t * 1e9))
    pulse = est.pulse()
    assert est.name == "luma" and pulse is not None
    assert spectral_peak(np.asarray(pulse.signal[-300:]), pulse.fs_hz).bpm == pytest.approx(bpm, abs=1.5)
