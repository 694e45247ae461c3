"""``vitaledge eval masks``: how far raters' region masks agree, and the product's own masks as one more rater.

Each ``--rater`` is a folder of binary PNG masks (non-zero = positive; file stem = image name) or one COCO
annotation file (the union of an image's annotations, polygons or RLE; image name = stem of ``file_name``).
Every rater must cover the images of the first. ``--skin DIR`` restricts scoring to its masks' pixels.

``--product --frames DIR`` runs the product's region finder (``fusion.thermal.ThermalMeasurer``: registration,
face detection, regions, a fresh one per image) on each image's frame and scores the mask of ``--region``
(default ``face``: the detector box ∩ the hotter temperature cluster; ``palm``: the hand's skin blob, eroded
one pixel; ``wrist``: the hottest 10 % of the wristband's box, a measurement region rather than an outline).
A frame is ``<name>.npz`` (``celsius`` H×W °C and ``visible`` H×W×3 BGR, as a ``ThermalFrame`` holds them) or
``<name>.jpg`` (a FLIR radiometric JPEG); masks are then on the thermal grid. No region found: empty mask.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from fusion.agreement import (
    AREA_CELLS_PX,
    ImageAgreement,
    RaterScores,
    bootstrap_icc,
    extent_logits,
    icc_2_1,
    image_agreement,
    raters_needed,
    spearman_brown,
)

__all__ = ["MaskError", "add_parser", "evaluate", "format_table", "load_rater", "product_mask", "run", "summarise"]

_Mask = npt.NDArray[np.bool_]
REGIONS = ("face", "palm", "wrist")


class MaskError(ValueError):
    """A mask file or folder cannot be used (missing image, wrong size, unreadable)."""


def _read_png(path: Path) -> _Mask:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise MaskError(f"{path}: not a readable image")
    return np.asarray(img > 0, dtype=np.bool_)


def load_rater(path: Path) -> dict[str, Callable[[], _Mask]]:
    """Image name → loader of that rater's mask, from a PNG folder or a COCO annotation file."""
    if path.is_dir():
        return {p.stem: functools.partial(_read_png, p) for p in sorted(path.glob("*.png"))}
    if path.suffix.lower() != ".json":
        raise MaskError(f"{path}: a rater is a folder of PNG masks or a COCO .json file")
    from pycocotools import mask as coco_mask

    doc = json.loads(path.read_text())
    by_image: dict[int, list[Any]] = {}
    for ann in doc.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann["segmentation"])

    def decode(h: int, w: int, segs: list[Any]) -> _Mask:
        out = np.zeros((h, w), dtype=bool)
        for seg in segs:
            if isinstance(seg, dict) and not isinstance(seg.get("counts"), list):
                rle = {"size": seg["size"], "counts": seg["counts"]}  # compressed RLE: decode as it is
            else:  # polygons → a list of RLEs; uncompressed RLE → one RLE
                rles = coco_mask.frPyObjects(seg, h, w)
                rle = coco_mask.merge(rles) if isinstance(rles, list) else rles
            with warnings.catch_warnings():  # pycocotools 2.0's array wrapper predates numpy 2's copy keyword
                warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
                out |= np.asarray(coco_mask.decode(rle), dtype=bool)
        return out

    return {Path(im["file_name"]).stem: functools.partial(decode, int(im["height"]), int(im["width"]),
                                                          by_image.get(int(im["id"]), []))
            for im in doc.get("images", [])}


def product_mask(frames: Path, name: str, region: str, measurer_factory: Callable[[], Any]) -> _Mask:
    """The product's mask of ``region`` on the image's frame (thermal grid); empty when none is found."""
    from fusion.samples import ThermalFrame

    npz, jpg = frames / f"{name}.npz", frames / f"{name}.jpg"
    if npz.exists():
        with np.load(npz) as data:
            celsius, visible = np.asarray(data["celsius"], np.float32), np.asarray(data["visible"], np.uint8)
    elif jpg.exists():
        from drivers.flir_jpeg import read_radiometric_jpeg

        image = read_radiometric_jpeg(jpg)
        if image.photo is None:
            raise MaskError(f"{jpg}: no embedded visible photo, so no region can be found")
        celsius, visible = image.celsius, image.photo
    else:
        raise MaskError(f"{frames}: no frame {name}.npz or {name}.jpg")
    frame = ThermalFrame(t_mono=0, t_wall=0.0, source="frames", seq=0, celsius=celsius, visible=visible)
    found = measurer_factory().measure(frame, None)
    measurement = getattr(found, region)
    if measurement is None:
        return np.zeros(celsius.shape, dtype=bool)
    return np.asarray(measurement.mask, dtype=np.bool_)


def _stack(name: str, loaders: list[Callable[[], _Mask]], extra: _Mask | None) -> _Mask:
    masks = [load() for load in loaders] + ([extra] if extra is not None else [])
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise MaskError(f"{name}: masks differ in size: {sorted(shapes)}")
    return np.stack(masks)


