"""Measurement regions on a registered thermal frame: face, palm and wrist (Yoshikawa et al. 2019, DESIGN §4).

Every function works on one grid, the thermal one: ``celsius`` (H×W °C) and, for palm and wrist, the visible
image already resampled onto it (``Transform.warp_visible`` in ``fusion.registration``). Each returns a
``RegionMeasurement`` or None when the region has too few pixels to measure.

- Face: the detector's box (thermal pixels) ∩ the hotter class of Otsu's two-class split of its temperatures,
  so hair, glasses and background inside the box drop out.
- Palm: skin pixels by Tan et al.'s colour model, learned from the face's skin: a smoothed 2-D histogram of
  (green of RGB, saturation of HSV); skin = within 3 σ of its centre. The hand is the skin blob outside the
  face next to the wristband; its temperature is the mean over that blob, eroded one pixel so pixels
  mixing skin and background at the outline do not pull it down.
- Wrist: the wristband by a hue threshold → its edges (outer contour) → their enclosing box (plus ``margin_px``); the
  wrist's temperature is the mean of the top 10 % of temperatures in the box, which are the skin next to
  and under the band rather than the cooler band itself.

Composition, per frame::

    vis = transform.warp_visible(visible_bgr, celsius.shape)
    face = face_region(celsius, transform.map_box(face_box_visible))
    skin = learn_skin_model(vis, face.mask) if face else None        # or keep the last good model
    band = wristband_region(celsius, vis)
    palm = palm_region(celsius, vis, skin, exclude=face.box, near=band.box) if skin else None
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box

__all__ = [
    "RegionMeasurement",
    "SkinModel",
    "face_region",
    "learn_skin_model",
    "otsu_split",
    "palm_region",
    "wristband_mask",
    "wristband_region",
]

_Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class RegionMeasurement:
    """One region's temperature on one thermal frame.

    ``ok`` is False when the number is usable but doubtful (``flags`` say why); a region too small to
    measure is not a measurement at all (the functions return None).
    """

    mean_c: float
    pixels: int  # thermal pixels averaged
    spread_c: float  # SD of those pixels' temperatures
    ok: bool
    mask: _Mask  # the pixels averaged (H×W, thermal grid)
    box: Box  # the region's box in thermal pixels (face: the detector box; wrist: the band's box)
    flags: tuple[str, ...] = field(default=())


def _check_grid(celsius: npt.NDArray[np.floating], image_bgr: npt.NDArray[np.uint8] | None = None) -> None:
    if celsius.ndim != 2:
        raise ValueError(f"celsius must be H×W, got shape {celsius.shape}")
    if image_bgr is not None and (image_bgr.dtype != np.uint8 or image_bgr.shape != (*celsius.shape, 3)):
        raise ValueError(f"image must be uint8 H×W×3 on the thermal grid {celsius.shape}, got "
                         f"{image_bgr.dtype} {image_bgr.shape}")


def _measure(celsius: npt.NDArray[np.floating], mask: _Mask, box: Box, flags: tuple[str, ...]) -> RegionMeasurement:
    values = celsius[mask].astype(np.float64)
    return RegionMeasurement(mean_c=float(values.mean()), pixels=int(values.size), spread_c=float(values.std()),
                             ok=not flags, mask=mask, box=box, flags=flags)


def otsu_split(values: npt.NDArray[np.floating]) -> tuple[float, float, float] | None:
    """Otsu's two-class split of a 1-D sample, exact: the threshold maximising the between-class variance.

    Every cut between two distinct sorted values is tried, so the result is the global optimum of the
    2-means objective (the within-class sum of squares), deterministic and free of any seeding or binning.

    Args:
        values: the sample (finite).

    Returns:
        ``(threshold, cold_mean, hot_mean)`` with the cold class ``values <= threshold``, or None when the
        sample has fewer than two distinct values (nothing to split).
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = v.size
    cuts = np.flatnonzero(v[1:] > v[:-1])  # cut after index i: cold = v[:i + 1]
    if cuts.size == 0:
        return None
    csum = np.cumsum(v)
    cold_n = cuts + 1.0
    cold_mean = csum[cuts] / cold_n
    hot_mean = (csum[-1] - csum[cuts]) / (n - cold_n)
    best = int(np.argmax(cold_n * (n - cold_n) * (hot_mean - cold_mean) ** 2))
    return float(v[cuts[best]]), float(cold_mean[best]), float(hot_mean[best])


