"""Pixel-level ICC on the latent (logit) scale: a binomial GLMM with crossed rater and pixel effects.

Model (Hurault et al., as Nakagawa & Schielzeth's latent-scale ICC for binary data)::

    logit P(y_ij = 1) = mu + a_i + b_j,   a_i ~ N(0, sigma_pixel²),  b_j ~ N(0, sigma_rater²)
    ICC = sigma_pixel² / (sigma_pixel² + sigma_rater² + pi²/3)

for pixel i and rater j. The fit is maximum (marginal) likelihood, written for this shape of data rather than
a general GLMM solver (statsmodels' ``BinomialBayesMixedGLM`` would carry one random effect per pixel,
~300 000 of them per 640×480 image):

- Given the rater effects, pixels are independent and a pixel's likelihood depends only on its *pattern*
  (which raters marked it), so the data reduce to at most 2^R pattern counts. Each pattern's integral over
  ``a`` is done by the trapezoid rule on a fixed logit grid (step 0.1 ≤ sigma_pixel: spectrally accurate for
  a smooth integrand) plus the normal tails beyond ±30, where only the all-0 / all-1 patterns have mass.
  So the whole image is fitted, never a subsample.
- The R rater effects are integrated out by Laplace's method (inner Newton with analytic gradient and
  Hessian), the same approximation lme4's ``glmer`` uses; with thousands of pixels per rater their
  posterior is close to normal.
- The 95 % CI is the profile-likelihood interval of logit(ICC) (the rater variance of a few raters is
  too skewed for a Wald interval). It treats pixels as independent, as the model does; neighbouring
  pixels of real masks are not, so the CI is a lower bound on the uncertainty from the pixel side (the
  rater side, R effects, dominates).
- Nested masks (every pixel's set of raters is the top k of one rater order, e.g. one outline drawn, dilated
  and eroded; the product's mask beside copies of itself) have no finite fit: the logistic noise only ever
  costs likelihood there, so it rises as sigma_pixel → ∞ with sigma_rater / sigma_pixel held (an optimiser
  walks to its bounds and, before this case was caught, the profile search ran for minutes). The limit is
  returned instead (``nested``): rater j marks pixel i iff a_i / sigma_pixel > -t_j with
  t_j = Φ⁻¹(share_j), so ICC → 1 / (1 + v), v = var_j(t_j) (ML, mu absorbs the mean), and the profile of
  r² = sigma_rater² / sigma_pixel² is -R/2 (log r² + v / r²), which gives the CI in closed form; it is
  the R rater thresholds' uncertainty alone, the pixels' being nil in the limit.
- Every search is bounded: the fit and each profile step have iteration caps, the profile's bracket
  doubles to logit(ICC) ±12 at most, and a side whose likelihood never drops enough before that is
  reported as 0 or 1 (a one-sided interval). A fit that ends at a bound (a variance, mu or a rater effect)
  gets no CI (``at_bound``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

__all__ = ["LatentICC", "latent_icc"]

_GRID_HALF = 30.0  # logit grid ±30 (probabilities 1e-13 .. 1 - 1e-13)
_GRID_STEP = 0.1
_SIGMA_PIXEL_BOUNDS = (0.1, 100.0)  # lower bound = grid step (trapezoid accuracy); upper: ICC 0.9997
_SIGMA_RATER_BOUNDS = (1e-3, 20.0)
_MU_BOUNDS = (-25.0, 25.0)
_B_CLIP = 20.0  # rater effects are kept within ±20 logits
_FIT_MAXITER = 200  # L-BFGS-B iterations of the fit (a regular one takes ~20)
_PROFILE_MAXITER = 60  # and of each profile point, started from the fit
_LOGIT_ICC_LIMITS = (-12.0, 12.0)  # the profile's bracket: ICC 6e-6 .. 1 - 6e-6
_LOGISTIC_VAR = math.pi**2 / 3.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_ETA = np.arange(-_GRID_HALF, _GRID_HALF + _GRID_STEP / 2, _GRID_STEP)


@dataclass(frozen=True, slots=True)
class LatentICC:
    """Result of one latent-scale fit."""

    icc: float
    ci: tuple[float, float] | None  # 95 % profile-likelihood CI (0 or 1 at an open end); None at a bound
    sigma_pixel: float
    sigma_rater: float
    mu: float
    rater_effects: tuple[float, ...]  # conditional modes of b_j (nested: t_j - mean t, in pixel SDs)
    pixels: int
    patterns: int  # distinct rater patterns among the pixels
    at_bound: bool  # a parameter sits at its bound (e.g. perfect agreement, nested masks)
    nested: bool = False  # nested masks: no finite fit, icc and ci are the limit sigma_pixel → ∞


def _icc(sigma_pixel: float, sigma_rater: float) -> float:
    vp = sigma_pixel**2
    return vp / (vp + sigma_rater**2 + _LOGISTIC_VAR)


class _Patterns:
    """Distinct rows of an R×N binary matrix and their counts; the pattern likelihoods and derivatives."""

    def __init__(self, y: npt.NDArray[np.bool_]) -> None:
        r = y.shape[0]
        codes = np.zeros(y.shape[1], dtype=np.int64)
        for j in range(r):
            codes |= y[j].astype(np.int64) << j
        unique, counts = np.unique(codes, return_counts=True)
        self.r = r
        self.bits = ((unique[:, None] >> np.arange(r)[None, :]) & 1).astype(np.float64)  # K×R
        self.counts = counts.astype(np.float64)
        self.all0 = unique == 0
        self.all1 = unique == (1 << r) - 1

    def log_lik(
        self, mu: float, sigma_p: float, b: npt.NDArray[np.float64]
    ) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Σ_k n_k log L_k(b) and its gradient and Hessian in b."""
        # Only grid points within 9 SD of mu carry weight (normal density < 1e-17 beyond).
        lo, hi = np.searchsorted(_ETA, [mu - 9.0 * sigma_p, mu + 9.0 * sigma_p])
        eta = _ETA[lo:hi]  # ≥ 18 points: |mu| ≤ 25 and sigma_p ≥ 0.1
        z = eta[None, :] + b[:, None]  # R×G
        log_s, log_1ms = special.log_expit(z), special.log_expit(-z)
        log_f = self.bits @ log_s + (1.0 - self.bits) @ log_1ms  # K×G
        u = (eta - mu) / sigma_p
        log_w = -0.5 * u * u - math.log(sigma_p) - _HALF_LOG_2PI + math.log(_GRID_STEP)
        log_terms = log_f + log_w[None, :]
        peak = log_terms.max(axis=1)
        log_l = peak + np.log(np.exp(log_terms - peak[:, None]).sum(axis=1))
        # Beyond the grid only the all-0 (left) and all-1 (right) patterns have likelihood ≈ 1.
        tail_lo = float(special.log_ndtr((-_GRID_HALF - mu) / sigma_p))
        tail_hi = float(special.log_ndtr((mu - _GRID_HALF) / sigma_p))
        log_l = np.where(self.all0, np.logaddexp(log_l, tail_lo), log_l)
        log_l = np.where(self.all1, np.logaddexp(log_l, tail_hi), log_l)
        post = np.exp(log_terms - log_l[:, None])  # K×G; the tails carry no b-derivative
        s = np.exp(log_s)  # R×G
        # d log f / d b_j = bits_kj - s_j(eta); d² log f / d b_j² = -s_j (1 - s_j)
        grad_k = self.bits * post.sum(axis=1)[:, None] - post @ s.T  # K×R
        n = self.counts
        grad = n @ grad_k
        # Σ_k n_k [E_k(d_j d_l) - δ_jl E_k(s_j(1-s_j))] - Σ_k n_k g_kj g_kl, with d = bits - s
        weighted = post * n[:, None]  # K×G
        # E[(bits_j - s_j)(bits_l - s_l)] = bits_j bits_l P - bits_j E[s_l] - bits_l E[s_j] + E[s_j s_l]
        mass = post.sum(axis=1)  # K (≤ 1: tails excluded)
        es = post @ s.T  # K×R
        bb = (self.bits * (n * mass)[:, None]).T @ self.bits
        bs = (self.bits * n[:, None]).T @ es
        ss = (s * weighted.sum(axis=0)[None, :]) @ s.T
        second = bb - bs - bs.T + ss
        curvature = np.diag((s * (1.0 - s)) @ weighted.sum(axis=0))
        outer = (grad_k * n[:, None]).T @ grad_k
        hess = second - curvature - outer
        return float(n @ log_l), grad, hess


