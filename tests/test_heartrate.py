"""Heart rate from a pulse signal: PSD peak accuracy, confidence, windowing and fusion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.heartrate import HeartRate, HeartRateEstimator, peak_support, spectral_peak
from fusion.hrtrack import TrackerSettings
from fusion.rppg import LOW_SUPPORT

FS_HZ = 30.0


def _pulse(bpm: float, seconds: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * FS_HZ)) / FS_HZ
    f = bpm / 60.0
    x = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t + 0.7)  # fundamental + harmonic
    return x + noise * np.random.default_rng(seed).standard_normal(len(t))


@pytest.mark.parametrize("bpm", [41.3, 48.0, 72.6, 110.2, 159.7, 178.9])
def test_peak_between_bins_is_recovered(bpm: float) -> None:
    peak = spectral_peak(_pulse(bpm, 10.0), FS_HZ)
    assert peak.bpm == pytest.approx(bpm, abs=0.3)
    assert peak.confidence > 0.9


def test_slow_drift_does_not_make_a_peak_at_the_band_edge() -> None:
    t = np.arange(300) / FS_HZ
    x = 0.3 * np.sin(2 * np.pi * 80 / 60 * t) + 5 * np.sin(2 * np.pi * 0.3 * t) + 0.2 * t  # respiration + drift
    assert spectral_peak(x, FS_HZ).bpm == pytest.approx(80, abs=1.0)


def test_white_noise_gives_low_confidence() -> None:
    noise = np.random.default_rng(1).standard_normal(300)
    assert spectral_peak(noise, FS_HZ).confidence < 0.3
    assert spectral_peak(_pulse(90, 10, noise=0.5), FS_HZ).confidence > 0.5


def test_short_window_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="shorter than 2 s"):
        spectral_peak(np.zeros(30), FS_HZ)


def test_no_number_before_a_full_window_then_one_per_step() -> None:
    est = HeartRateEstimator(FS_HZ, window_s=10.0, step_s=1.0)
    x = _pulse(66.0, 14.0)
    results: list[HeartRate] = []
    for i, v in enumerate(x):
        t = round(i * 1e9 / FS_HZ)
        est.push(float(v), t)
        r = est.result()
        if i < 299:
            assert r is None
        elif r is not None and (not results or results[-1].t_mono != r.t_mono):
            results.append(r)
    assert [r.t_mono for r in results][:2] == [round(299 * 1e9 / FS_HZ), round(329 * 1e9 / FS_HZ)]
    assert len(results) == 5
    assert all(r.bpm == pytest.approx(66.0, abs=0.5) for r in results)


def test_published_rate_leans_on_the_median_when_confidence_is_low() -> None:
    est = HeartRateEstimator(FS_HZ, window_s=10.0, step_s=1.0, smooth_s=1.0)
    clean = _pulse(70.0, 20.0)
    for i, v in enumerate(clean):
        est.push(float(v), round(i * 1e9 / FS_HZ))
    noisy = _pulse(100.0, 12.0, noise=3.0, seed=4)
    for i, v in enumerate(noisy, start=len(clean)):
        est.push(float(v), round(i * 1e9 / FS_HZ))
    r = est.result()
    assert r is not None
    assert r.median_bpm == pytest.approx(70.0, abs=1.0)
    expected = r.confidence * r.instant_bpm + (1 - r.confidence) * r.median_bpm
    assert r.bpm == pytest.approx(expected)
    assert abs(r.bpm - 70.0) < abs(r.raw_bpm - 70.0) or r.confidence > 0.5


def test_reset_forgets_the_window_but_keeps_the_session_median() -> None:
    est = HeartRateEstimator(FS_HZ)
    for i, v in enumerate(_pulse(60.0, 12.0)):
        est.push(float(v), round(i * 1e9 / FS_HZ))
    assert est.result() is not None
    est.reset()
    assert est.result() is None
    for i, v in enumerate(_pulse(120.0, 10.0)):
        est.push(float(v), round((i + 400) * 1e9 / FS_HZ))
    r = est.result()
    assert r is not None and r.raw_bpm == pytest.approx(120, abs=0.5)
    assert 60 <= r.median_bpm <= 120  # median over the whole session: both segments count


def test_fused_peak_weighs_signals_by_shape_not_scale() -> None:
    from fusion.heartrate import fused_spectral_peak

    fs, rng = 15.0, np.random.default_rng(4)
    t = np.arange(0, 30, 1 / fs)
    clear = np.sin(2 * np.pi * 1.2 * t) + 0.3 * rng.normal(size=t.size)  # 72 bpm
    # A huge-scale signal with its power spread over the band must not outvote two clear ones.
    loud_noise = 1e4 * rng.normal(size=t.size)
    also_clear = 1e-3 * (np.sin(2 * np.pi * 1.2 * t[:200]) + 0.3 * rng.normal(size=200))
    assert fused_spectral_peak([clear, loud_noise, also_clear], fs) == pytest.approx(72.0, abs=1.0)
    assert np.isnan(fused_spectral_peak([np.zeros(10)], fs))


def test_whole_signal_rate_averages_segments_so_a_drifting_weak_pulse_beats_the_noise() -> None:
    from fusion.heartrate import fused_spectral_peak

    fs = 15.0
    t = np.arange(0, 120, 1 / fs)
    bpm = 75 + 6 * np.sin(2 * np.pi * t / 40)  # a heart that drifts ±6 bpm over two minutes
    pulse = np.sin(2 * np.pi * np.cumsum(bpm / 60) / fs)
    segmented, whole = [], []
    for seed in range(5):
        x = pulse + 2.0 * np.random.default_rng(seed).normal(size=t.size)  # weak: noise twice the pulse
        segmented.append(fused_spectral_peak([x], fs))
        whole.append(fused_spectral_peak([x], fs, segment_s=1e9))  # one periodogram of the whole signal
    assert np.allclose(segmented, 75, atol=4)
    # The one periodogram spreads the drifting pulse over many bins, and noise spikes win most of the time.
    assert sum(abs(b - 75) <= 4 for b in whole) <= 2


def test_a_chosen_bin_with_no_power_near_it_is_no_signal_not_a_crash() -> None:
    from fusion.heartrate import peak_of_spectrum

    f_hz = np.linspace(40 / 60, 180 / 60, 281)
    p = np.zeros_like(f_hz)
    p[-5:] = 1.0  # all power at the top of the band; the tracker's bin is at the bottom
    peak = peak_of_spectrum(f_hz, p, n=300, fs_hz=30.0, k=3)
    assert peak.confidence == 0.0 and peak.snr_db == -math.inf
    assert peak.bpm == pytest.approx(f_hz[3] * 60, abs=0.5)


def test_peak_support_is_one_when_every_spectrum_peaks_at_the_chosen_bin() -> None:
    a = np.array([0.1, 0.2, 1.0, 0.3])
    b = np.array([0.0, 0.5, 2.0, 0.1])
    fused = a / a.sum() + b / b.sum()
    assert peak_support(fused, [a, b], 2) == pytest.approx(1.0)


def test_peak_support_falls_with_the_least_convinced_estimator_and_an_overridden_window() -> None:
    agrees = np.array([0.1, 0.2, 1.0, 0.3])
    elsewhere = np.array([0.1, 2.0, 0.5, 0.1])  # this estimator's tallest peak is at bin 1
    fused = agrees / agrees.sum() + elsewhere / elsewhere.sum()
    support = peak_support(fused, [agrees, elsewhere], 2)
    assert support == pytest.approx(fused[2] / fused.max() * 0.25)
    assert support < peak_support(fused, [agrees, agrees], 2) < 1.0  # the fused spectrum's doubt alone
    assert peak_support(np.zeros(4), [np.zeros(4)], 1) == 0.0  # no power: no support


def test_one_estimator_is_second_guessed_by_the_halves_of_its_window() -> None:
    # With a single pulse signal there is no other estimator to disagree; the two halves of the window
    # are its second opinion, so pure noise is flagged about as often as with two estimators.
    fs = 30.0
    for channels in (1, 2):
        estimator = HeartRateEstimator(fs, channels=channels, tracker=TrackerSettings())
        noise = np.random.default_rng(7).standard_normal((int(120 * fs), channels))
        supports, last = [], None
        for i, x in enumerate(noise):
            estimator.push(x, round(i * 1e9 / fs))
            hr = estimator.result()
            if hr is not None and hr.t_mono != last:
                last = hr.t_mono
                supports.append(hr.confidence)
        assert np.mean(np.array(supports) < LOW_SUPPORT) > 0.8, channels
    # A clean pulse is backed by both halves.
    t = np.arange(int(30 * fs)) / fs
    estimator = HeartRateEstimator(fs, tracker=TrackerSettings())
    for i, x in enumerate(np.sin(2 * np.pi * 1.25 * t)):
        estimator.push(float(x), round(i * 1e9 / fs))
    hr = estimator.result()
    assert hr is not None and hr.bpm == pytest.approx(75.0, abs=1.0) and hr.confidence > 0.95


def test_a_short_window_with_one_estimator_still_gets_a_support() -> None:
    fs = 30.0
    estimator = HeartRateEstimator(fs, window_s=3.0, tracker=TrackerSettings(lag_steps=0))
    t = np.arange(int(10 * fs)) / fs
    for i, x in enumerate(np.sin(2 * np.pi * 1.25 * t)):
        estimator.push(float(x), round(i * 1e9 / fs))
    hr = estimator.result()
    assert hr is not None and 0.0 <= hr.confidence <= 1.0
