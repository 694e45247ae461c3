"""The pulse view: what the page draws for a viewer to trust a rate (pulse, spectrum, chosen peak, path)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.synthetic import SimulatedRig
from drivers.synthetic_physio import Physiology
from edge.build import build_heart_rate_pipeline
from edge.config import HeartRateConfig
from fusion.heartrate import HeartRateEstimator
from fusion.hrtrack import SpectrumTracker, TrackerSettings
from fusion.pulseview import PulseView, make_pulse_view
from fusion.rppg import LOW_SUPPORT
from fusion.samples import VisibleFrame
from fusion.vitals import HeartRateReading

NS = 1_000_000_000
RIG_BPM = 72.0


@pytest.fixture(scope="module")
def rig_run() -> list[HeartRateReading]:
    """The default pipeline on the rig's face at 72 bpm for 24 s: the reading after every frame."""
    rig = SimulatedRig(physiology=Physiology(hr_bpm=RIG_BPM), thermal=False, wristband=False, realtime=False, seed=3)
    pipeline = build_heart_rate_pipeline(HeartRateConfig(), 30.0)
    readings = []
    for sample in rig.stream(24.0):
        assert isinstance(sample, VisibleFrame)
        pipeline.push(sample.image, sample.t_mono)
        readings.append(pipeline.reading())
    return readings


@pytest.mark.slow
def test_no_view_while_warming_up(rig_run: list[HeartRateReading]) -> None:
    warming = [r for r in rig_run if "warming_up" in r.flags]
    assert len(warming) > 300, "more than 10 s of warming up"
    assert all(r.pulse_view is None for r in warming)
    assert all(r.pulse_view is not None for r in rig_run if r.bpm is not None)


@pytest.mark.slow
def test_view_of_the_rig_face_marks_the_published_peak(rig_run: list[HeartRateReading]) -> None:
    reading = rig_run[-1]
    view = reading.pulse_view
    assert view is not None and reading.bpm is not None
    # The pulse: the newest 10 s of the primary estimator at 30 fps, newest sample kept, peak scaled to 1.
    assert view.pulse.shape == view.pulse_age_s.shape and 280 <= len(view.pulse) <= 300
    assert view.pulse_age_s[-1] == 0.0 and view.pulse_age_s[0] == pytest.approx(10.0, abs=0.1)
    assert np.all(np.diff(view.pulse_age_s) < 0)
    assert np.max(np.abs(view.pulse)) == pytest.approx(1.0)
    # It beats at the rig's rate: count upward zero crossings over the window.
    crossings = np.count_nonzero((view.pulse[:-1] < 0) & (view.pulse[1:] >= 0))
    assert abs(crossings - RIG_BPM / 6) <= 1.5
    # The spectrum on the band grid, the published peak marked where the chosen window peaks.
    assert view.bpm_grid.shape == view.power.shape == view.chosen_power.shape
    assert view.bpm_grid[0] >= 40.0 and view.bpm_grid[-1] <= 180.0
    assert view.power.max() == pytest.approx(1.0) and view.chosen_power.max() == pytest.approx(1.0)
    assert view.peak_bpm == reading.bpm and view.confidence == reading.confidence
    assert view.peak_bpm == pytest.approx(RIG_BPM, abs=2.0)
    assert abs(view.bpm_grid[np.argmax(view.chosen_power)] - view.peak_bpm) < 1.0
    assert not view.low_confidence and view.low_confidence_below == LOW_SUPPORT
    # The published window is the tracker's look-ahead (3 windows of 1 s) behind the newest.
    assert view.chosen_age_s == pytest.approx(3.0, abs=0.05)
    assert reading.window_end_t_mono == view.t_mono - round(view.chosen_age_s * NS)
    # The path: one published rate a second, this one last; then the provisional windows after it.
    assert len(view.path_bpm) >= 5 and view.path_bpm.shape == view.path_age_s.shape == view.path_confidence.shape
    assert view.path_age_s[-1] == pytest.approx(view.chosen_age_s) and view.path_bpm[-1] == view.peak_bpm
    assert np.all(np.abs(view.path_bpm - RIG_BPM) < 3.0)
    assert np.allclose(np.diff(view.path_age_s), -1.0, atol=0.05)
    assert view.ahead_age_s.tolist() == pytest.approx([2.0, 1.0, 0.0], abs=0.05)
    assert np.all(np.abs(view.ahead_bpm - RIG_BPM) < 3.0)


