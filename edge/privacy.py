"""The privacy presets, built from the configuration: what every outgoing image passes through.

``build_lensing`` turns ``privacy.mode`` into a :class:`fusion.privacy.Lensing` (or None when off). Each
consumer (the overlay, the window, a shareable recording, the heart-rate path on lensed input) builds its
own instance, as they run in different threads and the noise generator is per instance; the PSFs are
computed once per preset and shared.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import numpy as np
import numpy.typing as npt

from fusion.errors import ConfigError
from fusion.privacy import REFERENCE_WIDTH_PX, Lens, Lensing, LowResSensor, Optics, lens_psfs, psf_rms_radius
from fusion.skinregion import SkinRegionDetector

__all__ = [
    "PRESETS",
    "LensDesign",
    "blur_radius_share",
    "build_lensing",
    "fit_face_geometry",
    "lens_design",
    "skin_region_detector",
]

Preset = Literal["off", "defocus", "lowres16", "lens"]
PRESETS: tuple[Preset, ...] = ("off", "defocus", "lowres16", "lens")


@dataclass(frozen=True, slots=True)
class LensDesign:
    """The committed optimised surface (``models/privacy_lens/lens.json``).

    Attributes:
        coefficients_um: α_1… in µm of optical path, Noll order.
        defocus_um: the ``defocus`` preset's Z4 coefficient (the same RMS wavefront as the lens, so the
            comparison is between two surfaces of one aberration budget).
        work_scale: frame pixels per working pixel of the live path.
        noise_std: sensor noise in 8-bit code values.
        optics: the camera the surface was designed for.
    """

    coefficients_um: tuple[float, ...]
    defocus_um: float
    work_scale: int = 4
    noise_std: float = 1.0
    optics: Optics = field(default_factory=Optics)


@functools.cache
def lens_design() -> LensDesign:
    """The committed lens design.

    Raises:
        ConfigError: the file is missing or malformed.
    """
    try:
        text = resources.files("models.privacy_lens").joinpath("lens.json").read_text(encoding="utf-8")
        data = json.loads(text)
        return LensDesign(
            coefficients_um=tuple(float(a) for a in data["coefficients_um"]),
            defocus_um=float(data["defocus_um"]),
            work_scale=int(data.get("work_scale", 4)),
            noise_std=float(data.get("noise_std", 1.0)),
            optics=Optics(**data.get("optics", {})),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"privacy.mode: cannot read models/privacy_lens/lens.json: {exc}") from exc


@functools.cache
def _psfs(preset: Preset) -> npt.NDArray[np.float64]:
    design = lens_design()
    coeffs = design.coefficients_um if preset == "lens" else (0.0, 0.0, 0.0, design.defocus_um)
    psfs = lens_psfs(coeffs, design.optics)
    psfs.flags.writeable = False
    return psfs


def build_lensing(mode: Preset, *, seed: int = 0) -> Lensing | None:
    """A fresh lensing for ``mode`` (None for ``off``); PSFs are shared between calls.

    Args:
        mode: the ``privacy.mode`` preset.
        seed: the noise generator's seed.
    """
    match mode:
        case "off":
            return None
        case "lowres16":
            return LowResSensor(16)
        case "defocus" | "lens":
            design = lens_design()
            return Lens(mode, _psfs(mode), work_scale=design.work_scale, noise_std=design.noise_std, seed=seed)


def fit_face_geometry(
    per_clip: dict[str, dict[str, float]], leave_out: str | None = None
) -> tuple[float, float]:
    """The skin region's face margin and top offset (in PSF rms radii): the median over clips of each
    clip's median, so that a long clip counts as one person; ``leave_out`` is left out (leave-one-out).

    Raises:
        ValueError: no clip left to fit from.
    """
    rows = [v for name, v in per_clip.items() if name != leave_out]
    if not rows:
        raise ValueError("no clip to fit the skin region's face geometry from")
    return (
        float(np.median([r["margin_radii"] for r in rows])),
        float(np.median([r["top_radii"] for r in rows])),
    )


@functools.cache
def _skin_region_fit() -> dict[str, dict[str, dict[str, float]]]:
    try:
        text = resources.files("models.privacy_lens").joinpath("skin_region.json").read_text(encoding="utf-8")
        presets = json.loads(text)["presets"]
        return {name: dict(entry["per_clip"]) for name, entry in presets.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"heart_rate.input lensed: cannot read models/privacy_lens/skin_region.json: {exc}") from exc


def skin_region_detector(lensing: Lensing, *, held_out: str | None = None) -> SkinRegionDetector:
    """The face finder for video through ``lensing``: the skin region, widened by the blur's width.

    Args:
        lensing: the preset the frames pass through.
        held_out: a clip the fit must not have seen (evaluation): the geometry is refitted without it.

    Raises:
        ConfigError: no fitted geometry for the preset.
    """
    fits = _skin_region_fit()
    if lensing.name not in fits:
        raise ConfigError(
            f"no skin-region fit for privacy.mode {lensing.name!r} in models/privacy_lens/skin_region.json"
        )
    margin_radii, top_radii = fit_face_geometry(fits[lensing.name], leave_out=held_out)
    radius = blur_radius_share(lensing)
    return SkinRegionDetector(margin=margin_radii * radius, top=top_radii * radius)


def blur_radius_share(lensing: Lensing) -> float:
    """The PSF's rms radius as a share of the frame's width (the PSF scales with the frame)."""
    return psf_rms_radius(lensing.psf_bgr(REFERENCE_WIDTH_PX)) / REFERENCE_WIDTH_PX
