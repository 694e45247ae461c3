"""Optimise the ``lens`` preset's Zernike surface; writes ``lens.json`` beside this file.

Run: ``PYTHONPATH=. python -m models.privacy_lens.optimise ../shared/data/ubfc/subject{3,4,5,9,10,12,13}``
(every UBFC clip is a development clip; each round records its finds per clip, and the README's table
scores each clip at the round the other six would have stopped at: leave-one-out).

The issue's aims through a cheap proxy of the PSF in the search, and a real attack on development frames
around it:

- *faces not detectable, not re-identifiable after deconvolution*: what a Wiener attacker who knows the
  PSF can bring back, |H|² / (|H|² + K) with K = ``ATTACK_K`` (a gain that small is below the sensor's
  noise and 8-bit steps), averaged over the band of face frequencies (``BAND_CYCLES_PER_PX``:
  0.008–0.125 cycles/px at 640 px, 1.3–20 cycles across a UBFC face, from the coarse pattern a detector
  looks for to the detail an embedding uses; the live path keeps nothing above 0.125) with every octave
  weighted alike (weight 1/f²: a plain mean over the band's area is all fine detail, while a detector
  needs the coarse pattern), within each of ``ORIENTATIONS`` orientation wedges, and taken in the
  **worst** wedge: a PSF that leaves one direction sharp (an astigmatic line) gives the face back along
  it, whatever its average;
- *the pulse kept*: the share of the light in a face-sized region's core (what the skin tracker crops)
  that comes from the face, not from the background (the skin's pulse is diluted by the rest).

loss = (1 − purity) + W_PRIVACY · (max(0, worst − R_MAX) + max(0, RMS_floor − RMS)): as little blur as
privacy needs, minimised over α_4…α_15 (piston and tilts do nothing to privacy) by Powell's method from
a few starts (scipy.optimize). Then the real check: the attacker of ``vitaledge eval privacy`` (Wiener
sweep and Richardson–Lucy with the known PSF, at both resolutions) against OpenCV's Haar detector on
development frames, with the sensor's noise and, as a margin, without it. A round passes when the
one-sided 95 % upper bound (Clopper–Pearson) of its found rate, the worse of the two, is under the issue's
10 %: "none of 12 found", the earlier rule, bounds it only under 22 %, and a surface that passed it was
found on 22 % of held-out frames. While a round fails the
search runs again with the wavefront's RMS held ``GROW`` times above the failed surface's (the proxy
alone is not monotonic in the blur: a disc's MTF sidelobes come and go with its radius, and tightening
R_MAX found surfaces of the same size that failed again). SSIM to the original is recorded: on UBFC's
plain walls no blur moves the whole frame's far from 0.85 (a 16×16 sensor gives 0.77), so it is no target
here; over the face's box alone, where privacy is decided, the lens's is about 0.5 (``vitaledge eval
privacy``'s ``ssim_face``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import optimize

from fusion.face import Box
from fusion.privacy import BGR_WAVELENGTHS_UM, Lens, Optics, lens_psfs, psf, surface_steepness

BAND_CYCLES_PER_PX = (0.008, 0.125)
ORIENTATIONS = 12
ATTACK_K = 1e-3
R_MAX = 0.40
GROW = 1.04
MAX_ROUNDS = 5
# The ceiling on faces found after the attacker's best; a round passes when the one-sided 95 %
# upper bound of its found rate on the development frames (Clopper–Pearson) is under it.
TARGET_FOUND_RATE = 0.10
W_PRIVACY = 20.0
FIRST_J, LAST_J = 4, 15
BOUND_UM = 9.0
# Phase step per pupil sample (in π) allowed: below 1 with a margin, so the PSF stays inside its grid.
MAX_STEEPNESS = 0.85
OPTICS = Optics(psf_px=161)
_OTF_SIDE = 512
WORK_SCALE = 4
NOISE_STD = 0.5


def _band_wedges() -> list[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]]:
    """Per orientation wedge of the band: its mask on the OTF grid and its weights (1/f², summing to 1)."""
    f = np.fft.fftfreq(_OTF_SIDE)
    fx, fy = np.meshgrid(f, f)
    radius = np.hypot(fx, fy)
    angle = np.mod(np.arctan2(fy, fx), np.pi)
    band = (radius >= BAND_CYCLES_PER_PX[0]) & (radius <= BAND_CYCLES_PER_PX[1])
    step = np.pi / ORIENTATIONS
    wedges = []
    for k in range(ORIENTATIONS):
        mask = np.asarray(band & (angle >= k * step) & (angle < (k + 1) * step), dtype=bool)
        weight = 1.0 / radius[mask] ** 2
        wedges.append((mask, weight / weight.sum()))
    return wedges


def _face_masks() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A 120×160 px face ellipse on a 400×400 canvas, and its core (what the tracker crops)."""
    import cv2

    face = np.zeros((400, 400), np.uint8)
    cv2.ellipse(face, (200, 200), (60, 80), 0, 0, 360, 1, -1)
    core = np.zeros_like(face)
    cv2.ellipse(core, (200, 200), (48, 64), 0, 0, 360, 1, -1)
    return face.astype(np.float64), core.astype(bool)


