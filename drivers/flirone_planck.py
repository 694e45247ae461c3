"""FLIR raw sensor signal <-> °C by the Planck calibration (FLIR ONE over USB and radiometric JPEGs).

FLIR calibrates each unit so that a blackbody at ``T`` kelvin gives the raw signal

    S(T) = R1 / (R2 * (exp(B / T) - F)) - O

What the sensor sees is the object's emission plus the surroundings reflected by the object:

    S_meas = e * S(T_obj) + (1 - e) * S(T_refl)

with ``e`` the emissivity and ``T_refl`` the reflected (apparent) temperature. The atmospheric terms
of FLIR's full model (transmission over the object distance, atmosphere emission) are omitted: at the
< 1 m of this application they are a few tenths of a degree, which the wristband offset correction
absorbs with the rest of the camera's offset. Solving for the object:

    S_obj = (S_meas - (1 - e) * S(T_refl)) / e
    T_obj = B / ln(R1 / (R2 * (S_obj + O)) + F)

The FLIR ONE sends 14-bit counts over USB; multiplied by 4 they are on the 16-bit scale of the
radiometric JPEG's raw image, which is the scale the Planck constants are given for.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fusion.samples import PlanckConstants

__all__ = ["FLIRONE_COUNTS_SCALE", "KELVIN_OFFSET", "celsius_to_raw", "raw_to_celsius"]

KELVIN_OFFSET = 273.15
FLIRONE_COUNTS_SCALE = 4.0  # USB 14-bit counts -> 16-bit raw signal


def _signal(kelvin: npt.NDArray[np.float64] | float, p: PlanckConstants) -> npt.NDArray[np.float64]:
    with np.errstate(all="ignore"):
        return np.asarray(p.r1 / (p.r2 * (np.exp(p.b / np.asarray(kelvin, np.float64)) - p.f)) - p.o)


def raw_to_celsius(
    raw: npt.NDArray[np.integer] | npt.NDArray[np.floating], p: PlanckConstants, *, scale: float = 1.0
) -> npt.NDArray[np.float32]:
    """Object temperature in °C for each raw value.

    Args:
        raw: raw signal (JPEG raw image) or sensor counts (FLIR ONE USB, with ``scale=4``).
        p: the unit's Planck constants, emissivity and reflected temperature.
        scale: factor applied to ``raw`` first.

    Returns:
        float32 array of the same shape; NaN where the signal is outside the calibration's domain.
    """
    s_meas = np.asarray(raw, np.float64) * scale
    s_refl = _signal(p.reflected_c + KELVIN_OFFSET, p)
    with np.errstate(all="ignore"):
        s_obj = (s_meas - (1.0 - p.emissivity) * s_refl) / p.emissivity
        kelvin = p.b / np.log(p.r1 / (p.r2 * (s_obj + p.o)) + p.f)
    celsius = np.where(np.isfinite(kelvin) & (kelvin > 0), kelvin - KELVIN_OFFSET, np.nan)
    return np.asarray(celsius, np.float32)


def celsius_to_raw(
    celsius: npt.NDArray[np.floating] | float, p: PlanckConstants, *, scale: float = 1.0
) -> npt.NDArray[np.float64]:
    """The raw value an object at ``celsius`` gives (the inverse of ``raw_to_celsius``).

    Args:
        celsius: object temperature(s) in °C.
        p: the unit's Planck constants, emissivity and reflected temperature.
        scale: the same factor as given to ``raw_to_celsius`` (the result is divided by it).

    Returns:
        float64 raw values (not rounded).
    """
    s_obj = _signal(np.asarray(celsius, np.float64) + KELVIN_OFFSET, p)
    s_refl = _signal(p.reflected_c + KELVIN_OFFSET, p)
    return np.asarray((p.emissivity * s_obj + (1.0 - p.emissivity) * s_refl) / scale)
