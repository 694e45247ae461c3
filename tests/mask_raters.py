"""Masks with known agreement, drawn from the latent logit model that ``fusion.agreement_latent`` fits.

Rater j marks pixel i with probability expit(mu + a_i + b_j): a is the pixel field (SD ``sigma_pixel``;
Gaussian-smoothed noise rescaled to that SD when ``smooth_px`` > 0, so masks look like regions with ragged
edges; i.i.d. when 0, the model exactly) and b_j the rater's bias (SD ``sigma_rater``). The true latent ICC
is sigma_pixel² / (sigma_pixel² + sigma_rater² + pi²/3) (``true_icc``). sigma_pixel = 0 gives independent
raters; ``copies`` gives R identical masks (perfect agreement).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
from scipy import special


def true_icc(sigma_pixel: float, sigma_rater: float) -> float:
    return sigma_pixel**2 / (sigma_pixel**2 + sigma_rater**2 + math.pi**2 / 3)


def latent_masks(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    raters: int = 4,
    sigma_pixel: float = 2.0,
    sigma_rater: float = 0.5,
    mu: float = -1.0,
    smooth_px: float = 0.0,
    exact_rater_sd: bool = False,
) -> npt.NDArray[np.bool_]:
    """R×H×W masks from the latent model (see the module docstring).

    ``exact_rater_sd``: rescale the drawn rater effects to mean 0 and SD exactly ``sigma_rater``, so the
    realised rater variance (the only one R raters can reveal) is the known one.
    """
    field = rng.standard_normal(shape).astype(np.float32)
    if smooth_px > 0:
        field = cv2.GaussianBlur(field, (0, 0), smooth_px)
        field = (field - field.mean()) / max(float(field.std()), 1e-12)
    a = sigma_pixel * field.astype(np.float64)
    b = rng.normal(0.0, sigma_rater, raters)
    if exact_rater_sd and raters > 1:
        b = sigma_rater * (b - b.mean()) / b.std()
    p = special.expit(mu + a[None] + b[:, None, None])  # no overflow for huge sigmas (nested masks)
    return np.asarray(rng.random((raters, *shape)) < p, dtype=np.bool_)


def copies(rng: np.random.Generator, shape: tuple[int, int], raters: int = 4) -> npt.NDArray[np.bool_]:
    """R identical masks (a smooth blob): perfect agreement."""
    one = latent_masks(rng, shape, raters=1, sigma_pixel=3.0, sigma_rater=0.0, smooth_px=8.0)[0]
    return np.repeat(one[None], raters, axis=0)
