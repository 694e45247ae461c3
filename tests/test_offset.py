"""Offset arithmetic (the paper's equations, numbers worked by hand), the wristband window and the corrector."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from fusion.offset import (
    PAPER_PALM,
    PAPER_WRIST,
    OffsetCorrector,
    OffsetEstimate,
    Regression,
    WristbandWindow,
    corrected_c,
    fit_regression,
    offset_c,
    reference_offset,
)

S = 1_000_000_000  # ns per second


@dataclass(frozen=True, slots=True)
class Region:
    mean_c: float
    pixels: int = 100
    spread_c: float = 0.0


def test_paper_regressions_by_hand() -> None:
    # palm: -1.4485 + 1.0103 * 33.0 = -1.4485 + 33.3399 = 31.8914
    assert PAPER_PALM.estimate(33.0) == pytest.approx(31.8914, abs=1e-12)
    # wrist: 15.6850 + 0.5418 * 33.0 = 15.6850 + 17.8794 = 33.5644
    assert PAPER_WRIST.estimate(33.0) == pytest.approx(33.5644, abs=1e-12)
    assert (PAPER_PALM.a, PAPER_PALM.b, PAPER_WRIST.a, PAPER_WRIST.b) == (-1.4485, 1.0103, 15.6850, 0.5418)


def test_offset_and_correction_by_hand() -> None:
    # C = T_est - T_meas = 31.8914 - 30.5 = 1.3914;  T_corr = T_face + C = 34.0 + 1.3914 = 35.3914
    c = offset_c(PAPER_PALM.estimate(33.0), 30.5)
    assert c == pytest.approx(1.3914, abs=1e-12)
    assert corrected_c(34.0, c) == pytest.approx(35.3914, abs=1e-12)


def test_fit_regression_exact_line_and_hand_worked_residuals() -> None:
    xs = [30.0, 31.5, 32.0, 34.25]
    a, b, mae = fit_regression(xs, [PAPER_PALM.estimate(x) for x in xs])
    assert (a, b, mae) == pytest.approx((-1.4485, 1.0103, 0.0), abs=1e-9)
    # x = 0,1,2; y = 0,2,1: b = Sxy/Sxx = 1/2, a = 1 - 0.5 = 0.5; residuals -0.5, 1, -0.5 -> MAE 2/3
    assert fit_regression([0.0, 1.0, 2.0], [0.0, 2.0, 1.0]) == pytest.approx((0.5, 0.5, 2 / 3))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [([1.0], [2.0], "at least 2"), ([1.0, 2.0], [1.0], "same length"), ([3.0, 3.0], [1.0, 2.0], "slope"),
     ([1.0, math.nan], [1.0, 2.0], "finite")],
)
def test_fit_regression_rejects_unfittable_input(x: list[float], y: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_regression(x, y)


def test_wristband_window_mean_over_half_open_window() -> None:
    w = WristbandWindow(window_s=10.0)
    assert w.mean(5 * S) is None
    for t_s, c in [(0, 30.0), (5, 31.0), (10, 32.0), (12, 36.0)]:
        w.push(c, t_s * S)
    assert w.mean(10 * S) == pytest.approx((31.0 + 32.0) / 2)  # (0 s, 10 s]: the sample at 0 s is out
    assert w.count(10 * S) == 2
    assert w.mean(9 * S) == pytest.approx((30.0 + 31.0) / 2)
    assert w.mean(30 * S) is None
    w.push(34.0, 11 * S)  # late arrival is placed in time order
    assert w.mean(11 * S) == pytest.approx((31.0 + 32.0 + 34.0) / 3)
    w.push(math.nan, 11 * S)
    assert w.rejected == 1 and w.count(12 * S) == 4


def test_wristband_window_memory_is_bounded() -> None:
    w = WristbandWindow(window_s=1.0, keep_s=2.0)
    for i in range(10_000):
        w.push(30.0 + (i % 2), i * S // 4)
    assert w.count(10_000 * S // 4) <= 5
    assert len(w._t) <= 9  # only ~2 s of 4 Hz samples stay


def test_reference_offset_variance_adds_residual_and_region_noise() -> None:
    ref = reference_offset("palm", Region(30.5, pixels=50, spread_c=0.3), 33.0, PAPER_PALM, 0.707, 0.1)
    assert ref.estimated_c == pytest.approx(31.8914)
    assert ref.offset_c == pytest.approx(1.3914)
    # 0.707^2 + (0.1^2 + 0.3^2) / 50 = 0.499849 + 0.002 = 0.501849
    assert ref.variance_c2 == pytest.approx(0.501849)


def _corrector(mode: Literal["palm", "wrist", "fused"] = "fused", hold_s: float = 5.0,
               palm_correlation_s: float = 0.05) -> OffsetCorrector:
    return OffsetCorrector(mode, palm_residual_sd_c=0.5, wrist_residual_sd_c=0.25, pixel_noise_sd_c=0.0,
                           palm_noise_sd_c=0.0, wrist_noise_sd_c=0.1, drift_sd_c_per_sqrt_s=0.1,
                           bias_drift_sd_c_per_sqrt_s=0.0, palm_correlation_s=palm_correlation_s, hold_s=hold_s)


# Wristband 33.0 °C: T_est palm 31.8914, wrist 33.5644. Measured values chosen for offsets 1.0 and 2.0.
PALM_C1 = Region(31.8914 - 1.0)
WRIST_C2 = Region(33.5644 - 2.0)


def _feed(corr: OffsetCorrector, t: int, palm_c: float, wrist_c: float) -> OffsetEstimate | None:
    """One frame whose palm and wrist give the offsets ``palm_c`` and ``wrist_c`` (wristband 33.0 °C)."""
    return corr.update(t, wristband_c=33.0, palm=Region(31.8914 - palm_c), wrist=Region(33.5644 - wrist_c))


def test_fused_first_frame_is_inverse_variance_of_palm_and_bias_corrected_wrist() -> None:
    est = _corrector().update(0, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    # palm: C = 1.0, var 0.5^2 = 0.25; wrist: C + β = 2.0 with β ~ N(0, 0.25^2) and noise 0.1^2, so as a
    # measurement of C: 2.0 - 0 with var 0.0625 + 0.01 = 0.0725.
    # C = (1.0/0.25 + 2.0/0.0725) / (1/0.25 + 1/0.0725), var = 1 / (1/0.25 + 1/0.0725)
    w_p, w_w = 1 / 0.25, 1 / 0.0725
    assert est is not None and est.reference == "fused"
    assert est.offset_c == pytest.approx((w_p * 1.0 + w_w * 2.0) / (w_p + w_w), rel=1e-5)
    assert est.variance_c2 == pytest.approx(1 / (w_p + w_w), rel=1e-5)
    assert est.palm is not None and est.palm.offset_c == pytest.approx(1.0)
    assert est.wrist is not None and est.wrist.offset_c == pytest.approx(2.0)


def test_fused_learns_the_wrist_bias_from_the_palm_and_beats_both() -> None:
    rng = np.random.default_rng(7)
    corr = _corrector()
    true_c = 2.0 + np.cumsum(rng.normal(0, 0.02, 600))  # the camera drifts; one frame a second
    errors: dict[str, list[float]] = {"palm": [], "wrist": [], "fused": []}
    for k, c in enumerate(true_c):
        palm_c = c + rng.normal(0, 0.5)  # unbiased, noisy
        wrist_c = c + 0.4 + rng.normal(0, 0.05)  # steady, biased by +0.4
        est = _feed(corr, k * S, palm_c, wrist_c)
        assert est is not None
        if k >= 300:
            errors["palm"].append(palm_c - c)
            errors["wrist"].append(wrist_c - c)
            errors["fused"].append(est.offset_c - c)
    mae = {name: float(np.mean(np.abs(e))) for name, e in errors.items()}
    sd = {name: float(np.std(e)) for name, e in errors.items()}
    assert corr.wrist_bias_c == pytest.approx(0.4, abs=0.1)
    assert mae["fused"] < 0.6 * min(mae["palm"], mae["wrist"])
    assert sd["fused"] < 0.5 * sd["palm"] and sd["fused"] < sd["wrist"] + 0.05


def test_ffc_frames_give_nothing_and_restart_the_offset_but_keep_the_wrist_bias() -> None:
    corr = _corrector()
    for k in range(200):
        _feed(corr, k * S, 2.0 + (0.5 if k % 2 else -0.5), 2.4)
    assert corr.wrist_bias_c == pytest.approx(0.4, abs=0.1)
    assert corr.update(200 * S, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2, ffc=True) is None
    assert corr.estimate is None and corr.resets == 1
    # The shutter moved the offset to 5.0: the first frame after it lands there at once, through the
    # wrist corrected by the bias learnt before (the wrist alone would say 5.4).
    est = _feed(corr, 201 * S, 5.0, 5.4)
    assert est is not None and est.offset_c == pytest.approx(5.0, abs=0.1)


def test_palm_residual_is_a_slow_state_so_a_quick_palm_change_is_split_with_the_camera() -> None:
    corr = _corrector(palm_correlation_s=40.0)
    first = corr.update(0, wristband_c=33.0, palm=Region(31.8914 - 1.0), wrist=None)
    assert first is not None and first.offset_c == pytest.approx(1.0, abs=1e-5)
    second = corr.update(S // 8, wristband_c=33.0, palm=Region(31.8914 - 1.02), wrist=None)
    # After the first frame C + ρ = 1.0 exactly (no noise): with B = 1e6 (C unknown) and s² = 0.25 (ρ's
    # prior), P_CC = B·s²/(B + s²), P_ρρ = s² − s⁴/(B + s²), P_Cρ = −B·s²/(B + s²). 0.125 s later:
    # φ = exp(−0.125/40); P_CC += 0.1²·0.125; P_Cρ *= φ; P_ρρ = φ²·P_ρρ + s²(1 − φ²).
    # The +0.02 step in C + ρ moves C by (P_CC + P_Cρ) / (P_CC + 2·P_Cρ + P_ρρ) of it.
    big, s2 = 1e6, 0.25
    p_cc, p_rr, p_cr = big * s2 / (big + s2), s2 - s2 * s2 / (big + s2), -big * s2 / (big + s2)
    phi = math.exp(-0.125 / 40.0)
    p_cc, p_cr, p_rr = p_cc + 0.01 * 0.125, phi * p_cr, phi * phi * p_rr + s2 * (1 - phi * phi)
    gain = (p_cc + p_cr) / (p_cc + 2 * p_cr + p_rr)
    assert second is not None and second.offset_c == pytest.approx(first.offset_c + gain * 0.02, abs=1e-6)
    assert 0.3 < gain < 0.9  # both the camera's drift and the palm's own change are plausible


def test_single_outlier_is_skipped_and_a_persistent_jump_resets() -> None:
    corr = _corrector()
    for k in range(20):
        corr.update(k * S // 8, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    settled = corr.estimate
    assert settled is not None
    first = _feed(corr, 20 * S // 8, 10.0, 11.0)
    assert first is not None and first.flags == ("outlier",) and first.offset_c == settled.offset_c
    back = corr.update(21 * S // 8, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    assert back is not None and back.flags == ()
    for k in range(22, 24):
        est = _feed(corr, k * S // 8, 10.0, 11.0)
        assert est is not None and est.flags == ("outlier",)
    est = _feed(corr, 24 * S // 8, 10.0, 11.0)
    assert est is not None and est.flags == ("reset_jump",) and est.offset_c == pytest.approx(10.0, abs=1.0)
    assert corr.resets == 1


def test_without_a_reference_the_offset_is_held_then_dropped() -> None:
    corr = _corrector(hold_s=5.0)
    est = corr.update(0, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    assert est is not None
    held = corr.update(4 * S, wristband_c=None, palm=PALM_C1, wrist=WRIST_C2)  # no wristband
    assert held is not None and held.flags == ("held",) and held.offset_c == est.offset_c
    assert held.variance_c2 == pytest.approx(est.variance_c2 + 0.01 * 4)
    assert corr.update(6 * S, wristband_c=33.0, palm=None, wrist=None) is None


def test_single_reference_modes_are_the_papers_per_frame_offset() -> None:
    palm = _corrector("palm")
    est = palm.update(0, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    assert est is not None and est.reference == "palm" and est.offset_c == pytest.approx(1.0)
    assert est.wrist is None
    est = palm.update(S // 8, wristband_c=33.0, palm=Region(31.8914 - 9.0), wrist=WRIST_C2)
    assert est is not None and est.offset_c == pytest.approx(9.0)  # no filtering, no jump logic
    wrist = _corrector("wrist")
    est = wrist.update(0, wristband_c=33.0, palm=PALM_C1, wrist=WRIST_C2)
    assert est is not None and est.reference == "wrist" and est.offset_c == pytest.approx(2.0)
    held = wrist.update(S, wristband_c=33.0, palm=PALM_C1, wrist=None)
    assert held is not None and held.flags == ("held",) and held.offset_c == pytest.approx(2.0)


def test_custom_regression_and_bad_mode() -> None:
    corr = OffsetCorrector("palm", palm=Regression(1.0, 1.0), pixel_noise_sd_c=0.0)
    est = corr.update(0, wristband_c=30.0, palm=Region(30.0), wrist=None)
    assert est is not None and est.offset_c == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mode"):
        OffsetCorrector("both")  # type: ignore[arg-type]
