"""Visible → thermal registration: edge maps matched by normalised cross-correlation over shift and scale.

Method (Yoshikawa et al. 2019, DESIGN §4): Canny on both images (the thermal °C image first stretched to
8 bit), Gaussian smoothing of both edge maps, then ``cv2.matchTemplate`` (``TM_CCOEFF_NORMED``) over a range
of scales. Edges, not intensities, are matched because the two cameras see different physics (a warm face
is bright in thermal whatever its colour; a black shirt may be cold or warm).

Which image is the template: on the FLIR ONE the visible camera's field of view is wider than the thermal
one, so the visible image, scaled into the thermal pixel grid, is *larger* than the thermal image, and the
thermal edge map is the template searched inside it. A webcam with a narrower view than the thermal camera
gives the opposite case; both are handled per scale (when the scaled visible image is the smaller one in
both directions it becomes the template; when it is smaller in one direction only, the thermal template is
cropped centrally in that direction).

Matching runs on a "work grid": the thermal grid upsampled to ``work_width_px`` columns (80×60 → 160×120), so
thin thermal edges survive and the shift resolves to half a thermal pixel before sub-pixel refinement.

Composition::

    t = estimate_transform(visible_bgr, celsius)          # one-off: Transform | None
    reg = Registrar(interval_s=10.0)                        # streaming: re-estimates on schedule and drops
    t = reg.update(visible_bgr, celsius, t_mono)           # last good Transform | None
    box_th = t.map_box(face_box_visible)                    # Box in thermal pixels
    vis_th = t.warp_visible(visible_bgr, celsius.shape)     # visible image resampled onto the thermal grid

The model is ``thermal = scale · visible + (dx, dy)`` in pixel-centre coordinates (pixel ``i`` spans
``[i − 0.5, i + 0.5]``), one scale for both axes (square pixels in both cameras), no rotation (the two
cameras of a sled, or a webcam beside a thermal camera, are mounted parallel).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from fusion.face import Box
from fusion.greyscale import luma_709

__all__ = [
    "DEFAULT_FOV_RATIOS",
    "SLED_FOV_RATIOS",
    "Registrar",
    "Transform",
    "estimate_transform",
    "thermal_edges",
    "transform_ncc",
    "visible_edges",
]

# Candidate widths of the visible image expressed in thermal-image widths (1.0: same field of view).
# Any camera pair: a webcam may be wider (ratio > 1) or narrower (ratio < 1) than the thermal camera.
DEFAULT_FOV_RATIOS: tuple[float, float] = (0.6, 2.5)
# A FLIR ONE sled's own visible camera is wider than its thermal one: ≈ 1.52–1.65 thermal widths in
# most frames of the shared USB capture (Gen 3, 1440×1080 visible, 80×60 thermal).
SLED_FOV_RATIOS: tuple[float, float] = (1.2, 2.0)

_F64 = npt.NDArray[np.float64]
_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Transform:
    """Visible pixels → thermal pixels: ``thermal = scale · visible + (dx, dy)``; ``ncc`` is the match peak."""

    scale: float
    dx: float
    dy: float
    ncc: float

    def map_points(self, points_xy: npt.ArrayLike) -> _F64:
        """Map visible-pixel points (N×2, x then y) to thermal pixels.

        Raises:
            ValueError: when ``points_xy`` is not N×2.
        """
        pts = np.asarray(points_xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be N×2, got shape {pts.shape}")
        return np.asarray(pts * self.scale + np.array([self.dx, self.dy]), dtype=np.float64)

    def unmap_points(self, points_xy: npt.ArrayLike) -> _F64:
        """Map thermal-pixel points (N×2) back to visible pixels (for drawing on the visible image)."""
        pts = np.asarray(points_xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be N×2, got shape {pts.shape}")
        return np.asarray((pts - np.array([self.dx, self.dy])) / self.scale, dtype=np.float64)

    def map_box(self, box: Box) -> Box:
        """The visible-pixel box's extent in thermal pixels (edges map as pixel boundaries)."""
        return Box(box.x * self.scale + self._edge_dx, box.y * self.scale + self._edge_dy,
                   box.w * self.scale, box.h * self.scale)

    def unmap_box(self, box: Box) -> Box:
        """The thermal-pixel box's extent in visible pixels."""
        return Box((box.x - self._edge_dx) / self.scale, (box.y - self._edge_dy) / self.scale,
                   box.w / self.scale, box.h / self.scale)

    @property
    def _edge_dx(self) -> float:
        # Box edges are pixel boundaries: edge coordinate = centre coordinate + 0.5 in both images.
        return self.dx + 0.5 - 0.5 * self.scale

    @property
    def _edge_dy(self) -> float:
        return self.dy + 0.5 - 0.5 * self.scale

    def warp_visible(self, image: npt.NDArray[np.generic], thermal_shape: Sequence[int]) -> npt.NDArray[np.generic]:
        """Resample a visible-grid image (colour, grey, float or mask) onto the thermal grid.

        The image is first area-averaged to about the thermal resolution (no aliasing), then placed with a
        sub-pixel affine warp. Thermal pixels outside the visible view are 0.

        Args:
            image: H×W or H×W×C array in visible pixels (uint8, float32, ...; bool: pass ``.view(np.uint8)``).
            thermal_shape: (height, width[, ...]) of the thermal grid.

        Returns:
            Array of shape (thermal height, thermal width[, C]) and the image's dtype.

        Raises:
            ValueError: when ``image`` is not 2-D or 3-D, or ``thermal_shape`` is too short.
        """
        if image.ndim not in (2, 3) or len(thermal_shape) < 2:
            raise ValueError(f"image must be H×W or H×W×C and thermal_shape (h, w); got {image.shape}, "
                             f"{tuple(thermal_shape)}")
        h_v, w_v = image.shape[:2]
        h_t, w_t = int(thermal_shape[0]), int(thermal_shape[1])
        w_r, h_r = max(1, round(w_v * self.scale)), max(1, round(h_v * self.scale))
        src: npt.NDArray[Any] = np.asarray(image)
        small = src if (w_r, h_r) == (w_v, h_v) else cv2.resize(src, (w_r, h_r), interpolation=cv2.INTER_AREA)
        rx, ry = w_r / w_v, h_r / h_v
        m = np.array([[self.scale / rx, 0.0, self.scale * (0.5 / rx - 0.5) + self.dx],
                      [0.0, self.scale / ry, self.scale * (0.5 / ry - 0.5) + self.dy]])
        out = cv2.warpAffine(small, m, (w_t, h_t), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
            out = out[:, :, None]
        return np.asarray(out, dtype=image.dtype)


def _canny(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    # Hysteresis thresholds on the L2 Sobel magnitude: a step of about 12 grey levels starts an edge and
    # one of about 5 continues it; sensor noise (after the 0.7 px blur) stays below both.
    return np.asarray(cv2.Canny(cv2.GaussianBlur(grey, (0, 0), 0.7), 20.0, 50.0, L2gradient=True), dtype=np.uint8)


def thermal_edges(celsius: npt.NDArray[np.floating], work_width_px: int = 160, sigma_px: float = 1.0) -> _F32:
    """Smoothed Canny edge map of a thermal image on the work grid (``work_width_px`` columns).

    The °C image is stretched between its 1st and 99th percentiles to 8 bit, upsampled (cubic) to the work
    grid, lightly blurred, edge-detected, and the edges blurred with ``sigma_px``.

    Raises:
        ValueError: when ``celsius`` is not a 2-D array.
    """
    if celsius.ndim != 2:
        raise ValueError(f"celsius must be H×W, got shape {celsius.shape}")
    finite = np.nan_to_num(celsius.astype(np.float32), nan=float(np.nanmedian(celsius)) if np.isfinite(
        celsius).any() else 0.0)
    lo, hi = np.percentile(finite, [1.0, 99.0])
    grey = np.clip((finite - lo) * (255.0 / max(float(hi - lo), 1e-3)), 0, 255).astype(np.uint8)
    h, w = celsius.shape
    f = work_width_px / w
    grey = np.asarray(cv2.resize(grey, (work_width_px, max(1, round(h * f))), interpolation=cv2.INTER_CUBIC),
                      dtype=np.uint8)
    edges = _canny(grey).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(edges, (0, 0), sigma_px), dtype=np.float32)


def visible_edges(image: npt.NDArray[np.uint8], scale: float, sigma_px: float = 1.0) -> _F32:
    """Smoothed Canny edge map of a visible image resampled by ``scale`` (visible → output pixels).

    Canny runs at twice the output resolution (or the native one if smaller), so it sees edges at about the
    scale the thermal camera resolves, not skin texture; ``sigma_px`` is in output pixels.

    Raises:
        ValueError: when ``image`` is not H×W×3 or H×W uint8.
    """
    grey = _grey(image)
    h, w = grey.shape
    b = min(1.0, 2.0 * scale)
    base = grey if b >= 1.0 else np.asarray(cv2.resize(grey, (max(1, round(w * b)), max(1, round(h * b))),
                                                      interpolation=cv2.INTER_AREA), dtype=np.uint8)
    bx, by = base.shape[1] / w, base.shape[0] / h
    edges = cv2.GaussianBlur(_canny(base).astype(np.float32), (0, 0), sigma_px * bx / scale)
    kx, ky = scale / bx, scale / by
    m = np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5]])
    size = (max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))
    return np.asarray(cv2.warpAffine(edges, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT),
                      dtype=np.float32)


