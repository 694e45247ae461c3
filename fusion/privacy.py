"""A privacy lens in software: a Zernike lens surface, its per-colour PSF, and the image it forms.

Model (Arguello et al., privacy-aware optical lens): the surface's optical path difference is
φ = Σ α_j Z_j (Zernike polynomials, Noll index j, α in µm); the pupil transmits t_φ = exp(j2πφ/λ)
inside the aperture. Under the Fresnel approximation, propagating the field from an ideal focusing
lens to its back focal plane is a scaled Fourier transform (the lens's quadratic phase cancels the
Fresnel transfer function's), so the incoherent PSF per wavelength is H = |F{t_φ·P}|², sampled
``oversample`` times finer than a sensor pixel and integrated over each pixel. The recorded image is
Y = S(H * X) + N per colour channel: X in linear light (sRGB decoded), S the sRGB encoding back to 8
bits, N Gaussian noise. Presets: ``defocus`` (Z4 alone), ``lowres16`` (a 16×16 sensor) and ``lens``
(coefficients optimised by ``models/privacy_lens/optimise.py``, handed in by edge/).

``Lens.apply`` is the live path: convolution at a reduced working resolution (the result is blurred
far below it anyway), sRGB through look-up tables, so a 640×480 frame costs a few milliseconds;
``form_image`` is the full-resolution FFT model the tests and the attacker's knowledge use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt
from scipy import signal as sps

__all__ = [
    "BGR_WAVELENGTHS_UM",
    "REFERENCE_WIDTH_PX",
    "Lens",
    "Lensing",
    "LowResSensor",
    "Optics",
    "form_image",
    "lens_psfs",
    "linear_to_srgb",
    "noll_to_nm",
    "psf",
    "psf_for_width",
    "psf_rms_radius",
    "srgb_to_linear",
    "surface_steepness",
    "zernike",
]

# Centre wavelengths of a Bayer sensor's blue, green and red filters, in the BGR order of our frames.
BGR_WAVELENGTHS_UM = (0.46, 0.55, 0.61)
# The PSF is computed for a sensor this many pixels wide (the webcam's 640×480); other widths scale it.
REFERENCE_WIDTH_PX = 640


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order n and signed azimuthal frequency m of Noll index j (1 = piston, 4 = defocus).

    Raises:
        ValueError: j < 1.
    """
    if j < 1:
        raise ValueError(f"Noll index starts at 1, got {j}")
    n = 0
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    k = j - n * (n + 1) // 2  # 1-based position within order n
    # Within an order |m| grows in steps of 2 from n mod 2; each m > 0 comes as a cos/sin pair.
    ms = [m for m in range(n % 2, n + 1, 2) for _ in ((0,) if m == 0 else (0, 1))]
    m = ms[k - 1]
    if m == 0:
        return n, 0
    return n, (m if j % 2 == 0 else -m)  # Noll: even j → cos (m > 0), odd j → sin (m < 0)


