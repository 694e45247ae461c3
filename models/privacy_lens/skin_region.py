"""Fit where the face lies around the skin region on lensed video; writes ``skin_region.json`` here.

Run: ``PYTHONPATH=. python -m models.privacy_lens.skin_region ../shared/data/ubfc/subject{3,4,5,9,10,12,13}``
(about a minute). On lensed frames the heart-rate path finds the face by skin colour
(:class:`fusion.skinregion.SkinRegionDetector`); the region found is a core of the face, narrower by an
amount set by the blur. Here, on frames every ``EVERY_S`` seconds of each clip's first ``MAX_S``, the face
box Haar finds on the raw frame is compared with the region found on the same frame through each preset
(sensor noise on, fixed seed): how far the face reaches past the region's sides and where its top lies, in
PSF rms radii. No heart rate is used. Each clip gives its medians; the detector uses the median over clips
(:func:`edge.privacy.fit_face_geometry`), and ``vitaledge eval privacy --held-out-skin-region`` scores each
clip with the fit of the other clips only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.build import build_face_detector
from edge.config import HeartRateConfig
from edge.evaluation.privacy import find_clips
from edge.privacy import PRESETS, blur_radius_share, build_lensing, fit_face_geometry
from fusion.face import Box
from fusion.privacy import Lensing
from fusion.skinregion import SkinRegionDetector

EVERY_S = 2.0
MAX_S = 60.0
SEED = 11
OUT = Path(__file__).with_name("skin_region.json")


def face_offsets(face: Box, region: Box, radius_px: float) -> tuple[float, float]:
    """(margin, top) of ``face`` around ``region`` in units of ``radius_px``: how far the face reaches past
    each side of the region (half the width difference), and how far its top lies below the region's."""
    return (face.w - region.w) / 2.0 / radius_px, (face.y - region.y) / radius_px


def measure_clip(video: Path, lensing: Lensing) -> list[tuple[float, float]]:
    """The (margin, top) of every sampled frame of ``video`` where Haar and the skin region both find one."""
    haar = build_face_detector(HeartRateConfig())
    skin = SkinRegionDetector()
    radius_share = blur_radius_share(lensing)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"{video}: cannot open the video")
    rows: list[tuple[float, float]] = []
    try:
        t = EVERY_S / 2
        while t < MAX_S:
            cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000.0)
            ok, frame = cap.read()
            t += EVERY_S
            if not ok:
                break
            image = np.asarray(frame, dtype=np.uint8)
            faces = haar.detect(image)
            region = skin.region(lensing.apply(image))
            if faces and region is not None:
                face = max(faces, key=lambda b: b.w * b.h)
                rows.append(face_offsets(face, region, radius_share * image.shape[1]))
    finally:
        cap.release()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path, help="UBFC clip folders (vid.avi or vid.mp4)")
    args = parser.parse_args(argv)
    # found as eval privacy finds them, so that its --held-out-skin-region leaves out the same names
    clips = find_clips(args.clips)
    out: dict[str, Any] = {
        "note": "written by models/privacy_lens/skin_region.py; margins and tops in PSF rms radii",
        "every_s": EVERY_S,
        "max_s": MAX_S,
        "seed": SEED,
        "presets": {},
    }
    for preset in PRESETS:
        lensing = build_lensing(preset, seed=SEED)
        if lensing is None:
            continue
        per_clip: dict[str, dict[str, float]] = {}
        for clip in clips:
            # a fresh lens a clip: each clip's noise is the same whatever clips came before it
            fresh = build_lensing(preset, seed=SEED)
            assert fresh is not None
            rows = measure_clip(clip.video, fresh)
            if not rows:
                print(f"{preset} {clip.name}: no frame with both a face and a region", file=sys.stderr)
                continue
            margins, tops = np.array(rows).T
            per_clip[clip.name] = {
                "frames": len(rows),
                "margin_radii": round(float(np.median(margins)), 4),
                "top_radii": round(float(np.median(tops)), 4),
            }
            print(f"{preset} {clip.name}: {per_clip[clip.name]}", file=sys.stderr)
        margin, top = fit_face_geometry(per_clip)
        out["presets"][preset] = {
            "margin_radii": round(margin, 4),
            "top_radii": round(top, 4),
            "radius_share": round(blur_radius_share(lensing), 5),
            "per_clip": per_clip,
        }
    OUT.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: {"margin_radii": v["margin_radii"], "top_radii": v["top_radii"]}
                      for k, v in out["presets"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