def _grey(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"visible image must be uint8 H×W×3 (BGR) or H×W, got {image.dtype} {image.shape}")
    return luma_709(image)


def _peak_offset(c_minus: float, c0: float, c_plus: float) -> float:
    """Vertex of the parabola through three samples one step apart, relative to the middle one."""
    denom = c_minus - 2.0 * c0 + c_plus
    if denom >= 0.0:  # not a maximum: keep the integer peak
        return 0.0
    return float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))


def _match_at(vis_edges: _F32, th_edges: _F32) -> tuple[float, float, float] | None:
    """Best NCC and the thermal-work-grid position (tx, ty) of visible-scaled pixel (0, 0), or None."""
    hv, wv = vis_edges.shape
    ht, wt = th_edges.shape
    if hv <= ht and wv <= wt:  # visible narrower than thermal: it is the template
        image, templ, sign, ox, oy = th_edges, vis_edges, 1.0, 0, 0
    else:  # thermal is the template, cropped centrally where it overhangs the visible view
        ch, cw = min(ht, hv), min(wt, wv)
        oy, ox = (ht - ch) // 2, (wt - cw) // 2
        image, templ, sign = vis_edges, th_edges[oy:oy + ch, ox:ox + cw], -1.0
    if templ.shape[0] < 8 or templ.shape[1] < 8 or float(templ.std()) < 1e-6 or float(image.std()) < 1e-6:
        return None
    res = cv2.matchTemplate(image, templ, cv2.TM_CCOEFF_NORMED)
    # OpenCV scores a (nearly) edgeless window as a perfect match; such windows carry no evidence.
    h, w = templ.shape
    ii, ii2 = (np.asarray(a, dtype=np.float64) for a in cv2.integral2(image, sdepth=cv2.CV_64F))
    n = float(h * w)

    def window_sum(table: _F64) -> _F64:
        out: _F64 = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
        return out

    var = window_sum(ii2) / n - (window_sum(ii) / n) ** 2
    res[var < (0.25 * float(templ.std())) ** 2] = -1.0
    _, peak, _, (u, v) = cv2.minMaxLoc(res)
    du = _peak_offset(res[v, u - 1], res[v, u], res[v, u + 1]) if 0 < u < res.shape[1] - 1 else 0.0
    dv = _peak_offset(res[v - 1, u], res[v, u], res[v + 1, u]) if 0 < v < res.shape[0] - 1 else 0.0
    return float(peak), sign * (u + du) + ox, sign * (v + dv) + oy


