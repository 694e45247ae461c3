"""``vitaledge bench privacy``: milliseconds to lens one frame in the live pipeline, per preset.

Each preset lenses the same frame (a video's first, or a synthetic 640×480 scene) ``--repeat`` times
after a warm-up (PSFs computed and cached); reported: median, 90th percentile and mean wall time per frame,
and the CPU time per frame (all threads).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from edge.privacy import PRESETS

__all__ = ["add_parser", "bench_preset", "run"]


def bench_preset(preset: str, image: Any, repeat: int) -> dict[str, float]:
    """Times ``repeat`` lensings of ``image`` with ``preset`` (warm-up excluded)."""
    import numpy as np

    from edge.privacy import build_lensing

    lensing = build_lensing(preset)  # type: ignore[arg-type]  # checked by the parser's choices
    if lensing is None:
        return {"median_ms": 0.0, "p90_ms": 0.0, "mean_ms": 0.0, "cpu_ms": 0.0}
    for _ in range(5):
        lensing.apply(image)
    times = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        lensing.apply(image)
        times.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / repeat
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
        "mean_ms": round(float(np.mean(times)), 3),
        "cpu_ms": round(cpu_ms, 3),
    }


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("privacy", help="ms per frame to lens a frame with each privacy preset")
    parser.add_argument("file", type=Path, nargs="?", metavar="VIDEO", help="take its first frame (default: synthetic)")
    parser.add_argument("--repeat", type=int, default=200, help="timed lensings per preset")
    parser.add_argument("--presets", default="defocus,lowres16,lens", help=f"comma-separated, of {', '.join(PRESETS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fusion.errors import ConfigError

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if bad := [p for p in presets if p not in PRESETS]:
        raise ConfigError(f"--presets: unknown preset {bad[0]!r} (choose from {', '.join(PRESETS)})")
    if args.repeat < 1:
        raise ConfigError("--repeat must be positive")
    if args.file is not None:
        import cv2

        cap = cv2.VideoCapture(str(args.file))
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise ConfigError(f"{args.file}: cannot read a frame")
        image = np.asarray(frame, dtype=np.uint8)
    else:
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    figures = {p: bench_preset(p, image, args.repeat) for p in presets}
    out: dict[str, Any] = {"frame": f"{image.shape[1]}×{image.shape[0]}", "presets": figures}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"lensing one {out['frame']} frame (ms): median, p90, mean, CPU")
    for name, r in figures.items():
        print(f"{name:>9}  {r['median_ms']:6.2f}  {r['p90_ms']:6.2f}  {r['mean_ms']:6.2f}  {r['cpu_ms']:6.2f}")
    return 0
