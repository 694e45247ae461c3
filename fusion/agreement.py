"""Agreement between raters' binary region masks (Hurault et al., "Detecting eczema areas in digital images").

Pure functions: boolean arrays in, numbers out. One image is an R×H×W stack of masks (rater, row, column)
plus an optional H×W skin mask; only pixels inside the skin mask count.

- Pixel level: ANOVA ICC(2,1) (Shrout & Fleiss: two-way random, absolute agreement, single rater) with
  pixels as targets; the latent-scale ICC of a binomial GLMM (``fusion.agreement_latent``); Krippendorff's
  alpha (nominal; for two values the closed form below).
- Area level: ICC(2,1) of positive-pixel counts in d×d cells (cells without skin dropped).
- Extent level: ICC(2,1) across images of logit((positives + ½) / (skin pixels + 1)), bootstrap CI.
- Consensus: majority vote, strictly more than half the raters (a tie is negative). Each rater against the
  consensus of the *others* (IoU, accuracy, TPR, PPV, F1); the naive rater (everything positive) against
  the consensus of all.
- Spearman–Brown: reliability of the consensus of k raters from a single rater's ICC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fusion.agreement_latent import LatentICC, latent_icc

__all__ = [
    "AREA_CELLS_PX",
    "ImageAgreement",
    "RaterScores",
    "alpha_binary",
    "area_counts",
    "bootstrap_icc",
    "consensus",
    "extent_logits",
    "icc_2_1",
    "image_agreement",
    "is_saturated",
    "rater_scores",
    "raters_needed",
    "spearman_brown",
]

AREA_CELLS_PX: tuple[int, ...] = (10, 15, 20)
_Masks = npt.NDArray[np.bool_]


def icc_2_1(x: npt.ArrayLike) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, single rater (Shrout & Fleiss 1979).

    Args:
        x: n×k ratings (targets × raters), n ≥ 2, k ≥ 2.

    Returns:
        The ICC; NaN when every rating is the same (0/0).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"ratings must be n×k with n ≥ 2 targets and k ≥ 2 raters, got shape {a.shape}")
    n, k = a.shape
    grand = a.mean()
    rows, cols = a.mean(axis=1), a.mean(axis=0)
    ss_rows = k * float(((rows - grand) ** 2).sum())
    ss_cols = n * float(((cols - grand) ** 2).sum())
    ss_err = max(float(((a - grand) ** 2).sum()) - ss_rows - ss_cols, 0.0)
    ms_rows, ms_cols = ss_rows / (n - 1), ss_cols / (k - 1)
    ms_err = ss_err / ((n - 1) * (k - 1))
    denom = ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n
    return float((ms_rows - ms_err) / denom) if denom > 0 else math.nan


def alpha_binary(y: npt.ArrayLike) -> float:
    """Krippendorff's alpha for nominal data with two values and no missing ratings.

    With m raters per unit and s_u positives in unit u: alpha = 1 - (n - 1) Σ_u s_u (m - s_u) / (m - 1)
    / (n_0 n_1), n = m · units.

    Args:
        y: R×N (raters × units), values 0/1.

    Returns:
        Alpha; NaN when only one value occurs.
    """
    a = np.asarray(y)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"labels must be R×N with R ≥ 2, got shape {a.shape}")
    m = int(a.shape[0])
    s = a.astype(bool).sum(axis=0, dtype=np.int64).astype(np.float64)
    n = float(a.size)
    n1 = float(s.sum())
    n0 = n - n1
    if n0 == 0 or n1 == 0:
        return math.nan
    disagreement = float((s * (m - s)).sum()) / (m - 1)
    return 1.0 - (n - 1.0) * disagreement / (n0 * n1)


def area_counts(masks: _Masks, skin: npt.NDArray[np.bool_] | None, d: int) -> npt.NDArray[np.int64]:
    """Positive-pixel counts per d×d cell per rater (cells × raters), over cells holding any skin."""
    r, h, w = masks.shape
    inside = np.ones((h, w), bool) if skin is None else skin
    ph, pw = -h % d, -w % d
    stacked = np.pad(masks & inside[None], ((0, 0), (0, ph), (0, pw)))
    cells = stacked.reshape(r, (h + ph) // d, d, (w + pw) // d, d).sum(axis=(2, 4), dtype=np.int64)
    has_skin = np.pad(inside, ((0, ph), (0, pw))).reshape((h + ph) // d, d, (w + pw) // d, d).any(axis=(1, 3))
    return np.asarray(cells[:, has_skin].T, dtype=np.int64)


def _area_icc(masks: _Masks, skin: npt.NDArray[np.bool_] | None, d: int) -> float:
    counts = area_counts(masks, skin, d)
    return icc_2_1(counts) if counts.shape[0] >= 2 else math.nan


def extent_logits(positives: npt.ArrayLike, pixels: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """logit of each positive share, with ½ added to positives and negatives so 0 and 1 stay finite."""
    p = np.asarray(positives, dtype=np.float64)
    n = np.asarray(pixels, dtype=np.float64)
    return np.asarray(np.log((p + 0.5) / (n - p + 0.5)), dtype=np.float64)


def bootstrap_icc(
    x: npt.ArrayLike, *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ICC(2,1), resampling targets (rows); None with fewer than 3 targets."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape[0] < 3:
        return None
    rng = np.random.default_rng(seed)
    draws = [icc_2_1(a[rng.integers(0, a.shape[0], a.shape[0])]) for _ in range(resamples)]
    finite = np.asarray([v for v in draws if math.isfinite(v)])
    if finite.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def consensus(masks: _Masks) -> _Masks:
    """Majority vote over the first axis: positive where strictly more than half the raters say so."""
    return np.asarray(2 * masks.sum(axis=0, dtype=np.int64) > masks.shape[0], dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class RaterScores:
    """One mask against a reference mask (NaN where a ratio is 0/0)."""

    iou: float
    accuracy: float
    tpr: float
    ppv: float
    f1: float


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def rater_scores(mask: npt.NDArray[np.bool_], reference: npt.NDArray[np.bool_]) -> RaterScores:
    """IoU, accuracy, TPR, PPV and F1 of ``mask`` against ``reference`` (same shape, flattened pixels)."""
    tp = int(np.count_nonzero(mask & reference))
    fp = int(np.count_nonzero(mask & ~reference))
    fn = int(np.count_nonzero(~mask & reference))
    tn = int(mask.size) - tp - fp - fn
    return RaterScores(iou=_ratio(tp, tp + fp + fn), accuracy=_ratio(tp + tn, int(mask.size)),
                       tpr=_ratio(tp, tp + fn), ppv=_ratio(tp, tp + fp), f1=_ratio(2 * tp, 2 * tp + fp + fn))


def spearman_brown(icc: float, k: int) -> float:
    """Reliability of the mean (consensus) of k raters whose single-rater reliability is ``icc``."""
    return k * icc / (1 + (k - 1) * icc)


def raters_needed(icc: float, target: float = 0.9) -> int | None:
    """Fewest raters whose consensus reaches ``target`` reliability; None when icc ≤ 0."""
    if not icc > 0:
        return None
    if icc >= target:
        return 1
    return math.ceil(target * (1 - icc) / (icc * (1 - target)) - 1e-12)


def is_saturated(shares: Sequence[float], *, share: float = 0.95, raters: int = 3) -> bool:
    """The paper's exclusion rule: at least ``raters`` raters mark more than ``share`` of the skin positive."""
    return sum(s > share for s in shares) >= raters


