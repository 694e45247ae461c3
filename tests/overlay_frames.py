"""Frames and readings for the overlay tests: a moving bright square, a warm face in a thermal frame."""

from __future__ import annotations

import time

import numpy as np

from fusion.face import Box
from fusion.pulseview import PulseView, make_pulse_view
from fusion.samples import ThermalFrame, VisibleFrame
from fusion.vitals import HeartRateReading, ThermalReading


def visible_frame(seq: int, *, shape: tuple[int, ...] = (480, 640, 3)) -> VisibleFrame:
    image = np.full(shape, 60, dtype=np.uint8)
    if len(shape) == 3:
        x = (seq * 12) % 560
        image[200:280, x : x + 80] = (40, 200, 250)
    image.flags.writeable = False
    return VisibleFrame(t_mono=time.monotonic_ns(), t_wall=time.time(), source="webcam", seq=seq, image=image)


def thermal_frame(seq: int) -> ThermalFrame:
    yy, xx = np.mgrid[0:120, 0:160]
    celsius = (24.0 + 10.0 * np.exp(-(((xx - 80 - seq % 20) / 25.0) ** 2 + ((yy - 55) / 30.0) ** 2))).astype(
        np.float32
    )
    celsius[0, 0] = np.nan
    celsius.flags.writeable = False
    return ThermalFrame(t_mono=time.monotonic_ns(), t_wall=time.time(), source="thermal", seq=seq, celsius=celsius)


def readings(bpm: float | None = 72.0) -> tuple[HeartRateReading, ThermalReading]:
    hr = HeartRateReading(
        bpm=bpm, confidence=0.85, method="pos", face_box=Box(250.0, 120.0, 140.0, 170.0),
        pulse_view=None if bpm is None else pulse_view(bpm),
    )
    th = ThermalReading(
        face_raw_c=34.9, face_corrected_c=36.7, offset_c=1.8, reference="wrist", reference_measured_c=32.0,
        reference_estimated_c=33.8, wristband_c=33.1, registration_ncc=0.7, face_box=Box(60.0, 30.0, 40.0, 50.0),
        palm_box=Box(20.0, 80.0, 25.0, 20.0), wrist_box=Box(110.0, 85.0, 20.0, 15.0),
    )
    return hr, th


def pulse_view(bpm: float = 72.0, *, confidence: float = 0.85, seconds: float = 40.0) -> PulseView:
    """A pulse view as the estimator makes it: 10 s of pulse at ``bpm``, its spectrum, a path that drifts."""
    t_mono, fs = round(seconds * 1e9), 30.0
    t = np.arange(300) / fs
    grid = np.linspace(40.0, 180.0, 318)
    spectrum = np.exp(-0.5 * ((grid - bpm) / 2.0) ** 2) + 0.3 * np.exp(-0.5 * ((grid - 2 * bpm) / 2.0) ** 2) + 0.02
    path = [  # the last 30 s, one published rate a second, every seventh of low confidence
        (t_mono - k * 1_000_000_000, bpm + 2.0 * float(np.sin((k - 3) / 5)), confidence if k % 7 else 0.1)
        for k in range(33, 2, -1)
    ]
    return make_pulse_view(
        t_mono=t_mono, pulse=np.sin(2 * np.pi * bpm / 60 * t) + 0.1 * np.sin(2 * np.pi * 0.3 * t), fs_hz=fs,
        bpm_grid=grid, power=np.roll(spectrum, 3), chosen_power=spectrum, chosen_t_mono=t_mono - 3_000_000_000,
        peak_bpm=path[-1][1], confidence=confidence, low_confidence_below=0.25, path=path,
        ahead=[(t_mono - k * 1_000_000_000, bpm + 0.5 * (3 - k)) for k in (2, 1, 0)],
    )
