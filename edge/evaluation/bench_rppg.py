"""``vitaledge bench rppg FILE``: speed and memory of the heart-rate path, per method.

Each method runs in a fresh process (so peak RSS is its own) over the whole video: decode with OpenCV,
then ``HeartRatePipeline.push`` per frame and ``reading()`` once per second of video, as the fusion
loop does. Reported: frames/s with and without decoding, realtime factor (video seconds per wall
second, decode included), CPU seconds per video second (all threads) and peak RSS.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path
from typing import Any

from edge.config import HeartRateConfig
from fusion.errors import ConfigError

__all__ = ["add_parser", "bench_method", "run"]

_NS_PER_S = 1_000_000_000


def bench_method(path: str, method: str, model: str | None, max_s: float | None) -> dict[str, float]:
    """Runs one method over the video in this process; returns its figures.

    Raises:
        ConfigError: the video cannot be opened.
    """
    import cv2
    import numpy as np

    from edge.build import build_heart_rate_pipeline

    cap = cv2.VideoCapture(path)
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not cap.isOpened() or not fps > 0:
        raise ConfigError(f"{path}: cannot open the video")
    limit = int(max_s * fps) if max_s else None
    cfg = HeartRateConfig.model_validate({"method": method, "model": model})
    pipeline = build_heart_rate_pipeline(cfg, fps)
    frames, push_s, readings = 0, 0.0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while limit is None or frames < limit:
        ok, image = cap.read()
        if not ok:
            break
        t_mono = round(frames * _NS_PER_S / fps)
        t0 = time.perf_counter()
        pipeline.push(np.asarray(image, dtype=np.uint8), t_mono)
        if frames % max(1, round(fps)) == 0:
            pipeline.reading()
            readings += 1
        push_s += time.perf_counter() - t0
        frames += 1
    wall_s = time.perf_counter() - wall0
    cpu_s = time.process_time() - cpu0
    cap.release()
    if frames == 0:
        raise ConfigError(f"{path}: no frames decoded")
    video_s = frames / fps
    return {
        "fps": round(frames / wall_s, 1),
        "fps_decode_excluded": round(frames / push_s, 1),
        "realtime_factor": round(video_s / wall_s, 2),
        "cpu_s_per_video_s": round(cpu_s / video_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frames": frames,
        "video_s": round(video_s, 2),
    }


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("rppg", help="frames/s, realtime factor, CPU and memory of the heart-rate path")
    parser.add_argument("file", type=Path, metavar="FILE", help="a video (e.g. 640×480 @ 30 fps)")
    parser.add_argument(
        "--method",
        action="append",
        metavar="SPEC",
        help="fused, pos, chrom or onnx:PATH (repeat for several); default fused,pos,chrom (and onnx with --model)",
    )
    parser.add_argument("--methods", default=None, help="comma-separated method names (older form of --method)")
    parser.add_argument("--model", type=Path, help="ONNX pulse model for the onnx method")
    parser.add_argument("--max-s", type=float, help="only the first seconds of the video")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    specs = list(args.method or [])
    if args.methods:
        specs += args.methods.split(",")
    if not specs:
        specs = ["fused", "pos", "chrom"] + (["onnx"] if args.model else [])
    results: dict[str, dict[str, float]] = {}
    context = multiprocessing.get_context("spawn")
    for spec in specs:
        method, _, model = spec.partition(":")
        if method == "onnx" and not model:
            model = str(args.model) if args.model else ""
        print(f"bench rppg: {spec} …", file=sys.stderr, flush=True)
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results[spec] = pool.submit(bench_method, str(args.file), method, model or None, args.max_s).result()
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"{'method':>12} {'fps':>7} {'fps excl. decode':>16} {'× real time':>11} "
        f"{'CPU s / video s':>15} {'peak RSS':>9}"
    )
    for method, r in results.items():
        print(
            f"{method[-12:]:>12} {r['fps']:>7.1f} {r['fps_decode_excluded']:>16.1f} {r['realtime_factor']:>11.2f} "
            f"{r['cpu_s_per_video_s']:>15.3f} {r['peak_rss_mb']:>6.0f} MB"
        )
    return 0