@dataclass(frozen=True, slots=True)
class ImageAgreement:
    """Every per-image figure; ``leave_one_out[j]`` holds (ICC(2,1), latent ICC, alpha) without rater j."""

    name: str
    pixels: int  # skin pixels scored
    positives: tuple[int, ...]  # per rater
    excluded: bool
    icc_pixel: float
    latent: LatentICC
    alpha_pixel: float
    icc_area: dict[int, float]
    scores: tuple[RaterScores, ...]  # per rater, against the consensus of the others
    naive: RaterScores  # everything positive, against the consensus of all
    leave_one_out: tuple[tuple[float, float, float], ...]

    @property
    def shares(self) -> tuple[float, ...]:
        return tuple(p / self.pixels if self.pixels else math.nan for p in self.positives)


def image_agreement(
    name: str, masks: _Masks, skin: npt.NDArray[np.bool_] | None = None, *, latent_ci: bool = True
) -> ImageAgreement:
    """All per-image figures for one R×H×W stack of masks (R ≥ 2).

    Args:
        name: the image's name (carried into the result).
        masks: R×H×W boolean, one mask per rater.
        skin: H×W boolean; only its pixels count. None: every pixel.
        latent_ci: compute the latent ICC's profile CI (the leave-one-out fits never do).

    Raises:
        ValueError: shapes disagree, fewer than two raters, or no skin pixel.
    """
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 3 or m.shape[0] < 2:
        raise ValueError(f"masks must be R×H×W with R ≥ 2, got shape {m.shape}")
    if skin is not None and skin.shape != m.shape[1:]:
        raise ValueError(f"skin mask is {skin.shape}, masks are {m.shape[1:]}")
    y = m[:, skin] if skin is not None else m.reshape(m.shape[0], -1)
    if y.shape[1] < 2:
        raise ValueError(f"{name}: fewer than two skin pixels")
    r = y.shape[0]
    positives = tuple(int(v) for v in y.sum(axis=1))
    excluded = is_saturated([p / y.shape[1] for p in positives])
    scores = []
    loo = []
    for j in range(r):
        others = np.delete(y, j, axis=0)
        scores.append(rater_scores(y[j], consensus(others)))
        if r >= 3:
            loo.append((icc_2_1(others.T), latent_icc(others, ci=False).icc, alpha_binary(others)))
    return ImageAgreement(
        name=name, pixels=int(y.shape[1]), positives=positives, excluded=excluded,
        icc_pixel=icc_2_1(y.T), latent=latent_icc(y, ci=latent_ci), alpha_pixel=alpha_binary(y),
        icc_area={d: _area_icc(m, skin, d) for d in AREA_CELLS_PX},
        scores=tuple(scores), naive=rater_scores(np.ones(y.shape[1], bool), consensus(y)),
        leave_one_out=tuple(loo),
    )
