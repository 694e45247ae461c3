"""``vitaledge train confidence``: the learned heart-rate confidence, trained on labelled UBFC-form clips.

Each clip is decoded once through the live heart-rate pipeline (as ``vitaledge eval rppg`` does); the
model learns from the pulse the pipeline fed its heart-rate estimator and the contact PPG's rate (see
:mod:`models.training.confidence`), its flag threshold is chosen by cross-fitting over the clips, and
both are written into the ONNX file that ``heart_rate.confidence_model`` names. Needs PyTorch (the
``[train]`` extra); the product runs the file with onnxruntime alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from edge.cli.training_setup import torch_for_training
from fusion.errors import ConfigError

__all__ = ["add_target"]


def add_target(targets: argparse._SubParsersAction[Any]) -> None:
    """Registers ``confidence`` under ``vitaledge train``."""
    p = targets.add_parser("confidence", help="the learned heart-rate confidence (needs labelled UBFC-form clips)")
    p.add_argument("dirs", nargs="+", type=Path, metavar="UBFC_DIR", help="clip folders (video + ground_truth.txt)")
    p.add_argument("--out", type=Path, required=True, help="the ONNX file to write (NAME.onnx)")
    p.add_argument("--method", choices=("fused", "pos", "chrom"), default="fused", help="pulse the model serves")
    p.add_argument("--steps", type=int, help="optimiser steps (default: the training default)")
    p.add_argument("--max-mae", type=float, default=2.0, help="MAE budget (bpm) of unflagged windows: the threshold")
    p.add_argument("--max-s", type=float, help="use only the first seconds of each clip")
    p.add_argument(
        "--target",
        choices=("frames", "published", "correct"),
        default="frames",
        help="the loss (see models/training/confidence.py): the STFT frames' rates blended (the paper's), "
        "the published rate blended, or whether the published rate is right",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch_for_training(args.out, args.threads)
    from dataclasses import replace

    from edge.config import HeartRateConfig
    from edge.evaluation.confidence_loo import labelled_pulse
    from edge.evaluation.rppg_data import load_ground_truth, run_clip
    from fusion.reference import ReferencePpg
    from models.training.confidence import ConfidenceTrainConfig, clip_windows, fit_confidence
    from models.training.confidence_export import confidence_parity, export_confidence

    if len(args.dirs) < 2:
        raise ConfigError("give at least 2 clip folders: the threshold is chosen by leaving each out in turn")
    hr_cfg = HeartRateConfig(method=args.method)
    tracker = hr_cfg.tracker.settings(hr_cfg.step_s) if hr_cfg.tracker is not None else None
    cfg = ConfidenceTrainConfig(
        window_s=hr_cfg.window_s,
        step_s=hr_cfg.step_s,
        tracker=tracker,
        seed=args.seed,
        max_mae_bpm=args.max_mae,
        target=args.target,
    )
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    pulses = []
    for folder in args.dirs:
        video, ppg, t_ppg = load_ground_truth(folder)
        clip = run_clip(video, hr_cfg, name=folder.name, max_s=args.max_s, progress=True)
        pulses.append(labelled_pulse(clip, ReferencePpg(ppg, t_ppg, clip.fs_hz)))
    windows = [clip_windows(p, cfg) for p in pulses]
    try:
        fit = fit_confidence(windows, cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    fs_hz = statistics.median(p.fs_hz for p in pulses)
    provenance = {
        "method": "Gideon & Stent 2021 confidence, L1 on the confidence-blended rate",
        "clips": [p.name for p in pulses],
        "pulse": args.method,
        "threshold_rule": f"cross-fitted, lowest with unflagged MAE <= {args.max_mae:g} bpm",
        "target": args.target,
        "steps": cfg.steps,
        "seed": args.seed,
    }
    export_confidence(fit.model, args.out, fs_hz=fs_hz, threshold=fit.threshold, provenance=provenance)
    diff = confidence_parity(fit.model, args.out)
    windows_n = sum(len(w.train.reference_bpm) for w in windows)
    print(
        f"{args.out}: {len(pulses)} clips, {windows_n} training windows, {cfg.steps} steps, threshold "
        f"{fit.threshold:.3f}, {fit.seconds:.0f} s; onnxruntime vs torch max |diff| {diff:.1e}"
    )
    return 0