def face_region(
    celsius: npt.NDArray[np.floating], box: Box, *, min_pixels: int = 12, min_separation_c: float = 1.0
) -> RegionMeasurement | None:
    """Face temperature: the detector box ∩ the hotter class of Otsu's split of its temperatures (``otsu_split``).

    Args:
        celsius: thermal image (H×W °C).
        box: face box in thermal pixels.
        min_pixels: fewer face pixels than this → None.
        min_separation_c: class means closer than this → ``ok`` False (flag ``"no_contrast"``): the
            box holds no clear face/background split, so the "hotter half" is arbitrary.
    """
    _check_grid(celsius)
    h, w = celsius.shape
    x0, y0, x1, y1 = box.clipped(w, h)
    crop = celsius[y0:y1, x0:x1]
    finite = np.isfinite(crop)
    if int(finite.sum()) < max(min_pixels, 2):
        return None
    split = otsu_split(crop[finite])
    if split is None:  # one temperature throughout: all of it, and no contrast
        hot_in_crop, separation = finite, 0.0
    else:
        threshold, cold_mean, hot_mean = split
        hot_in_crop = finite & (crop.astype(np.float64) > threshold)
        separation = hot_mean - cold_mean
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = hot_in_crop
    if int(mask.sum()) < min_pixels:
        return None
    return _measure(celsius, mask, box, () if separation >= min_separation_c else ("no_contrast",))


@dataclass(frozen=True, slots=True)
class SkinModel:
    """Tan et al.'s skin colour model in the (G of RGB, S of HSV) plane, learned from face skin.

    Skin is within ``max_sigma`` Mahalanobis distance of ``centre`` under ``covariance`` (an ellipse, not a
    per-axis box). Across one face, light and skin tone move G and S together (lit skin: high G, low S;
    shadowed or flushed skin: lower G, higher S), so the skin cloud is a tilted ellipse; a per-axis 3 σ
    box would also accept its empty corners (high G with high S, low G with low S), colours the face
    never showed, and even an untilted ellipse is the 3 σ contour of the fitted 2-D Gaussian whereas the
    box's corners lie at 4.2 σ.
    """

    centre: tuple[float, float]  # (G, S), 0..255
    covariance: tuple[tuple[float, float], tuple[float, float]]
    samples: int  # face pixels it was learned from

    def distance(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """Mahalanobis distance of every pixel's (G, S) from the skin centre."""
        g = image_bgr[..., 1].astype(np.float64) - self.centre[0]
        hsv = cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2HSV)
        s = hsv[..., 1].astype(np.float64) - self.centre[1]
        inv = np.linalg.inv(np.array(self.covariance))
        d2 = inv[0, 0] * g * g + 2.0 * inv[0, 1] * g * s + inv[1, 1] * s * s
        return np.asarray(np.sqrt(np.maximum(d2, 0.0)), dtype=np.float64)

    def mask(self, image_bgr: npt.NDArray[np.uint8], max_sigma: float = 3.0) -> _Mask:
        """Skin pixels of a BGR image: within ``max_sigma`` of the centre."""
        if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"image must be uint8 H×W×3, got {image_bgr.dtype} {image_bgr.shape}")
        return np.asarray(self.distance(image_bgr) <= max_sigma, dtype=np.bool_)


