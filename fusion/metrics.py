"""Biometric performance rates as ISO/IEC 19795-1 defines them: acquisition, matching, decidability.

Scores here are *dissimilarity* scores (a face-embedding distance: smaller = more alike), so a
comparison is a match when ``score <= threshold``. A failed acquisition (no face found, no template)
produces no score; the standard folds it into the system-level rates:

- FTA: failed acquisition attempts / all attempts;
- FMR: impostor comparisons wrongly matched; FNMR: genuine comparisons wrongly not matched;
- FRR = FTA + FNMR·(1 − FTA) and FAR = FMR·(1 − FTA) (one attempt per transaction);
- decidability d′ = |μg − μi| / sqrt((σg² + σi²) / 2), with population standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "AcquisitionRate",
    "MatchRates",
    "VerificationRates",
    "decidability",
    "failure_to_acquire",
    "false_accept_rate",
    "false_reject_rate",
    "fnmr_at_fmr",
    "match_rates",
    "threshold_at_fmr",
    "verification_rates",
]


@dataclass(frozen=True, slots=True)
class AcquisitionRate:
    """Failure to acquire over a set of attempts.

    Attributes:
        attempts: acquisition attempts made.
        failures: attempts that gave no usable sample (no face).
        fta: failures / attempts.
    """

    attempts: int
    failures: int
    fta: float


@dataclass(frozen=True, slots=True)
class MatchRates:
    """Matching error rates at one decision threshold (distance ≤ threshold is a match).

    Attributes:
        threshold: the decision threshold.
        fmr: share of impostor scores at or below the threshold.
        fnmr: share of genuine scores above the threshold.
    """

    threshold: float
    fmr: float
    fnmr: float


@dataclass(frozen=True, slots=True)
class VerificationRates:
    """System-level rates of one input kind: acquisition and matching together.

    Attributes:
        acquisition: attempts, failures and FTA.
        at_fmr: the matching rates at the threshold chosen for the target FMR (NaN without scores).
        target_fmr: the FMR the threshold was chosen for.
        frr: FTA + FNMR·(1 − FTA).
        far: FMR·(1 − FTA).
        d_prime: decidability of the genuine and impostor scores (NaN without both).
        genuine: number of genuine comparisons.
        impostor: number of impostor comparisons.
    """

    acquisition: AcquisitionRate
    at_fmr: MatchRates
    target_fmr: float
    frr: float
    far: float
    d_prime: float
    genuine: int
    impostor: int


def _scores(name: str, values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} scores must be finite")
    return array


def _rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def failure_to_acquire(attempts: int, failures: int) -> AcquisitionRate:
    """FTA = failures / attempts.

    Raises:
        ValueError: no attempts, or failures outside 0..attempts.
    """
    if attempts <= 0:
        raise ValueError(f"attempts must be positive, got {attempts}")
    if not 0 <= failures <= attempts:
        raise ValueError(f"failures must be within 0..{attempts}, got {failures}")
    return AcquisitionRate(attempts=attempts, failures=failures, fta=failures / attempts)


def match_rates(
    genuine: Sequence[float] | npt.NDArray[np.float64],
    impostor: Sequence[float] | npt.NDArray[np.float64],
    threshold: float,
) -> MatchRates:
    """FMR and FNMR at ``threshold`` for dissimilarity scores (a match is ``score <= threshold``).

    Raises:
        ValueError: either score set is empty or holds a non-finite value.
    """
    g, i = _scores("genuine", genuine), _scores("impostor", impostor)
    if g.size == 0 or i.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    return MatchRates(threshold=threshold, fmr=float(np.mean(i <= threshold)), fnmr=float(np.mean(g > threshold)))


def threshold_at_fmr(impostor: Sequence[float] | npt.NDArray[np.float64], target_fmr: float) -> float:
    """The largest impostor score that keeps FMR ≤ ``target_fmr``, less a hair; −inf when none does.

    Every threshold in ``[s_k, s_{k+1})`` gives the same FMR, so the decision is made just below the
    first impostor score that would push the FMR over the target.

    Raises:
        ValueError: no impostor scores, or the target outside [0, 1].
    """
    i = np.sort(_scores("impostor", impostor))
    if i.size == 0:
        raise ValueError("need at least one impostor score")
    allowed = math.floor(_rate("target_fmr", target_fmr) * i.size + 1e-9)  # impostors that may match
    if allowed >= i.size:
        return float(i[-1])
    return float(np.nextafter(i[allowed], -np.inf))


def fnmr_at_fmr(
    genuine: Sequence[float] | npt.NDArray[np.float64],
    impostor: Sequence[float] | npt.NDArray[np.float64],
    target_fmr: float = 0.01,
) -> MatchRates:
    """The rates at the threshold where FMR is at most ``target_fmr`` (the usual "FNMR at FMR 1 %")."""
    return match_rates(genuine, impostor, threshold_at_fmr(impostor, target_fmr))


def false_reject_rate(fta: float, fnmr: float) -> float:
    """FRR = FTA + FNMR·(1 − FTA) (ISO/IEC 19795-1, one attempt per transaction)."""
    fta, fnmr = _rate("fta", fta), _rate("fnmr", fnmr)
    return fta + fnmr * (1.0 - fta)


def false_accept_rate(fta: float, fmr: float) -> float:
    """FAR = FMR·(1 − FTA): an impostor whose face is not acquired is not accepted either."""
    fta, fmr = _rate("fta", fta), _rate("fmr", fmr)
    return fmr * (1.0 - fta)


def decidability(
    genuine: Sequence[float] | npt.NDArray[np.float64], impostor: Sequence[float] | npt.NDArray[np.float64]
) -> float:
    """d′ = |μg − μi| / sqrt((σg² + σi²) / 2) with population standard deviations.

    Raises:
        ValueError: either set is empty, or both have zero spread (d′ undefined).
    """
    g, i = _scores("genuine", genuine), _scores("impostor", impostor)
    if g.size == 0 or i.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    spread = math.sqrt((float(g.var()) + float(i.var())) / 2.0)
    if spread == 0.0:
        raise ValueError("genuine and impostor scores both have zero spread: d′ is undefined")
    return abs(float(g.mean()) - float(i.mean())) / spread


def verification_rates(
    attempts: int,
    failures: int,
    genuine: Sequence[float] | npt.NDArray[np.float64],
    impostor: Sequence[float] | npt.NDArray[np.float64],
    target_fmr: float = 0.01,
) -> VerificationRates:
    """FTA, FNMR at the target FMR, FRR, FAR and d′ of one input kind.

    Without genuine or impostor scores (every face missed) the matching rates are NaN and FRR is the FTA
    plus a FNMR of 1 for whatever was acquired: nothing could be verified.
    """
    acquisition = failure_to_acquire(attempts, failures)
    g, i = _scores("genuine", genuine), _scores("impostor", impostor)
    if g.size == 0 or i.size == 0:
        nan = math.nan
        return VerificationRates(
            acquisition=acquisition,
            at_fmr=MatchRates(threshold=nan, fmr=nan, fnmr=nan),
            target_fmr=target_fmr,
            frr=1.0,
            far=0.0,
            d_prime=nan,
            genuine=int(g.size),
            impostor=int(i.size),
        )
    rates = fnmr_at_fmr(g, i, target_fmr)
    try:
        d_prime = decidability(g, i)
    except ValueError:
        d_prime = math.nan
    return VerificationRates(
        acquisition=acquisition,
        at_fmr=rates,
        target_fmr=target_fmr,
        frr=false_reject_rate(acquisition.fta, rates.fnmr),
        far=false_accept_rate(acquisition.fta, rates.fmr),
        d_prime=d_prime,
        genuine=int(g.size),
        impostor=int(i.size),
    )