def estimate_transform(
    visible: npt.NDArray[np.uint8],
    celsius: npt.NDArray[np.floating],
    *,
    fov_ratios: tuple[float, float] = DEFAULT_FOV_RATIOS,
    coarse_steps: int = 24,
    fine_steps: int = 8,
    work_width_px: int = 160,
    sigma_px: float = 1.0,
) -> Transform | None:
    """Estimate the visible → thermal transform of one image pair.

    Scales are searched on a geometric grid over ``fov_ratios`` (visible width in thermal widths), refined
    on a finer grid around the best, then by a parabola through the three best NCC peaks; the shift is
    refined to sub-pixel precision the same way.

    Args:
        visible: H×W×3 BGR (or H×W grey) uint8 image of any resolution.
        celsius: the thermal image in °C (H×W).
        fov_ratios: (smallest, largest) visible field of view in thermal fields of view, horizontally.
        coarse_steps: scales in the coarse grid.
        fine_steps: scales in the fine grid (spanning one coarse step either side of the best).
        work_width_px: matching resolution, thermal columns after upsampling.
        sigma_px: Gaussian smoothing of both edge maps, work-grid pixels.

    Returns:
        The transform with the highest peak NCC, or None when either image has no usable edges.

    Raises:
        ValueError: on a wrongly shaped image or an empty/negative ``fov_ratios`` range.
    """
    lo_r, hi_r = fov_ratios
    if not 0 < lo_r <= hi_r or coarse_steps < 2:
        raise ValueError(f"fov_ratios must be 0 < lo <= hi and coarse_steps >= 2, got {fov_ratios}, {coarse_steps}")
    grey = _grey(visible)
    th = thermal_edges(celsius, work_width_px, sigma_px)
    f = work_width_px / celsius.shape[1]
    # Shrink once to twice the largest scale searched: every scale's Canny then starts from a small image.
    h_full, w_full = grey.shape
    w_v = min(w_full, math.ceil(2.0 * hi_r * work_width_px))
    if w_v < w_full:
        grey = np.asarray(cv2.resize(grey, (w_v, max(1, round(h_full * w_v / w_full))),
                                     interpolation=cv2.INTER_AREA), dtype=np.uint8)
    px, py = grey.shape[1] / w_full, grey.shape[0] / h_full

    def score(ratio: float) -> tuple[float, float, float] | None:
        return _match_at(visible_edges(grey, ratio * work_width_px / w_v, sigma_px), th)

    def best_of(ratios: Sequence[float]) -> tuple[int, list[float]]:
        scores = [(m[0] if (m := score(r)) is not None else -1.0) for r in ratios]
        return int(np.argmax(scores)), scores

    coarse = list(np.geomspace(lo_r, hi_r, coarse_steps))
    i, _ = best_of(coarse)
    step = (hi_r / lo_r) ** (1.0 / (coarse_steps - 1))
    fine = list(np.geomspace(max(lo_r, coarse[i] / step), min(hi_r, coarse[i] * step), fine_steps + 1))
    j, scores = best_of(fine)
    ratio = fine[j]
    if 0 < j < len(fine) - 1 and min(scores[j - 1], scores[j + 1]) > -1.0:  # interpolate in log-scale
        ratio = fine[j] * (fine[j + 1] / fine[j]) ** _peak_offset(scores[j - 1], scores[j], scores[j + 1])
    found = score(ratio)
    if found is None:
        return None
    ncc, tx, ty = found
    s_work = ratio * work_width_px / w_v
    # shrunk x_p = (x_v + 0.5)·px − 0.5;  work x_w = s_work·x_p + 0.5·s_work − 0.5 + tx;
    # thermal x_t = (x_w + 0.5)/f − 0.5
    return Transform(scale=float(s_work * px / f), dx=float((0.5 * s_work * px + tx) / f - 0.5),
                     dy=float((0.5 * s_work * py + ty) / f - 0.5), ncc=float(ncc))