def evaluate(
    raters: list[Path],
    *,
    skin: Path | None = None,
    frames: Path | None = None,
    region: str = "face",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[str], list[ImageAgreement], Callable[[str], tuple[_Mask, _Mask | None]]]:
    """Score every image; returns rater names, per-image results and a loader of an image's masks (for plots)."""
    sources = [load_rater(p) for p in raters]
    names = [p.stem for p in raters] + (["product"] if frames is not None else [])
    images = sorted(sources[0])
    if not images:
        raise MaskError(f"{raters[0]}: no masks")
    for path, src in zip(raters[1:], sources[1:], strict=True):
        missing = sorted(set(images) - set(src))
        if missing:
            raise MaskError(f"{path}: no mask for {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    factory: Callable[[], Any] | None = None
    if frames is not None:
        from fusion.thermal import ThermalMeasurer
        from models.face_detectors import HaarFaceDetector

        detector = HaarFaceDetector()
        factory = lambda: ThermalMeasurer(detector)  # noqa: E731 - a fresh measurer per image: frames are unrelated

    def load(name: str) -> tuple[_Mask, _Mask | None]:
        extra = product_mask(frames, name, region, factory) if frames is not None and factory else None
        stack = _stack(name, [src[name] for src in sources], extra)
        skin_mask = None
        if skin is not None:
            path = skin / f"{name}.png"
            if not path.exists():
                raise MaskError(f"{skin}: no skin mask {name}.png")
            skin_mask = _read_png(path)
            if skin_mask.shape != stack.shape[1:]:
                raise MaskError(f"{path}: skin mask is {skin_mask.shape}, rater masks {stack.shape[1:]}")
        return stack, skin_mask

    results = []
    for i, name in enumerate(images):
        stack, skin_mask = load(name)
        results.append(image_agreement(name, stack, skin_mask))
        if progress is not None:
            progress(i + 1, len(images))
    return names, results, load


def _mean_se(values: list[float]) -> tuple[float | None, float | None]:
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return None, None
    mean = float(np.mean(v))
    return mean, float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _scores_dict(scores: list[RaterScores]) -> dict[str, dict[str, float | None]]:
    out = {}
    for key in ("iou", "accuracy", "tpr", "ppv", "f1"):
        mean, se = _mean_se([getattr(s, key) for s in scores])
        out[key] = {"mean": _r(mean), "se": _r(se)}
    return out


def summarise(names: list[str], images: list[ImageAgreement], *, seed: int = 0) -> dict[str, Any]:
    """The JSON object of the issue: per image, means ± SE over the images not excluded, raters, leave-one-out."""
    kept = [im for im in images if not im.excluded]
    out: dict[str, Any] = {"images": [], "raters": [], "leave_one_out": []}
    for im in images:
        out["images"].append({
            "name": im.name, "pixels": im.pixels, "excluded": im.excluded,
            "positive_share": {n: _r(s) for n, s in zip(names, im.shares, strict=True)},
            "icc_pixel": _r(im.icc_pixel), "icc_pixel_latent": _r(im.latent.icc),
            "icc_pixel_latent_ci": [_r(v) for v in im.latent.ci] if im.latent.ci else None,
            "sigma_pixel": _r(im.latent.sigma_pixel), "sigma_rater": _r(im.latent.sigma_rater),
            "alpha_pixel": _r(im.alpha_pixel), "icc_area": {str(d): _r(v) for d, v in im.icc_area.items()},
        })
    for key, values in (("icc_pixel", [im.icc_pixel for im in kept]),
                        ("icc_pixel_latent", [im.latent.icc for im in kept])):
        mean, se = _mean_se(values)
        out[f"{key}_mean"], out[f"{key}_se"] = _r(mean), _r(se)
    mean, se = _mean_se([im.alpha_pixel for im in images])
    out["alpha_pixel_mean"], out["alpha_pixel_se"] = _r(mean), _r(se)
    area = {str(d): _mean_se([im.icc_area[d] for im in kept]) for d in AREA_CELLS_PX}
    out["icc_area"] = {d: _r(v[0]) for d, v in area.items()}
    out["icc_area_se"] = {d: _r(v[1]) for d, v in area.items()}
    if len(kept) >= 2:
        logits = np.stack([extent_logits(im.positives, [im.pixels] * len(im.positives)) for im in kept])
        ci = bootstrap_icc(logits, resamples=1000, seed=seed)
        out["icc_extent"], out["icc_extent_ci"] = _r(icc_2_1(logits)), [_r(v) for v in ci] if ci else None
    else:
        out["icc_extent"], out["icc_extent_ci"] = None, None
    out["excluded"] = [im.name for im in images if im.excluded]
    for j, name in enumerate(names):
        out["raters"].append({"name": name, **_scores_dict([im.scores[j] for im in images])})
    out["raters"].append({"name": "naive", **_scores_dict([im.naive for im in images])})
    for j, name in enumerate(names):
        if len(names) < 3:
            break
        row: dict[str, Any] = {"left_out": name}
        for k, key in enumerate(("icc_pixel_mean", "icc_pixel_latent_mean", "alpha_pixel_mean")):
            row[key] = _r(_mean_se([im.leave_one_out[j][k] for im in (images if k == 2 else kept)])[0])
        out["leave_one_out"].append(row)
    out["spearman_brown"] = {}
    for key in ("icc_pixel", "icc_pixel_latent"):
        rho = out[f"{key}_mean"]
        if rho is not None:
            out["spearman_brown"][key] = {
                "consensus_of_k": {str(k): _r(spearman_brown(rho, k)) for k in range(1, max(len(names), 10) + 1)},
                "raters_for_0.9": raters_needed(rho, 0.9),
            }
    return out


def _f(v: Any, se: Any = None) -> str:
    if v is None:
        return "—"
    return f"{v:.3f} ± {se:.3f}" if se is not None else f"{v:.3f}"


def format_table(report: dict[str, Any], n_images: int) -> str:
    """The summary as text: agreement figures, raters against the others' consensus, leave-one-out."""
    lines = [
        f"{n_images} images, {len(report['excluded'])} excluded from ICC (≥ 3 raters > 95 % positive)",
        f"pixel ICC(2,1)        {_f(report['icc_pixel_mean'], report['icc_pixel_se'])}",
        f"pixel ICC latent      {_f(report['icc_pixel_latent_mean'], report['icc_pixel_latent_se'])}",
        f"pixel alpha           {_f(report['alpha_pixel_mean'], report['alpha_pixel_se'])}",
    ]
    for d in report["icc_area"]:
        lines.append(f"area ICC {d:>2}×{d:<2}        {_f(report['icc_area'][d], report['icc_area_se'][d])}")
    ci = report["icc_extent_ci"]
    lines.append(f"extent ICC            {_f(report['icc_extent'])}"
                 + (f"  [{_f(ci[0])}, {_f(ci[1])}]" if ci else ""))
    lines.append(f"{'rater':10} {'IoU':>15} {'accuracy':>15} {'TPR':>15} {'PPV':>15} {'F1':>15}")
    for r in report["raters"]:
        cells = " ".join(f"{_f(r[k]['mean'], r[k]['se']):>15}" for k in ("iou", "accuracy", "tpr", "ppv", "f1"))
        lines.append(f"{r['name']:10} {cells}")
    if report["leave_one_out"]:
        lines.append(f"{'left out':10} {'ICC(2,1)':>9} {'latent':>9} {'alpha':>9}")
        for r in report["leave_one_out"]:
            lines.append(f"{r['left_out']:10} {_f(r['icc_pixel_mean']):>9} {_f(r['icc_pixel_latent_mean']):>9} "
                         f"{_f(r['alpha_pixel_mean']):>9}")
    for key, sb in report["spearman_brown"].items():
        lines.append(f"{key}: raters needed for a consensus reliability of 0.9: {sb['raters_for_0.9']}")
    return "\n".join(lines)


def _progress_bar() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None
    return lambda i, n: print(f"\r  image {i} / {n}", end="\n" if i == n else "", file=sys.stderr, flush=True)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("masks", help="agreement of raters' region masks (and of the product's)")
    parser.add_argument("--rater", type=Path, action="append", required=True,
                        help="a folder of PNG masks or a COCO .json file; give one per rater (at least two)")
    parser.add_argument("--skin", type=Path, help="folder of PNG skin masks: only their pixels count")
    parser.add_argument("--product", action="store_true", help="score the product's region finder as a rater")
    parser.add_argument("--frames", type=Path, help="with --product: folder of <name>.npz or <name>.jpg frames")
    parser.add_argument("--region", choices=REGIONS, default="face", help="with --product: which region (face)")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw per-image ICC/alpha and overlays")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.product != (args.frames is not None):
        print("vitaledge eval masks: error: --product and --frames go together", file=sys.stderr)
        return 2
    if len(args.rater) + int(args.product) < 2:
        print("vitaledge eval masks: error: at least two raters (or one and --product)", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        names, images, load = evaluate(args.rater, skin=args.skin, frames=args.frames, region=args.region,
                                       progress=_progress_bar())
    except (MaskError, OSError) as exc:
        print(f"vitaledge eval masks: error: {exc}", file=sys.stderr)
        return 1
    report = summarise(names, images, seed=args.seed)
    report["wall_s"] = round(time.monotonic() - start, 2)
    if args.plot is not None:
        from edge.evaluation.masks_plot import plot as draw

        draw(args.plot, images, load)
    print(json.dumps(report) if args.json else format_table(report, len(images)))
    return 0