def _laplace(
    pat: _Patterns, mu: float, sigma_p: float, sigma_r: float, b0: npt.NDArray[np.float64]
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Laplace approximation of log ∫ p(y | b) N(b; 0, sigma_r² I) db; returns it, b̂ and -H at b̂."""
    r = pat.r
    prec = 1.0 / sigma_r**2

    def h(b: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        ll, g, hs = pat.log_lik(mu, sigma_p, b)
        value = ll - 0.5 * prec * float(b @ b) - 0.5 * r * math.log(2 * math.pi * sigma_r**2)
        return value, g - prec * b, hs - prec * np.eye(r)

    b = b0.copy()
    value, g, hs = h(b)
    for _ in range(50):
        step = np.linalg.solve(-hs, g)
        t = 1.0
        while True:
            cand = np.clip(b + t * step, -_B_CLIP, _B_CLIP)
            v_new, g_new, h_new = h(cand)
            if v_new >= value - 1e-9 or t < 1e-3:
                break
            t *= 0.5
        if v_new < value - 1e-9:  # no ascent along the (clipped) Newton direction: at the clip, stop
            break
        moved = float(np.max(np.abs(cand - b)))
        b, value, g, hs = cand, v_new, g_new, h_new
        if moved < 1e-9:  # converged, or held at the clip (no finite mode): more steps change nothing
            break
    neg_h = -hs
    _, logdet = np.linalg.slogdet(neg_h)
    return value + 0.5 * r * math.log(2 * math.pi) - 0.5 * logdet, b, neg_h


def latent_icc(y: npt.NDArray[np.bool_], *, ci: bool = True) -> LatentICC:
    """Fit the crossed binomial GLMM to R raters' labels of N pixels and return the latent ICC.

    Args:
        y: R×N boolean (rater × pixel), R ≥ 2.
        ci: compute the profile-likelihood CI (about ten times the fit's cost).

    Raises:
        ValueError: fewer than two raters or no pixels.
    """
    y = np.asarray(y, dtype=bool)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] == 0:
        raise ValueError(f"labels must be R×N with R ≥ 2 raters and N ≥ 1 pixels, got shape {y.shape}")
    pat = _Patterns(y)
    r = y.shape[0]
    if not np.any(~(pat.all0 | pat.all1)):
        # Every pixel unanimous: the likelihood grows without bound in sigma_pixel, so the ICC's limit is 1.
        share = float(y[0].mean())
        return LatentICC(icc=1.0, ci=None, sigma_pixel=math.inf, sigma_rater=0.0,
                         mu=float(special.logit(share)) if 0 < share < 1 else math.nan,
                         rater_effects=(0.0,) * r, pixels=int(y.shape[1]), patterns=int(pat.counts.size),
                         at_bound=True)
    if _is_nested(pat):
        return _nested_limit(y, pat)
    warm = {"b": np.zeros(r)}

    def neg_ll(theta: npt.NDArray[np.float64]) -> float:
        mu, lsp, lsr = (float(v) for v in theta)
        value, b, _ = _laplace(pat, mu, math.exp(lsp), math.exp(lsr), warm["b"])
        warm["b"] = b
        return -value

    share = float(y.mean())
    mu0 = float(special.logit(min(max(share, 1e-3), 1 - 1e-3)))
    log_sp = (math.log(_SIGMA_PIXEL_BOUNDS[0]), math.log(_SIGMA_PIXEL_BOUNDS[1]))
    log_sr = (math.log(_SIGMA_RATER_BOUNDS[0]), math.log(_SIGMA_RATER_BOUNDS[1]))
    bounds: list[tuple[float, float]] = [_MU_BOUNDS, log_sp, log_sr]
    best = optimize.minimize(neg_ll, np.array([mu0, math.log(1.0), math.log(0.3)]), method="L-BFGS-B",
                             bounds=bounds, options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": _FIT_MAXITER})
    theta = np.asarray(best.x, dtype=np.float64)
    mu, lsp, lsr = (float(v) for v in theta)
    sp, sr = math.exp(lsp), math.exp(lsr)
    _, b_hat, _ = _laplace(pat, mu, sp, sr, np.zeros(r))
    at_bound = (
        any(math.isclose(v, lo, abs_tol=1e-3) or math.isclose(v, hi, abs_tol=1e-3)
            for v, (lo, hi) in zip(theta, bounds, strict=True))
        or float(np.max(np.abs(b_hat))) > _B_CLIP - 1e-6
        or not best.success  # iteration cap: not a maximum to profile around
    )
    icc = _icc(sp, sr)
    interval = None if at_bound or not ci else _profile_ci(neg_ll, theta, float(best.fun), bounds)
    return LatentICC(icc=icc, ci=interval, sigma_pixel=sp, sigma_rater=sr, mu=mu,
                     rater_effects=tuple(float(v) for v in b_hat), pixels=int(y.shape[1]),
                     patterns=int(pat.counts.size), at_bound=at_bound)


def _profile_ci(
    neg_ll: Callable[[npt.NDArray[np.float64]], float],
    theta: npt.NDArray[np.float64],
    nll_hat: float,
    bounds: list[tuple[float, float]],
    level: float = 0.95,
) -> tuple[float, float]:
    """Profile-likelihood CI for logit(ICC) = 2 log sigma_p - log(sigma_r² + pi²/3).

    With a handful of raters the rater variance is poorly known and its Wald interval on the log scale is
    far from symmetric in the ICC; the profile follows the likelihood instead.
    """
    drop = 0.5 * float(stats.chi2.ppf(level, 1))
    lsp_lo, lsp_hi = bounds[1]

    def centre_of(t: npt.NDArray[np.float64]) -> float:
        return 2 * float(t[1]) - math.log(math.exp(2 * float(t[2])) + _LOGISTIC_VAR)

    def excess(c: float) -> float:
        def nll(v: npt.NDArray[np.float64]) -> float:
            lsp = 0.5 * (c + math.log(math.exp(2 * float(v[1])) + _LOGISTIC_VAR))
            if not lsp_lo <= lsp <= lsp_hi:
                return nll_hat + 1e3 * (1 + abs(lsp - min(max(lsp, lsp_lo), lsp_hi)))
            return neg_ll(np.array([float(v[0]), lsp, float(v[1])]))

        res = optimize.minimize(nll, np.array([theta[0], theta[2]]), method="L-BFGS-B",
                                bounds=[bounds[0], bounds[2]],
                                options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": _PROFILE_MAXITER})
        return float(res.fun) - nll_hat - drop

    c_hat = centre_of(theta)
    limits = _LOGIT_ICC_LIMITS
    ends = []
    for sign in (-1.0, 1.0):
        # Bracket: steps 0.1, 0.2, 0.4, ... from the estimate, at most to the limit (≤ 9 profile points).
        step, inner = 0.1, c_hat
        outer = c_hat + sign * step
        while (e_outer := excess(outer)) < 0:
            inner, step = outer, step * 2
            outer = c_hat + sign * step
            if not limits[0] < outer < limits[1]:
                outer = limits[0] if sign < 0 else limits[1]
                e_outer = excess(outer)
                break
        if e_outer < 0:  # the likelihood never drops enough: one-sided, the CI runs to 0 or 1
            ends.append(-math.inf if sign < 0 else math.inf)
        else:
            ends.append(optimize.brentq(excess, min(inner, outer), max(inner, outer), xtol=2e-3, maxiter=40))
    return float(special.expit(ends[0])), float(special.expit(ends[1]))


def _is_nested(pat: _Patterns) -> bool:
    """True when the distinct patterns form a chain: ordered by size, each holds the one before."""
    bits = pat.bits.astype(bool)
    rows = bits[np.argsort(bits.sum(axis=1), kind="stable")]
    return bool(np.all(rows[1:] >= rows[:-1]))


def _nested_limit(y: npt.NDArray[np.bool_], pat: _Patterns, level: float = 0.95) -> LatentICC:
    """The limit sigma_pixel → ∞ for nested masks (module docstring); shares get ½ as ``extent_logits``."""
    r, n = y.shape
    shares = (y.sum(axis=1, dtype=np.float64) + 0.5) / (n + 1.0)
    t = stats.norm.ppf(shares)
    v = float(np.var(t))
    drop = 0.5 * float(stats.chi2.ppf(level, 1))

    def excess(x: float) -> float:  # likelihood drop at r² = v / x
        return float(0.5 * r * (x - 1.0 - math.log(x)) - drop)

    x_lo, x_hi = optimize.brentq(excess, 1e-12, 1.0), optimize.brentq(excess, 1.0, 1e12)
    return LatentICC(icc=1.0 / (1.0 + v), ci=(1.0 / (1.0 + v / x_lo), 1.0 / (1.0 + v / x_hi)),
                     sigma_pixel=math.inf, sigma_rater=math.inf, mu=math.nan,
                     rater_effects=tuple(float(v) for v in t - t.mean()), pixels=int(n),
                     patterns=int(pat.counts.size), at_bound=True, nested=True)