def transform_ncc(
    transform: Transform,
    visible: npt.NDArray[np.uint8],
    celsius: npt.NDArray[np.floating],
    *,
    work_width_px: int = 160,
    sigma_px: float = 1.0,
) -> float:
    """NCC of the two edge maps under a given transform (how well it still fits this pair); -1 when no edges."""
    th = thermal_edges(celsius, work_width_px, sigma_px)
    f = work_width_px / celsius.shape[1]
    s_work = transform.scale * f
    vis = visible_edges(visible, s_work, sigma_px)
    # visible_edges puts visible x at s_work·(x + 0.5) − 0.5; the work grid wants s_work·x + (dx + 0.5)·f − 0.5
    t = np.array([[1.0, 0.0, (transform.dx + 0.5) * f - 0.5 * s_work],
                  [0.0, 1.0, (transform.dy + 0.5) * f - 0.5 * s_work]])
    size = (th.shape[1], th.shape[0])
    warped = cv2.warpAffine(vis, t, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    inside = cv2.warpAffine(np.ones_like(vis), t, size, flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT) > 0.5
    if inside.sum() < 64:
        return -1.0
    a, b = warped[inside].astype(np.float64), th[inside].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else -1.0


class Registrar:
    """Keeps a good visible → thermal transform over a stream of frame pairs.

    Each search that finds a good match (peak NCC ``>= min_ncc``) adds its transform to a short history;
    the transform in use is the medoid of the last ``history`` good ones (the one that disagrees least with
    the others, in thermal pixels over the thermal image; a tie keeps the one in use). One frame pair can
    mislead a search (a hand close to the lens shows parallax, a near-featureless wall gives a weak peak),
    so one search alone never replaces an established answer; a real change of geometry (a bumped webcam)
    takes over once it holds the majority of the history.

    Searches run every ``interval_s`` of sample time, and sooner when the transform in use stops fitting:
    its NCC on the current pair, checked every ``check_s``, falls below ``min_ncc`` or more than
    ``max_drop`` below its NCC when adopted. A failed search keeps the last good transform.

    Example::

        reg = Registrar(fov_ratios=SLED_FOV_RATIOS)    # the FLIR ONE's own visible camera
        t = reg.update(visible_bgr, celsius, t_mono)   # Transform | None (None until a good estimate)
        reg.ncc                                         # quality of ``t`` on the latest checked pair
    """

    def __init__(
        self,
        *,
        interval_s: float = 10.0,
        check_s: float = 1.0,
        min_ncc: float = 0.25,
        max_drop: float = 0.15,
        history: int = 9,
        fov_ratios: tuple[float, float] = DEFAULT_FOV_RATIOS,
        initial: Transform | None = None,
    ) -> None:
        if interval_s <= 0 or check_s <= 0 or history < 1:
            raise ValueError("interval_s and check_s must be positive and history at least 1")
        self._interval_ns = int(interval_s * 1e9)
        self._check_ns = int(check_s * 1e9)
        self._min_ncc = min_ncc
        self._max_drop = max_drop
        self._fov_ratios = fov_ratios
        self._history: deque[Transform] = deque([initial] if initial is not None else [], maxlen=history)
        self._transform = initial
        self._ncc: float | None = initial.ncc if initial is not None else None
        self._estimated_at: int | None = None
        self._checked_at: int | None = None
        self.estimates = 0  # searches run
        self.rejected = 0  # searches whose result was not good enough to keep

    @property
    def transform(self) -> Transform | None:
        """The transform in use (medoid of the recent good ones), or None before the first good one."""
        return self._transform

    @property
    def ncc(self) -> float | None:
        """NCC of the transform in use on the latest checked pair (its quality now)."""
        return self._ncc

    def update(self, visible: npt.NDArray[np.uint8], celsius: npt.NDArray[np.floating],
               t_mono: int) -> Transform | None:
        """Feed one frame pair at ``t_mono`` (ns); returns the transform to use for it."""
        due = self._estimated_at is None or t_mono - self._estimated_at >= self._interval_ns
        current = self._transform
        if current is not None and not due and (self._checked_at is None
                                                or t_mono - self._checked_at >= self._check_ns):
            self._checked_at = t_mono
            self._ncc = transform_ncc(current, visible, celsius)
            due = self._ncc < self._min_ncc or self._ncc < current.ncc - self._max_drop
        if not due:
            return current
        self._estimated_at = self._checked_at = t_mono
        self.estimates += 1
        found = estimate_transform(visible, celsius, fov_ratios=self._fov_ratios)
        if found is None or found.ncc < self._min_ncc:
            self.rejected += 1
            return current
        self._history.append(found)
        chosen = _medoid(self._history, current, celsius.shape)
        self._ncc = found.ncc if chosen is found else transform_ncc(chosen, visible, celsius)
        self._transform = chosen
        return chosen


def _medoid(history: Sequence[Transform], current: Transform | None, thermal_shape: Sequence[int]) -> Transform:
    """The transform that disagrees least with the others (summed over them, each disagreement the largest
    distance in thermal pixels between where the two put the thermal image's corners); ties keep
    ``current``."""
    h, w = int(thermal_shape[0]), int(thermal_shape[1])
    corners = np.array([[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]])

    def apart(a: Transform, b: Transform) -> float:  # symmetric, so two transforms tie exactly
        return float(max(np.abs(b.map_points(a.unmap_points(corners)) - corners).max(),
                         np.abs(a.map_points(b.unmap_points(corners)) - corners).max()))

    costs = [sum(apart(a, b) for b in history) for a in history]
    best = min(costs)
    tied = [t for t, cost in zip(history, costs, strict=True) if cost <= best + 1e-9]
    return current if current is not None and current in tied else tied[-1]
