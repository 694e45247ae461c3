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
from fusion.privacy import Lens, Lensing, LowResSensor, Optics, lens_psfs

__all__ = ["PRESETS", "LensDesign", "build_lensing", "lens_design"]

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
