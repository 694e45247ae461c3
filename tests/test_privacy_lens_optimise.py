"""The lens optimiser's privacy proxy (models/privacy_lens/optimise.py) and its committed result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion.privacy import BGR_WAVELENGTHS_UM, psf
from models.privacy_lens import optimise

LENS_JSON = Path(optimise.__file__).with_name("lens.json")


def _green(coeffs: list[float]) -> np.ndarray:
    return psf(coeffs, BGR_WAVELENGTHS_UM[1], optimise.OPTICS)[None]


def _wedge_gains(psfs: np.ndarray) -> list[float]:
    otf = np.abs(np.fft.fft2(psfs[0], s=(optimise._OTF_SIDE,) * 2)) ** 2
    gain = otf / (otf + optimise.ATTACK_K)
    return [float(gain[mask] @ weight) for mask, weight in optimise._WEDGES]


def test_worst_orientation_sees_what_an_astigmatic_surface_leaves_sharp() -> None:
    """The earlier optimum, mostly astigmatism, against defocus of the same RMS wavefront (5.73 µm): averaged
    over orientations the two leave about as much to a Wiener attacker, but the astigmatic PSF leaves one
    direction far sharper, and the worst wedge, which the proxy takes, shows it."""
    astigmatic = _green([0, 0, 0, 0.93, 3.99, -3.99, 0, 0, 0, 0, -0.05, -0.27])
    disc = _green([0, 0, 0, 5.73])
    assert abs(np.mean(_wedge_gains(astigmatic)) - np.mean(_wedge_gains(disc))) < 0.05
    assert optimise.recoverable(astigmatic) > optimise.recoverable(disc) + 0.1
    assert optimise.recoverable(astigmatic) == max(_wedge_gains(astigmatic))
    assert optimise.purity(disc) > 0.6  # most of a face's core light is still its own


def test_no_blur_gives_everything_back_and_more_blur_less() -> None:
    sharp = optimise.recoverable(_green([0.0]))
    assert sharp > 0.99
    assert optimise.recoverable(_green([0, 0, 0, 7.0])) < optimise.recoverable(_green([0, 0, 0, 3.0])) < sharp


def test_rate_bound_is_the_one_sided_clopper_pearson_bound() -> None:
    assert optimise.rate_bound(0, 30) == pytest.approx(1 - 0.05 ** (1 / 30))  # closed form at zero seen
    assert optimise.rate_bound(0, 30) < optimise.TARGET_FOUND_RATE < optimise.rate_bound(0, 12)
    bounds = [optimise.rate_bound(k, 105) for k in range(8)]
    assert bounds == sorted(bounds) and bounds[5] < 0.10 < bounds[6]
    assert optimise.rate_bound(12, 12) == 1.0


def test_a_round_passes_only_when_both_rates_are_bounded_under_their_targets() -> None:
    # of 105 frames: 5 found bounds the found rate under 10 %, 1 re-identified bounds re-identification under 5 %
    assert optimise.passes(5, 1, 105)
    assert not optimise.passes(6, 1, 105)
    assert not optimise.passes(5, 2, 105)
    assert not optimise.passes(0, 1, 90)  # one in 90 does not bound it under 5 %
    assert optimise.shortfall(5, 1, 105) <= 1.0 < optimise.shortfall(0, 2, 105)


def _round(found: dict[str, int], reid: dict[str, int]) -> dict[str, object]:
    return {"faces_found_by_clip": found, "faces_found_noise_free_by_clip": found,
            "reidentified_by_clip": reid, "reidentified_noise_free_by_clip": {c: 0 for c in reid}}


def test_leave_one_out_stops_each_fold_at_the_first_round_its_other_clips_pass() -> None:
    clips = {"a": 40, "b": 40, "c": 40}
    record = {
        "development_frames_by_clip": clips,
        "rounds": [
            _round({"a": 0, "b": 9, "c": 0}, {"a": 0, "b": 0, "c": 0}),  # b's finds fail every fold holding b
            _round({"a": 0, "b": 1, "c": 0}, {"a": 2, "b": 0, "c": 0}),  # a's re-identifications fail its folds
            _round({"a": 0, "b": 0, "c": 0}, {"a": 0, "b": 0, "c": 0}),
        ],
    }
    assert optimise.leave_one_out_rounds(record) == {"a": 1, "b": 0, "c": 2}
    record["rounds"] = record["rounds"][:2]
    assert optimise.leave_one_out_rounds(record)["c"] is None


def test_committed_lens_is_the_first_round_that_passed_and_is_what_its_record_says() -> None:
    record = json.loads(LENS_JSON.read_text(encoding="utf-8"))
    frames = record["development_frames"]
    assert sum(record["development_frames_by_clip"].values()) == frames
    for r in record["rounds"]:
        found = max(sum(r["faces_found_by_clip"].values()), sum(r["faces_found_noise_free_by_clip"].values()))
        reid = max(sum(r["reidentified_by_clip"].values()), sum(r["reidentified_noise_free_by_clip"].values()))
        assert r["passes"] == optimise.passes(found, reid, frames)
    first_pass = next(r for r in record["rounds"] if r["passes"])
    assert record["meets_target"] is True
    assert first_pass["coefficients_um"] == record["coefficients_um"]
    coeffs = record["coefficients_um"]
    np.testing.assert_allclose(np.sqrt(np.sum(np.square(coeffs[3:]))), record["defocus_um"], atol=1e-3)
    assert record["optics"]["psf_px"] == optimise.OPTICS.psf_px
    # every UBFC clip is development: the README's table is scored leave-one-out from the rounds' per-clip counts
    assert len(record["development_clips"]) == 7