def zernike(j: int, rho: npt.NDArray[np.float64], theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Noll-normalised Zernike polynomial Z_j at polar points (zero outside the unit disk).

    Normalised so that (1/π) ∫∫_disk Z_j Z_k = δ_jk, hence α_j is the RMS of its term.
    """
    n, m = noll_to_nm(j)
    am = abs(m)
    radial = np.zeros_like(rho, dtype=np.float64)
    for s in range((n - am) // 2 + 1):
        c = (-1) ** s * math.factorial(n - s) / (
            math.factorial(s) * math.factorial((n + am) // 2 - s) * math.factorial((n - am) // 2 - s)
        )
        radial += c * rho ** (n - 2 * s)
    if m == 0:
        z = math.sqrt(n + 1) * radial
    elif m > 0:
        z = math.sqrt(2 * (n + 1)) * radial * np.cos(am * theta)
    else:
        z = math.sqrt(2 * (n + 1)) * radial * np.sin(am * theta)
    return np.where(rho <= 1.0, z, 0.0)


@dataclass(frozen=True, slots=True)
class Optics:
    """The camera the surface sits in.

    Attributes:
        f_number: focal length over aperture diameter.
        pixel_um: sensor pixel pitch at ``REFERENCE_WIDTH_PX`` pixels across.
        psf_px: side of the PSF in pixels (odd; the largest blur must fit).
        oversample: PSF samples per pixel side before integrating over the pixel (odd).
    """

    f_number: float = 2.0
    pixel_um: float = 3.0
    psf_px: int = 81
    oversample: int = 7

    def __post_init__(self) -> None:
        if self.psf_px % 2 == 0 or self.oversample % 2 == 0:
            raise ValueError(f"psf_px and oversample must be odd, got {self.psf_px}, {self.oversample}")


def psf(coeffs_um: Sequence[float], wavelength_um: float, optics: Optics = Optics()) -> npt.NDArray[np.float64]:
    """The PSF of the surface Σ coeffs_um[j-1]·Z_j at one wavelength, psf_px² pixels, summing to 1.

    Args:
        coeffs_um: α_1, α_2, … in µm of optical path (Noll order; piston and tilts may be zero).
        wavelength_um: the light's wavelength.
        optics: aperture and sensor.

    Raises:
        ValueError: the pupil would not be sampled finely enough for this wavelength.
    """
    k = optics.oversample
    n_grid = optics.psf_px * k
    # PSF sample spacing δ = λ·F#·Ns/N for a pupil Ns samples across: δ = pixel/k fixes Ns.
    pupil_samples = optics.pixel_um * optics.psf_px / (wavelength_um * optics.f_number)
    if pupil_samples > n_grid / 2:
        raise ValueError(f"oversample {k} too small for {wavelength_um} µm (|H|² would alias)")
    phase_um, inside = _surface(coeffs_um, n_grid, pupil_samples)
    steepness = _steepness(phase_um, inside, wavelength_um)
    if steepness > 1.0:
        raise ValueError(
            f"surface too steep for psf_px {optics.psf_px}: {steepness:.2f} π per pupil sample "
            "(the PSF would wrap around); use smaller coefficients or a larger psf_px"
        )
    field = np.where(inside, np.exp(2j * np.pi * phase_um / wavelength_um), 0.0)
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(field)))) ** 2
    # Integrate over each pixel: k×k fine samples, the centre sample in the centre pixel's centre.
    binned = intensity.reshape(optics.psf_px, k, optics.psf_px, k).sum(axis=(1, 3))
    return np.asarray(binned / binned.sum(), dtype=np.float64)


def _surface(
    coeffs_um: Sequence[float], n_grid: int, pupil_samples: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """φ on an n_grid² pupil grid whose unit disk is ``pupil_samples`` across, and the disk's mask."""
    c = n_grid // 2
    y, x = np.mgrid[-c : n_grid - c, -c : n_grid - c].astype(np.float64) / (pupil_samples / 2)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    phase_um = np.zeros_like(rho)
    for j, a in enumerate(coeffs_um, start=1):
        if a != 0.0:
            phase_um += a * zernike(j, rho, theta)
    return phase_um, rho <= 1.0


def _steepness(phase_um: npt.NDArray[np.float64], inside: npt.NDArray[np.bool_], wavelength_um: float) -> float:
    """Largest phase step between neighbouring pupil samples, in units of π (above 1 the field aliases)."""
    steps = [
        np.abs(np.diff(phase_um, axis=a))[inside[:-1, :] & inside[1:, :] if a == 0 else inside[:, :-1] & inside[:, 1:]]
        for a in (0, 1)
    ]
    largest = max(float(s.max()) if s.size else 0.0 for s in steps)
    return 2.0 * largest / wavelength_um


def surface_steepness(coeffs_um: Sequence[float], optics: Optics = Optics()) -> float:
    """How steep the surface is for the PSF grid, in π per pupil sample (the same at every wavelength,
    as the pupil's sampling scales with it); :func:`psf` refuses above 1: the PSF would wrap around."""
    wavelength_um = BGR_WAVELENGTHS_UM[1]
    n_grid = optics.psf_px * optics.oversample
    pupil_samples = optics.pixel_um * optics.psf_px / (wavelength_um * optics.f_number)
    phase_um, inside = _surface(coeffs_um, n_grid, pupil_samples)
    return _steepness(phase_um, inside, wavelength_um)


def lens_psfs(coeffs_um: Sequence[float], optics: Optics = Optics()) -> npt.NDArray[np.float64]:
    """One PSF per colour channel, in BGR order: shape (3, psf_px, psf_px)."""
    return np.stack([psf(coeffs_um, w, optics) for w in BGR_WAVELENGTHS_UM])


def psf_for_width(psfs: npt.NDArray[np.float64], width_px: int) -> npt.NDArray[np.float64]:
    """The PSFs (C×M×M, for ``REFERENCE_WIDTH_PX``) for an image ``width_px`` wide: resampled, each summing to 1."""
    if width_px == REFERENCE_WIDTH_PX:
        return psfs
    scale = width_px / REFERENCE_WIDTH_PX
    side = max(1, round(psfs.shape[1] * scale) | 1)  # odd, so the centre stays a pixel
    out = np.stack([cv2.resize(p, (side, side), interpolation=cv2.INTER_AREA) for p in psfs]).astype(np.float64)
    return np.asarray(out / out.sum(axis=(1, 2), keepdims=True), dtype=np.float64)


def psf_rms_radius(psfs: npt.NDArray[np.float64]) -> float:
    """The blur's width: the RMS distance of the PSFs' energy from their centroids, in pixels, averaged
    over channels (C×M×M; for a uniform disc of radius R it is R/√2)."""
    if psfs.ndim != 3 or psfs.shape[1] != psfs.shape[2]:
        raise ValueError(f"PSFs must be C×M×M, got {psfs.shape}")
    y, x = np.mgrid[: psfs.shape[1], : psfs.shape[2]].astype(np.float64)
    radii = []
    for p in psfs:
        w = p / p.sum()
        cy, cx = float((w * y).sum()), float((w * x).sum())
        radii.append(float(np.sqrt((w * ((y - cy) ** 2 + (x - cx) ** 2)).sum())))
    return float(np.mean(radii))


def srgb_to_linear(x: npt.NDArray[np.floating] | npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """sRGB code values (uint8, or floats in 0…1) to linear light in 0…1."""
    v = np.asarray(x, dtype=np.float64)
    if np.asarray(x).dtype == np.uint8:
        v = v / 255.0
    out = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return np.asarray(out, dtype=np.float32)


def _srgb_encode(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The sRGB transfer curve on linear light in 0…1 (values in 0…1, not yet rounded to code values)."""
    return np.asarray(np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055), dtype=np.float64)


def linear_to_srgb(y: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """The camera response S: linear light (clipped to 0…1) to 8-bit sRGB."""
    v = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
    return np.asarray(np.round(_srgb_encode(v) * 255.0), dtype=np.uint8)


def form_image(
    image_bgr: npt.NDArray[np.uint8],
    psfs: npt.NDArray[np.float64],
    *,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> npt.NDArray[np.uint8]:
    """Y = S(H * X) + N at full resolution (FFT convolution, edges reflected).

    Args:
        image_bgr: H×W×3 uint8 scene (as a sharp camera would record it).
        psfs: per-channel PSFs for ``REFERENCE_WIDTH_PX`` (resampled to this width here).
        noise_std: Gaussian noise in 8-bit code values (0: none).
        rng: noise source (default: seeded 0).
    """
    _check_image(image_bgr)
    h = psf_for_width(psfs, image_bgr.shape[1])
    r = h.shape[1] // 2
    linear = srgb_to_linear(image_bgr)
    padded = np.pad(linear, ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.stack([sps.fftconvolve(padded[:, :, c], h[c], mode="valid") for c in range(3)], axis=2)
    y = linear_to_srgb(out).astype(np.float64)
    if noise_std > 0:
        y += (rng or np.random.default_rng(0)).normal(0.0, noise_std, y.shape)
    return np.asarray(np.clip(np.round(y), 0, 255), dtype=np.uint8)


def _check_image(image_bgr: npt.NDArray[np.uint8]) -> None:
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"image must be H×W×3 uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}")


class Lensing(Protocol):
    """What a privacy preset does to a frame: BGR uint8 in, BGR uint8 of the same size out."""

    name: str

    def apply(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]: ...

    def apply_field(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

    def psf_bgr(self, width_px: int) -> npt.NDArray[np.float64]: ...


_LINEAR_LUT = srgb_to_linear(np.arange(256, dtype=np.uint8))
_LINEAR_LUT16 = np.asarray(np.round(_LINEAR_LUT * 65535), dtype=np.uint16)
_S_STEPS = 4096
_S_STEP_VALUES = np.arange(_S_STEPS, dtype=np.float64) / (_S_STEPS - 1)
_S_LUT = linear_to_srgb(_S_STEP_VALUES)
# S before its rounding to 8 bits: the live path rounds once, after the noise, at the sensor's resolution.
_S_CODES = np.asarray(255.0 * _srgb_encode(_S_STEP_VALUES), dtype=np.float32)


class _SensorNoise:
    """Gaussian noise for every sensor pixel of a frame, cheap enough for the live path.

    Drawing 0.9 M fresh normals a frame costs 4–9 ms here, more than the whole lens may. So a few frames
    of noise are drawn once per frame size, and each frame takes one of them, at a random offset: every
    pixel's noise is N(0, σ²) and the choice is independent from frame to frame, so a region's mean
    carries noise of σ²/pixels, white in time, as from a real sensor.
    """

    _FRAMES = 4
    _PAD = 48

    def __init__(self, std: float, rng: np.random.Generator) -> None:
        self._std = np.float32(std)
        self._rng = rng
        self._pool: npt.NDArray[np.float32] | None = None

    def sample(self, height: int, width: int) -> npt.NDArray[np.float32]:
        """An H×W×3 view of noise (read only: it is shared with later frames)."""
        pool = self._pool
        if pool is None or pool.shape[1] != height + self._PAD or pool.shape[2] != width + self._PAD:
            shape = (self._FRAMES, height + self._PAD, width + self._PAD, 3)
            pool = self._std * self._rng.standard_normal(shape, dtype=np.float32)
            pool.flags.writeable = False
            self._pool = pool
        k = int(self._rng.integers(self._FRAMES))
        dy, dx = (int(v) for v in self._rng.integers(self._PAD + 1, size=2))
        return pool[k, dy : dy + height, dx : dx + width]


class Lens:
    """The live lens: Y = S(H * X) + N per channel, the blur at a reduced working resolution.

    The scene is decoded to linear light, area-averaged down by ``work_scale`` (a pixel's light is
    summed, as the sensor does), convolved with the PSF resampled to that scale, encoded by S and
    brought back to the frame's size (bilinear: the blurred image holds nothing finer). The noise and
    the rounding to 8 bits are the sensor's, so they are added at the frame's full resolution: noise
    drawn at the working resolution and enlarged would move in 4×4 blocks, and a region's mean would
    carry 16 times the noise power of the model (:func:`form_image`) and of a real sensor. The PSF of a
    frame ``w`` pixels wide is cached.

    Args:
        name: the preset's name.
        psfs: (3, M, M) PSFs in BGR order for ``REFERENCE_WIDTH_PX``.
        work_scale: frame pixels per working pixel (1: full resolution).
        noise_std: Gaussian noise in 8-bit code values.
        seed: the noise generator's seed (a replay gives the same frames).
    """

    def __init__(
        self, name: str, psfs: npt.NDArray[np.float64], *, work_scale: int = 4, noise_std: float = 1.0, seed: int = 0
    ) -> None:
        if psfs.ndim != 3 or psfs.shape[0] != 3 or psfs.shape[1] != psfs.shape[2]:
            raise ValueError(f"psfs must be 3×M×M, got {psfs.shape}")
        if work_scale < 1:
            raise ValueError(f"work_scale must be ≥ 1, got {work_scale}")
        self.name = name
        self.psfs = psfs
        self.work_scale = work_scale
        self.noise_std = noise_std
        self._noise = _SensorNoise(noise_std, np.random.default_rng(seed)) if noise_std > 0 else None
        self._kernels: dict[int, list[npt.NDArray[np.float32]]] = {}

    def psf_bgr(self, width_px: int) -> npt.NDArray[np.float64]:
        """The PSFs at full resolution for a frame ``width_px`` wide (what the attacker knows)."""
        return psf_for_width(self.psfs, width_px)

    def _work_kernels(self, width_px: int) -> list[npt.NDArray[np.float32]]:
        kernels = self._kernels.get(width_px)
        if kernels is None:
            h = psf_for_width(self.psfs, max(1, width_px // self.work_scale))
            kernels = [np.asarray(k, dtype=np.float32) for k in h]
            self._kernels[width_px] = kernels
        return kernels

    def apply(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The lensed frame (same size, uint8 BGR).

        Raises:
            ValueError: the image is not H×W×3 uint8.
        """
        _check_image(image_bgr)
        height, width = image_bgr.shape[:2]
        linear = cv2.LUT(image_bgr, _LINEAR_LUT16)  # 16 bits: a quarter of float32's memory traffic
        s = self.work_scale
        if s > 1:
            linear = cv2.resize(linear, (max(1, width // s), max(1, height // s)), interpolation=cv2.INTER_AREA)
        channels = cv2.split(linear.astype(np.float32) * np.float32(1 / 65535))
        blurred = [
            cv2.filter2D(ch, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
            for ch, k in zip(channels, self._work_kernels(width), strict=True)
        ]
        y = cv2.merge(blurred)
        codes = _S_CODES[np.clip(y * (_S_STEPS - 1) + 0.5, 0, _S_STEPS - 1).astype(np.intp)]
        if s > 1:
            codes = cv2.resize(codes, (width, height), interpolation=cv2.INTER_LINEAR)
        if self._noise is None:
            return np.asarray(cv2.convertScaleAbs(codes), dtype=np.uint8)  # rounds; codes are ≥ 0
        # codes + noise, rounded and saturated to 0…255 in one pass
        noisy = cv2.addWeighted(codes, 1.0, self._noise.sample(height, width), 1.0, 0.0, dtype=cv2.CV_8U)
        return np.asarray(noisy, dtype=np.uint8)

    def apply_field(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """A measured field (H×W float, e.g. a thermal frame in °C) through the green channel's PSF, no noise."""
        field = np.asarray(values, dtype=np.float32)
        if field.ndim != 2:
            raise ValueError(f"field must be H×W, got {field.shape}")
        kernel = np.asarray(psf_for_width(self.psfs, field.shape[1])[1], dtype=np.float32)
        return np.asarray(cv2.filter2D(field, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT), dtype=np.float32)


class LowResSensor:
    """The paper's other baseline: a ``side``×``side`` sensor (area-averaged), shown at the frame's size."""

    def __init__(self, side: int = 16, name: str = "lowres16") -> None:
        if side < 1:
            raise ValueError(f"side must be ≥ 1, got {side}")
        self.name = name
        self.side = side

    def psf_bgr(self, width_px: int) -> npt.NDArray[np.float64]:
        """A box one sensor pixel wide (odd), per channel: the blur the attacker would invert."""
        w = max(1, round(width_px / self.side)) | 1
        return np.full((3, w, w), 1.0 / (w * w))

    def apply(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The frame seen through ``side``×``side`` pixels (area average in linear light), upsampled nearest."""
        _check_image(image_bgr)
        height, width = image_bgr.shape[:2]
        linear = cv2.LUT(image_bgr, _LINEAR_LUT16)
        small = cv2.resize(linear, (self.side, self.side), interpolation=cv2.INTER_AREA).astype(np.float32) / 65535
        codes = _S_LUT[np.clip(small * (_S_STEPS - 1) + 0.5, 0, _S_STEPS - 1).astype(np.intp)]
        return np.asarray(cv2.resize(codes, (width, height), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)

    def apply_field(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """A measured field (H×W float) area-averaged to ``side``×``side`` and shown at its size."""
        field = np.asarray(values, dtype=np.float32)
        if field.ndim != 2:
            raise ValueError(f"field must be H×W, got {field.shape}")
        small = cv2.resize(field, (self.side, self.side), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.resize(small, field.shape[::-1], interpolation=cv2.INTER_NEAREST), dtype=np.float32)
