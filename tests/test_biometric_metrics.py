"""ISO/IEC 19795-1 rates (fusion.metrics) against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.metrics import (
    decidability,
    failure_to_acquire,
    false_accept_rate,
    false_reject_rate,
    fnmr_at_fmr,
    match_rates,
    threshold_at_fmr,
    verification_rates,
)


def test_fta_is_failures_over_attempts() -> None:
    rate = failure_to_acquire(attempts=40, failures=3)
    assert (rate.attempts, rate.failures) == (40, 3)
    assert rate.fta == pytest.approx(0.075)


@pytest.mark.parametrize(("attempts", "failures"), [(0, 0), (5, 6), (5, -1)])
def test_fta_refuses_impossible_counts(attempts: int, failures: int) -> None:
    with pytest.raises(ValueError, match=r"attempts|failures"):
        failure_to_acquire(attempts, failures)


def test_fmr_and_fnmr_at_a_threshold() -> None:
    # Distances: a match is <= threshold. Impostor 0.45 sits on the threshold (a false match);
    # genuine 0.5 lies above it (a false non-match): one of four each.
    rates = match_rates([0.2, 0.3, 0.4, 0.5], [0.45, 0.6, 0.7, 0.8], threshold=0.45)
    assert rates.fmr == pytest.approx(0.25)
    assert rates.fnmr == pytest.approx(0.25)
    strict = match_rates([0.2, 0.3, 0.4, 0.5], [0.45, 0.6, 0.7, 0.8], threshold=0.35)
    assert (strict.fmr, strict.fnmr) == (0.0, 0.5)


def test_frr_and_far_fold_in_the_failures_to_acquire() -> None:
    assert false_reject_rate(0.2, 0.25) == pytest.approx(0.2 + 0.25 * 0.8)  # 0.4
    assert false_reject_rate(0.0, 0.1) == pytest.approx(0.1)
    assert false_reject_rate(1.0, 0.0) == 1.0
    assert false_accept_rate(0.2, 0.25) == pytest.approx(0.2)  # 0.25 of the 80 % acquired
    with pytest.raises(ValueError, match="fnmr"):
        false_reject_rate(0.1, 1.5)


def test_threshold_at_one_percent_fmr_lets_exactly_one_impostor_in_a_hundred_match() -> None:
    impostor = np.arange(1, 101) / 100.0  # 0.01 .. 1.00
    threshold = threshold_at_fmr(impostor, 0.01)
    assert 0.01 <= threshold < 0.02
    rates = fnmr_at_fmr([0.005, 0.015, 0.03], impostor, 0.01)
    assert rates.fmr == pytest.approx(0.01)
    assert rates.fnmr == pytest.approx(1 / 3)  # 0.03 is above the threshold
    assert threshold_at_fmr(impostor, 0.0) < 0.01  # no impostor may match
    assert threshold_at_fmr(impostor, 1.0) == 1.0


def test_decidability_by_hand() -> None:
    # means 2 and 6, both variances 1: d' = 4 / sqrt((1 + 1) / 2) = 4
    assert decidability([1.0, 3.0], [5.0, 7.0]) == pytest.approx(4.0)
    # variances 1 and 9, means 1 and 7: d' = 6 / sqrt(5)
    assert decidability([0.0, 2.0], [4.0, 4.0, 10.0, 10.0]) == pytest.approx(6 / math.sqrt(5))
    assert decidability([5.0, 7.0], [1.0, 3.0]) == pytest.approx(4.0)  # symmetric
    with pytest.raises(ValueError, match="zero spread"):
        decidability([1.0, 1.0], [2.0])


def test_verification_rates_of_one_input_kind() -> None:
    impostor = np.arange(1, 101) / 100.0
    rates = verification_rates(attempts=10, failures=2, genuine=[0.005, 0.015, 0.03, 0.004], impostor=impostor)
    assert rates.acquisition.fta == pytest.approx(0.2)
    assert rates.at_fmr.fnmr == pytest.approx(0.25)
    assert rates.frr == pytest.approx(0.2 + 0.25 * 0.8)
    assert rates.far == pytest.approx(0.01 * 0.8)
    assert (rates.genuine, rates.impostor) == (4, 100)
    assert rates.d_prime > 0


def test_verification_without_scores_is_all_rejected_not_a_number() -> None:
    rates = verification_rates(attempts=5, failures=5, genuine=[], impostor=[])
    assert rates.acquisition.fta == 1.0
    assert rates.frr == 1.0
    assert math.isnan(rates.at_fmr.fnmr) and math.isnan(rates.d_prime)


def test_non_finite_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="genuine scores must be finite"):
        match_rates([math.nan], [1.0], 0.5)