def learn_skin_model(
    image_bgr: npt.NDArray[np.uint8],
    mask: _Mask,
    *,
    bins: int = 32,
    smooth_bins: float = 1.0,
    min_pixels: int = 12,
) -> SkinModel | None:
    """Learn the skin model from the pixels of ``mask`` (the face's skin) in ``image_bgr``.

    The (G, S) pairs are binned into a ``bins``×``bins`` histogram, smoothed with a Gaussian of
    ``smooth_bins`` bins (so the model generalises beyond the exact colours seen on the face). A first
    pass takes the histogram's peak as centre and its second moment about the peak as covariance; the
    second keeps only the bins within 3 σ of that and takes their mean and covariance, so eyes, brows and
    lips in the face mask neither move nor widen the model.

    Returns:
        The model, or None when the mask holds fewer than ``min_pixels`` pixels.
    """
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or mask.shape != image_bgr.shape[:2]:
        raise ValueError(f"image must be uint8 H×W×3 and mask H×W of the same size, got {image_bgr.shape}, "
                         f"{mask.shape}")
    n = int(mask.sum())
    if n < min_pixels:
        return None
    g = image_bgr[..., 1][mask].astype(np.float64)
    s = cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2HSV)[..., 1][mask].astype(np.float64)
    width = 256.0 / bins
    hist, _, _ = np.histogram2d(g, s, bins=bins, range=((0.0, 256.0), (0.0, 256.0)))
    hist = np.asarray(cv2.GaussianBlur(hist, (0, 0), smooth_bins, borderType=cv2.BORDER_CONSTANT), np.float64)
    centres = (np.arange(bins) + 0.5) * width
    gg, ss = np.meshgrid(centres, centres, indexing="ij")
    peak = np.unravel_index(int(np.argmax(hist)), hist.shape)
    centre = (float(centres[peak[0]]), float(centres[peak[1]]))
    weights = hist
    cov = np.eye(2)
    for step in range(2):
        if step:  # second pass: mean of the bins kept, so a flat-topped histogram is centred, not edge-peaked
            total = float(weights.sum())
            centre = (float((weights * gg).sum()) / total, float((weights * ss).sum()) / total)
        dg, ds = gg - centre[0], ss - centre[1]
        total = float(weights.sum())
        cov = np.array([[(weights * dg * dg).sum(), (weights * dg * ds).sum()],
                        [(weights * dg * ds).sum(), (weights * ds * ds).sum()]]) / total
        cov += np.eye(2) * (width**2 / 12.0)  # a single-colour face still gets a bin's width of spread
        inv = np.linalg.inv(cov)
        d2 = inv[0, 0] * dg * dg + 2 * inv[0, 1] * dg * ds + inv[1, 1] * ds * ds
        weights = np.where(d2 <= 9.0, hist, 0.0)
    return SkinModel(centre=centre, covariance=((float(cov[0, 0]), float(cov[0, 1])),
                                                (float(cov[1, 0]), float(cov[1, 1]))), samples=n)


def wristband_mask(
    image_bgr: npt.NDArray[np.uint8],
    hue_range: tuple[int, int] = (100, 130),
    min_saturation: int = 80,
    min_value: int = 40,
) -> _Mask:
    """Pixels of the wristband's colour: OpenCV hue (0..179) in ``hue_range`` (wraps when lo > hi, for red).

    Skin itself has a hue of about 0–25 (OpenCV scale) at skin-like saturation, so a red or orange band
    is a poor choice; blue (the default, 100–130) or green bands separate cleanly.
    """
    hsv = cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    lo, hi = hue_range
    in_hue = (hue >= lo) & (hue <= hi) if lo <= hi else (hue >= lo) | (hue <= hi)
    return np.asarray(in_hue & (sat >= min_saturation) & (val >= min_value), dtype=np.bool_)