_WEDGES = _band_wedges()
_FACE, _CORE = _face_masks()


def recoverable(psfs: npt.NDArray[np.float64]) -> float:
    """Wiener gain |H|²/(|H|²+K) over the face band (octaves alike) in the worst orientation and colour
    (0: nothing comes back)."""
    worst = 0.0
    for p in psfs:
        otf = np.abs(np.fft.fft2(p, s=(_OTF_SIDE, _OTF_SIDE))) ** 2
        gain = otf / (otf + ATTACK_K)
        worst = max(worst, *(float(gain[mask] @ weight) for mask, weight in _WEDGES))
    return worst


def purity(psfs: npt.NDArray[np.float64]) -> float:
    """Share of the light in the face's core that comes from the face (green channel)."""
    import cv2

    spread = cv2.filter2D(_FACE, cv2.CV_64F, psfs[len(psfs) // 2], borderType=cv2.BORDER_CONSTANT)
    return float(spread[_CORE].mean())


def coefficients(x: npt.NDArray[np.float64]) -> list[float]:
    return [0.0] * (FIRST_J - 1) + [float(v) for v in x]


def _rms(coeffs: list[float]) -> float:
    return float(np.sqrt(np.sum(np.square(coeffs[FIRST_J - 1 :]))))


def loss_parts(x: npt.NDArray[np.float64], rms_floor: float = 0.0, *, fast: bool = False) -> dict[str, float]:
    """The loss and its parts; ``fast``: the green PSF alone (the search's inner loop)."""
    coeffs = coefficients(x)
    steep = surface_steepness(coeffs, OPTICS)
    if steep > MAX_STEEPNESS:  # the PSF would not fit its grid: steer back, smoothly
        return {"recoverable": 1.0, "purity": 0.0, "loss": 10.0 + 10.0 * (steep - MAX_STEEPNESS)}
    psfs = psf(coeffs, BGR_WAVELENGTHS_UM[1], OPTICS)[None] if fast else lens_psfs(coeffs, OPTICS)
    parts = {"recoverable": recoverable(psfs), "purity": purity(psfs)}
    shortfall = max(0.0, parts["recoverable"] - R_MAX) + max(0.0, rms_floor - _rms(coeffs))
    parts["loss"] = (1 - parts["purity"]) + W_PRIVACY * shortfall
    return parts


def search(rms_floor: float, maxfev: int) -> tuple[npt.NDArray[np.float64], int]:
    """The best surface at least ``rms_floor`` µm RMS over a few starts, and the evaluations it took."""
    n = LAST_J - FIRST_J + 1
    # Starts: strong defocus; defocus with a little spherical aberration (a different edge).
    starts = [np.zeros(n) for _ in range(2)]
    starts[0][0] = max(6.5, rms_floor)
    starts[1][[0, 11 - FIRST_J]] = (max(5.5, rms_floor), 0.5)
    evaluations = 0
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for start in starts:
        def loss(x: npt.NDArray[np.float64]) -> float:
            # Every point is kept: Powell stopped by maxfev returns where its line search was, not its best.
            nonlocal evaluations, best
            evaluations += 1
            value = loss_parts(x, rms_floor, fast=True)["loss"]
            if best is None or value < best[0]:
                best = (value, np.array(x, dtype=np.float64))
            return value

        result = optimize.minimize(
            loss, start, method="Powell", bounds=[(-BOUND_UM, BOUND_UM)] * n,
            options={"maxfev": maxfev, "xtol": 1e-2, "ftol": 1e-4},
        )
        assert best is not None
        print(f"RMS ≥ {rms_floor:.3f}, start {np.round(start, 2).tolist()}: {result.nfev} evaluations, best so far "
              f"{best[0]:.4f} at {np.round(best[1], 3).tolist()}", file=sys.stderr, flush=True)
    assert best is not None
    return best[1], evaluations


def found_rate_bound(found: int, frames: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a rate seen as ``found`` of ``frames``."""
    from scipy import stats

    if found >= frames:
        return 1.0
    return float(stats.beta.ppf(confidence, found + 1, frames - found))


def _dev_frames(folders: list[Path], per_clip: int) -> list[tuple[str, npt.NDArray[np.uint8], Box]]:
    """Frames of the development clips with their clip's name and face (Haar on the raw frame)."""
    from edge.evaluation.privacy import find_clips, sample_frames
    from models.face_detectors import HaarFaceDetector

    haar = HaarFaceDetector(max_width=320, min_size_px=24)
    out = []
    for clip in find_clips(folders):
        for frame in sample_frames(clip.video, per_clip):
            found = haar.detect(frame)
            if found:
                out.append((clip.name, frame, found[0]))
    return out


def attack_check(psfs: npt.NDArray[np.float64], frames: list[tuple[str, npt.NDArray[np.uint8], Box]],
                 noise_std: float) -> tuple[dict[str, int], float]:
    """Per clip, the frames whose face Haar finds after any of the attacker's restorations (or on the lensed
    frame); and the mean SSIM of the lensed frames to the originals."""
    from skimage.metrics import structural_similarity

    from edge.evaluation.privacy_attack import iou, restorations
    from models.face_detectors import HaarFaceDetector

    haar = HaarFaceDetector(max_width=320, min_size_px=24)
    lens = Lens("candidate", psfs, work_scale=WORK_SCALE, noise_std=noise_std, seed=7)
    found: dict[str, int] = {name: 0 for name, _, _ in frames}
    ssims = []
    for name, frame, face in frames:
        lensed = lens.apply(frame)
        ssims.append(float(structural_similarity(  # type: ignore[no-untyped-call]  # skimage ships no type hints
            frame, lensed, channel_axis=2, data_range=255)))
        for _, image, crop_face in restorations(lensed, lens, face):
            if any(iou(b, crop_face) >= 0.3 for b in haar.detect(image)):
                found[name] += 1
                break
    return found, float(np.mean(ssims))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", nargs="+", type=Path, help="development clips (scored leave-one-out by clip)")
    parser.add_argument("--frames", type=int, default=15, help="frames per clip for the attack check")
    parser.add_argument("--maxfev", type=int, default=80, help="loss evaluations per start")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("lens.json"))
    args = parser.parse_args(argv)
    frames = _dev_frames(args.dev, args.frames)
    t0 = time.perf_counter()
    evaluations, rms_floor, rounds = 0, 0.0, []
    chosen: tuple[float, npt.NDArray[np.float64], float, float] | None = None  # (bound, x, floor, SSIM)
    for _ in range(MAX_ROUNDS):
        x, n_eval = search(rms_floor, args.maxfev)
        evaluations += n_eval
        psfs = lens_psfs(coefficients(x), OPTICS)
        by_clip_noisy, ssim = attack_check(psfs, frames, NOISE_STD)
        by_clip_clean, _ = attack_check(psfs, frames, 0.0)
        found_noisy, found_clean = sum(by_clip_noisy.values()), sum(by_clip_clean.values())
        bound = found_rate_bound(max(found_noisy, found_clean), len(frames))
        # per clip, so that a leave-one-out reader can tell at which round the other clips would have stopped
        rounds.append({"rms_floor_um": round(rms_floor, 4), "coefficients_um": [round(c, 4) for c in coefficients(x)],
                       "faces_found": found_noisy, "faces_found_noise_free": found_clean,
                       "found_rate_upper_95": round(bound, 4),
                       "faces_found_by_clip": by_clip_noisy, "faces_found_noise_free_by_clip": by_clip_clean})
        print(f"RMS ≥ {rms_floor:.3f}: Haar after the attacks found {found_noisy} (noise-free {found_clean}) of "
              f"{len(frames)} faces (rate ≤ {bound:.3f} at 95 %), SSIM {ssim:.3f}", file=sys.stderr, flush=True)
        if chosen is None or bound < chosen[0]:
            chosen = (bound, x, rms_floor, ssim)
        if bound <= TARGET_FOUND_RATE:
            break
        rms_floor = _rms(coefficients(x)) * GROW
    assert chosen is not None  # no round passed: the best one is kept, and the record says so
    bound, x, rms_floor, ssim = chosen
    n = LAST_J - FIRST_J + 1
    parts = loss_parts(x, rms_floor)
    coeffs = coefficients(x)
    rms = _rms(coeffs)
    record = {
        "note": "written by models/privacy_lens/optimise.py; alpha in µm of optical path, Noll order from j=1",
        "coefficients_um": [round(c, 4) for c in coeffs],
        "defocus_um": round(rms, 4),
        "work_scale": WORK_SCALE,
        "noise_std": NOISE_STD,
        "optics": {"f_number": OPTICS.f_number, "pixel_um": OPTICS.pixel_um, "psf_px": OPTICS.psf_px},
        "proxies": {k: round(v, 4) for k, v in parts.items()},
        "defocus_proxies": {
            k: round(v, 4) for k, v in loss_parts(np.array([rms] + [0.0] * (n - 1))).items()
        },
        "development_ssim": round(ssim, 4),
        "found_rate_upper_95": round(bound, 4),
        "meets_target": bound <= TARGET_FOUND_RATE,
        "rounds": rounds,
        "development_clips": [str(p.name) for p in args.dev],
        "development_frames": len(frames),
        "evaluations": evaluations,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
