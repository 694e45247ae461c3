"""Optimise the ``lens`` preset's Zernike surface; writes ``lens.json`` beside this file.

Run: ``PYTHONPATH=. python -m models.privacy_lens.optimise ../shared/data/ubfc/subject{3,4,5,9,10,12,13}
--keep-going`` (about 45 min on two cores; every UBFC clip is a development clip; each round records its
finds and re-identifications per clip, and the README's table scores each clip at the round the other six
would have stopped at: :func:`leave_one_out_rounds`).

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

loss = (1 − purity) + W_PRIVACY · max(0, worst − R_MAX): as little blur as the proxy's privacy needs,
minimised over α_4…α_15 (piston and tilts do nothing to privacy) by Powell's method from a few starts
(scipy.optimize). That gives the surface's shape. Then the real check, by the judges of ``vitaledge eval
privacy`` on development frames, with the sensor's noise and, as a margin, without it: the attacker's
restorations (Wiener sweep and Richardson–Lucy with the known PSF, at both resolutions); a face counts as
found when Haar or dlib's CNN finds it on the lensed frame or any restoration, and as re-identified when
dlib's embedding of any of them matches the person's other raw frames at 1 % false matches
(:class:`edge.evaluation.privacy_attack.Gallery`). A round passes when the one-sided 95 % upper bounds
(Clopper–Pearson) of both rates, each the worse of with and without noise, are under the issue's targets,
10 % found and 5 % re-identified: a point rate is not enough (a surface that passed "none of 12 found"
was found on 22 % of held-out frames). While a round fails the same shape is scaled up ``GROW`` times (more
of the same blur); a new search at a raised RMS floor went into coma surfaces that the proxy scores private
and Haar does not. ``--keep-going`` checks the rounds past the first pass too, so that a leave-one-out
reader can stop each fold at its own round. SSIM to the original is recorded: on UBFC's plain walls no blur
moves the whole frame's far from 0.85 (a 16×16 sensor gives 0.77), so it is no target here; over the
face's box alone, where privacy is decided, the lens's is about 0.5 (``vitaledge eval privacy``'s
``ssim_face``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import optimize

from fusion.face import Box
from fusion.privacy import BGR_WAVELENGTHS_UM, Lens, Optics, lens_psfs, psf, surface_steepness

if TYPE_CHECKING:  # the attack module loads skimage and OpenCV: only a run imports it
    from edge.evaluation.privacy_attack import Gallery, Judges

BAND_CYCLES_PER_PX = (0.008, 0.125)
ORIENTATIONS = 12
ATTACK_K = 1e-3
R_MAX = 0.40
GROW = 1.04
MAX_ROUNDS = 7
# The ceilings after the attacker's best; a round passes when the one-sided 95 % upper bound
# (Clopper–Pearson) of each rate on the development frames is under its ceiling.
TARGET_FOUND_RATE = 0.10
TARGET_REID_RATE = 0.05
W_PRIVACY = 20.0
FIRST_J, LAST_J = 4, 15
BOUND_UM = 9.0
# Phase step per pupil sample (in π) allowed: below 1 with a margin, so the PSF stays inside its grid.
MAX_STEEPNESS = 0.85
# 201 px lets pure defocus reach about 9.3 µm under MAX_STEEPNESS (161 px stopped it at 7.44 µm, where the
# blur disc's radius is about 69 px).
OPTICS = Optics(psf_px=201)
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


def loss_parts(x: npt.NDArray[np.float64], *, fast: bool = False) -> dict[str, float]:
    """The loss and its parts; ``fast``: the green PSF alone (the search's inner loop)."""
    coeffs = coefficients(x)
    steep = surface_steepness(coeffs, OPTICS)
    if steep > MAX_STEEPNESS:  # the PSF would not fit its grid: steer back, smoothly
        return {"recoverable": 1.0, "purity": 0.0, "loss": 10.0 + 10.0 * (steep - MAX_STEEPNESS)}
    psfs = psf(coeffs, BGR_WAVELENGTHS_UM[1], OPTICS)[None] if fast else lens_psfs(coeffs, OPTICS)
    parts = {"recoverable": recoverable(psfs), "purity": purity(psfs)}
    parts["loss"] = (1 - parts["purity"]) + W_PRIVACY * max(0.0, parts["recoverable"] - R_MAX)
    return parts


def search(maxfev: int) -> tuple[npt.NDArray[np.float64], int]:
    """The best surface over a few starts, and the evaluations it took."""
    n = LAST_J - FIRST_J + 1
    # Starts: strong defocus; defocus with a little spherical aberration (a different edge).
    starts = [np.zeros(n) for _ in range(2)]
    starts[0][0] = 6.5
    starts[1][[0, 11 - FIRST_J]] = (5.5, 0.5)
    evaluations = 0
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for start in starts:
        def loss(x: npt.NDArray[np.float64]) -> float:
            # Every point is kept: Powell stopped by maxfev returns where its line search was, not its best.
            nonlocal evaluations, best
            evaluations += 1
            value = loss_parts(x, fast=True)["loss"]
            if best is None or value < best[0]:
                best = (value, np.array(x, dtype=np.float64))
            return value

        result = optimize.minimize(
            loss, start, method="Powell", bounds=[(-BOUND_UM, BOUND_UM)] * n,
            options={"maxfev": maxfev, "xtol": 1e-2, "ftol": 1e-4},
        )
        assert best is not None
        print(f"start {np.round(start, 2).tolist()}: {result.nfev} evaluations, best so far "
              f"{best[0]:.4f} at {np.round(best[1], 3).tolist()}", file=sys.stderr, flush=True)
    assert best is not None
    return best[1], evaluations


def rate_bound(count: int, frames: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a rate seen as ``count`` of ``frames``."""
    from scipy import stats

    if count >= frames:
        return 1.0
    return float(stats.beta.ppf(confidence, count + 1, frames - count))


def shortfall(found: int, reidentified: int, frames: int) -> float:
    """How far a round is from passing: the larger of the two rates' upper bounds over its target."""
    return max(rate_bound(found, frames) / TARGET_FOUND_RATE, rate_bound(reidentified, frames) / TARGET_REID_RATE)


def passes(found: int, reidentified: int, frames: int) -> bool:
    """The round's rule: both rates' upper bounds under the issue's targets."""
    return shortfall(found, reidentified, frames) <= 1.0


def worse_count(noisy: dict[str, int], noise_free: dict[str, int], leave_out: str | None = None) -> int:
    """The worse of the with-noise and the noise-free check's counts, summed over clips (but ``leave_out``)."""
    return max(sum(v for clip, v in by_clip.items() if clip != leave_out) for by_clip in (noisy, noise_free))


def leave_one_out_rounds(record: dict[str, Any]) -> dict[str, int | None]:
    """Per development clip, the round (index into ``record["rounds"]``) at which the other clips alone would
    have stopped: the first that passes on their frames; None when none of the checked rounds does."""
    frames_by_clip: dict[str, int] = record["development_frames_by_clip"]
    out: dict[str, int | None] = {}
    for held_out in frames_by_clip:
        frames = sum(n for clip, n in frames_by_clip.items() if clip != held_out)
        out[held_out] = None
        for k, r in enumerate(record["rounds"]):
            found = worse_count(r["faces_found_by_clip"], r["faces_found_noise_free_by_clip"], held_out)
            reid = worse_count(r["reidentified_by_clip"], r["reidentified_noise_free_by_clip"], held_out)
            if passes(found, reid, frames):
                out[held_out] = k
                break
    return out


DevFrame = tuple[str, int, npt.NDArray[np.uint8], Box]  # (clip, index in the clip's sample, frame, true face)


def _dev_frames(judges: Judges, folders: list[Path], per_clip: int) -> list[DevFrame]:
    """Frames of the development clips with their clip's name and face (Haar, else the CNN, on the raw frame:
    as ``vitaledge eval privacy`` finds its truth)."""
    from edge.evaluation.privacy import face_truth, find_clips, sample_frames

    out = []
    for clip in find_clips(folders):
        for i, frame in enumerate(sample_frames(clip.video, per_clip)):
            face = face_truth(judges, frame)
            if face is not None:
                out.append((clip.name, i, frame, face))
    return out


class _AttackChecker:
    def __init__(self, frames: list[DevFrame], gallery: Gallery) -> None:
        from edge.evaluation.privacy_attack import Judges

        self.judges = Judges()
        self.frames = frames
        self.gallery = gallery

    def check(self, psfs: npt.NDArray[np.float64], noise_std: float) -> dict[str, Any]:
        """Per clip, the frames whose face is found, and those re-identified, in the lensed frame or any of the
        attacker's restorations; and the mean SSIM of the lensed frames to the originals, whole and on the face."""
        from edge.evaluation.privacy import ssim_frame_and_face
        from edge.evaluation.privacy_attack import restorations

        lens = Lens("candidate", psfs, work_scale=WORK_SCALE, noise_std=noise_std, seed=7)
        found = {name: 0 for name, _, _, _ in self.frames}
        reidentified = dict(found)
        ssims = []
        for name, i, frame, face in self.frames:
            lensed = lens.apply(frame)
            ssims.append(ssim_frame_and_face(frame, lensed, face))
            hit, probes = False, []
            for _, image, crop_face in restorations(lensed, lens, face):
                hit = hit or self.judges.detects(image, crop_face) is not None
                probes.append(self.judges.embed(image, crop_face))
            found[name] += hit
            reidentified[name] += self.gallery.judge(probes, name, i).reidentified
        whole, on_face = np.mean(ssims, axis=0)
        return {"found": found, "reidentified": reidentified, "ssim": float(whole), "ssim_face": float(on_face)}


# One attack checker per worker process: its judges are loaded once, the frames and the gallery handed over once.
_checker: _AttackChecker | None = None


def _start_worker(frames: list[DevFrame], gallery: Gallery) -> None:
    global _checker
    _checker = _AttackChecker(frames, gallery)


def _check(psfs: npt.NDArray[np.float64], noise_std: float) -> dict[str, Any]:
    assert _checker is not None
    return _checker.check(psfs, noise_std)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", nargs="+", type=Path, help="development clips (scored leave-one-out by clip)")
    parser.add_argument("--frames", type=int, default=15, help="frames per clip for the attack check")
    parser.add_argument("--maxfev", type=int, default=80, help="loss evaluations per start")
    parser.add_argument("--rounds", type=int, default=MAX_ROUNDS, help="rounds of the ladder at most")
    parser.add_argument("--keep-going", action="store_true",
                        help="check every round, past the first that passes (for leave-one-out readers)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("lens.json"))
    args = parser.parse_args(argv)
    from edge.evaluation.privacy_attack import Gallery, Judges

    judges = Judges()
    frames = _dev_frames(judges, args.dev, args.frames)
    # one gallery for both checks: the same threshold, embedded once
    gallery = Gallery([(name, i, judges.embed(frame, face)) for name, i, frame, face in frames])
    t0 = time.perf_counter()
    x, evaluations = search(args.maxfev)
    rounds: list[dict[str, Any]] = []
    chosen: tuple[float, npt.NDArray[np.float64], float] | None = None  # (shortfall, x, SSIM)
    # the with-noise and the noise-free check side by side, one process each
    with ProcessPoolExecutor(2, initializer=_start_worker, initargs=(frames, gallery)) as pool:
        for k in range(args.rounds):
            coeffs = coefficients(x)
            if surface_steepness(coeffs, OPTICS) > MAX_STEEPNESS:
                print(f"round {k + 1}: the surface no longer fits the PSF grid; stopping", file=sys.stderr)
                break
            psfs = lens_psfs(coeffs, OPTICS)
            noisy, clean = pool.map(_check, [psfs, psfs], [NOISE_STD, 0.0])
            found = worse_count(noisy["found"], clean["found"])
            reid = worse_count(noisy["reidentified"], clean["reidentified"])
            ok = passes(found, reid, len(frames))
            rounds.append({
                "defocus_um": round(_rms(coeffs), 4), "coefficients_um": [round(c, 4) for c in coeffs],
                "found_rate_upper_95": round(rate_bound(found, len(frames)), 4),
                "reid_rate_upper_95": round(rate_bound(reid, len(frames)), 4),
                "passes": ok, "ssim": round(noisy["ssim"], 4), "ssim_face": round(noisy["ssim_face"], 4),
                # per clip, so that a leave-one-out reader can tell at which round the other clips would stop
                "faces_found_by_clip": noisy["found"], "faces_found_noise_free_by_clip": clean["found"],
                "reidentified_by_clip": noisy["reidentified"],
                "reidentified_noise_free_by_clip": clean["reidentified"],
            })
            print(f"round {k + 1}, RMS {_rms(coeffs):.3f} µm: after the attacks {found} of {len(frames)} faces found, "
                  f"{reid} re-identified (worse of with and without noise), passes: {ok}, "
                  f"SSIM {noisy['ssim']:.3f}", file=sys.stderr, flush=True)
            miss = shortfall(found, reid, len(frames))
            if chosen is None or (miss < chosen[0] and chosen[0] > 1.0):  # the first pass, else the nearest miss
                chosen = (miss, x, noisy["ssim"])
            if ok and not args.keep_going:
                break
            x = x * GROW
    assert chosen is not None
    miss, x, ssim = chosen
    n = LAST_J - FIRST_J + 1
    coeffs = coefficients(x)
    rms = _rms(coeffs)
    record = {
        "note": "written by models/privacy_lens/optimise.py; alpha in µm of optical path, Noll order from j=1",
        "coefficients_um": [round(c, 4) for c in coeffs],
        "defocus_um": round(rms, 4),
        "work_scale": WORK_SCALE,
        "noise_std": NOISE_STD,
        "optics": {"f_number": OPTICS.f_number, "pixel_um": OPTICS.pixel_um, "psf_px": OPTICS.psf_px},
        "proxies": {k: round(v, 4) for k, v in loss_parts(x).items()},
        "defocus_proxies": {k: round(v, 4) for k, v in loss_parts(np.array([rms] + [0.0] * (n - 1))).items()},
        "development_ssim": round(ssim, 4),
        "meets_target": miss <= 1.0,
        "rounds": rounds,
        "development_clips": [str(p.name) for p in args.dev],
        "development_frames": len(frames),
        "development_frames_by_clip": dict(Counter(clip for clip, _, _, _ in frames)),
        "evaluations": evaluations,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