def wristband_region(
    celsius: npt.NDArray[np.floating],
    image_bgr: npt.NDArray[np.uint8],
    *,
    hue_range: tuple[int, int] = (100, 130),
    min_saturation: int = 80,
    min_value: int = 40,
    min_band_pixels: int = 6,
    margin_px: int = 1,
    top_fraction: float = 0.1,
) -> RegionMeasurement | None:
    """Wrist temperature: mean of the top ``top_fraction`` of temperatures in the wristband's box.

    The band is the largest connected blob of band-coloured pixels (default hue 100–130: blue); its
    edges (the blob's outer contour) give the enclosing box, grown by ``margin_px`` so the skin beside the band
    is inside it. ``ok`` is False (flag ``"band_at_border"``) when the box touches the image border,
    since part of the band, and the skin next to it, may be out of view.

    Returns:
        The measurement (its ``mask`` marks the top pixels, its ``box`` the band's box), or None when no
        band blob of ``min_band_pixels`` pixels is seen.
    """
    _check_grid(celsius, image_bgr)
    h, w = celsius.shape
    band = wristband_mask(image_bgr, hue_range, min_saturation, min_value).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=8)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if int(stats[biggest, cv2.CC_STAT_AREA]) < min_band_pixels:
        return None
    blob = np.where(labels == biggest, 255, 0).astype(np.uint8)
    # The band's edges: the outer contour of its blob (its own boundary pixels, so the box is exact).
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    bx, by, bw, bh = cv2.boundingRect(max(contours, key=len))
    x0, y0 = max(bx - margin_px, 0), max(by - margin_px, 0)
    x1, y1 = min(bx + bw + margin_px, w), min(by + bh + margin_px, h)
    box = Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    inside = np.zeros((h, w), dtype=bool)
    inside[y0:y1, x0:x1] = True
    inside &= np.isfinite(celsius)
    values = celsius[inside]
    if values.size == 0:
        return None
    k = max(1, math.ceil(top_fraction * values.size))
    threshold = np.partition(values, values.size - k)[values.size - k]
    top = inside & (celsius >= threshold)
    flags = ("band_at_border",) if bx == 0 or by == 0 or bx + bw == w or by + bh == h else ()
    return _measure(celsius, top, box, flags)


def palm_region(
    celsius: npt.NDArray[np.floating],
    image_bgr: npt.NDArray[np.uint8],
    skin: SkinModel,
    *,
    exclude: Box | None = None,
    near: Box | None = None,
    near_px: int = 3,
    max_sigma: float = 3.0,
    min_pixels: int = 8,
    erode_px: int = 1,
) -> RegionMeasurement | None:
    """Palm temperature: mean over the hand's skin pixels.

    The hand region is found as: skin pixels (``skin.mask``) outside ``exclude`` (the face box, grown by
    25 %), split into 8-connected blobs of at least ``min_pixels``; with ``near`` (the wristband's box) the
    candidates are the blobs within ``near_px`` of it (without ``near``, or when no blob is near it, all
    blobs are, and ``ok`` is False). Among the candidates a blob not touching the image border wins (the
    forearm on the band's other side runs out of the frame; the hand ends inside it), then the largest.
    The blob is eroded by ``erode_px`` when enough pixels remain.

    Returns:
        The measurement (``box``: the blob's bounding box), or None when no skin blob is large enough.
    """
    _check_grid(celsius, image_bgr)
    h, w = celsius.shape
    candidates = skin.mask(image_bgr, max_sigma) & np.isfinite(celsius)
    if exclude is not None:
        x0, y0, x1, y1 = exclude.enlarged(0.25).clipped(w, h)
        candidates[y0:y1, x0:x1] = False
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=8)
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_pixels]
    if not blobs:
        return None
    flags: list[str] = []

    def touches_border(i: int) -> bool:
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        return x == 0 or y == 0 or x + bw == w or y + bh == h

    chosen: list[int] = []
    if near is not None:
        x0, y0, x1, y1 = near.clipped(w, h)
        zone = np.zeros((h, w), dtype=bool)
        zone[max(y0 - near_px, 0):y1 + near_px, max(x0 - near_px, 0):x1 + near_px] = True
        chosen = [i for i in blobs if bool((zone & (labels == i)).any())]
    if not chosen:
        chosen = blobs
        flags.append("no_band" if near is None else "not_near_band")
    best = max(chosen, key=lambda i: (not touches_border(i), int(stats[i, cv2.CC_STAT_AREA])))
    mask = labels == best
    if erode_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (2 * erode_px + 1, 2 * erode_px + 1))
        eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        if int(eroded.sum()) >= min_pixels:
            mask = eroded
        else:
            flags.append("not_eroded")
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    return _measure(celsius, mask, Box(float(x), float(y), float(bw), float(bh)), tuple(flags))