@pytest.mark.slow
def test_view_is_a_read_only_snapshot_made_once_per_step(rig_run: list[HeartRateReading]) -> None:
    views = [r.pulse_view for r in rig_run if r.pulse_view is not None]
    distinct = list({id(v): v for v in views}.values())
    assert 6 <= len(distinct) <= 9, "one view per 1 s step, not one per frame"
    assert len(views) > 5 * len(distinct)
    view = distinct[-1]
    for name in ("pulse", "pulse_age_s", "bpm_grid", "power", "chosen_power", "path_bpm", "ahead_bpm"):
        array = getattr(view, name)
        assert not array.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0
    # A later step leaves an earlier view as it was.
    assert distinct[-2].t_mono == view.t_mono - NS
    assert distinct[-2].path_bpm[-1] == view.path_bpm[-2]


def test_noise_on_both_estimators_is_mostly_flagged() -> None:
    # Two estimators' worth of noise (the default fuses POS and CHROM): the tracker still publishes a
    # rate, but the windows rarely back it in both, so their support is mostly under the flag.
    fs = 30.0
    estimator = HeartRateEstimator(fs, channels=2, tracker=TrackerSettings())
    noise = np.random.default_rng(7).standard_normal((int(120 * fs), 2))
    supports, last = [], None
    for i, x in enumerate(noise):
        estimator.push(x, round(i * NS / fs))
        hr = estimator.result()
        if hr is not None and hr.t_mono != last:
            last = hr.t_mono
            supports.append(hr.confidence)
    assert len(supports) > 100
    assert np.mean(np.array(supports) < LOW_SUPPORT) > 0.8
    view = estimator.view(low_confidence_below=LOW_SUPPORT)
    assert view is not None and view.low_confidence == (view.confidence < LOW_SUPPORT)
    estimator.reset()
    assert estimator.view(low_confidence_below=LOW_SUPPORT) is None


def make(**changes: object) -> PulseView:
    grid = np.linspace(40.0, 180.0, 100)
    args: dict[str, object] = dict(
        t_mono=100 * NS, pulse=np.sin(np.arange(600) / 60 * 2 * np.pi * 1.2) * 5, fs_hz=60.0, bpm_grid=grid,
        power=np.exp(-(((grid - 72) / 3) ** 2)) * 7, chosen_power=np.exp(-(((grid - 70) / 3) ** 2)),
        chosen_t_mono=97 * NS, peak_bpm=70.0, confidence=0.2, low_confidence_below=0.25,
        path=[(t * NS, 70.0 + t / 100, 0.5) for t in range(50, 98)], ahead=[(99 * NS, 71.0), (100 * NS, 72.0)],
    )
    args.update(changes)
    return make_pulse_view(**args)  # type: ignore[arg-type]  # the test's loose dict of keyword arguments


def test_fast_camera_is_thinned_keeping_the_newest_sample() -> None:
    view = make()
    assert len(view.pulse) == 300 and view.pulse_age_s[-1] == 0.0
    assert view.pulse_age_s[0] == pytest.approx(598 / 60) and np.allclose(np.diff(view.pulse_age_s), -2 / 60)
    assert np.max(np.abs(view.pulse)) == pytest.approx(1.0)
    assert view.low_confidence and view.chosen_age_s == 3.0


def test_path_keeps_the_last_30_s() -> None:
    view = make()
    assert view.path_age_s[0] == 30.0 and view.path_age_s[-1] == 3.0 and len(view.path_bpm) == 28
    assert view.ahead_age_s.tolist() == [1.0, 0.0] and view.ahead_bpm.tolist() == [71.0, 72.0]


def test_mismatched_spectra_are_a_caller_error() -> None:
    with pytest.raises(ValueError, match="grid and spectra differ"):
        make(power=np.ones(99))


def test_tracker_path_starts_at_the_answer_it_just_gave() -> None:
    grid = np.arange(40.0, 180.0, 1.0)
    tracker = SpectrumTracker(grid, sigma_bpm=3.0, lag_steps=3)
    assert tracker.path() == []
    spectrum = np.exp(-(((grid - 90) / 2) ** 2))
    lengths = []
    for _ in range(3):
        assert tracker.push(spectrum) is None
        lengths.append(len(tracker.path()))
    answer = tracker.push(np.roll(spectrum, 5))
    assert answer is not None
    path = tracker.path()
    assert lengths == [1, 2, 3] and len(path) == 4
    assert path[0] == answer.bin == 50
