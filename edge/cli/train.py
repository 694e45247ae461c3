"""``vitaledge train rppg``: train the pulse model on unlabeled video and export it as ONNX
(``vitaledge train confidence``: :mod:`edge.cli.train_confidence`).

Needs PyTorch (``pip install 'vitaledge[train]'``); the exported model runs with onnxruntime alone
(``heart_rate.method: onnx``). Personalisation: ``--init`` a general model and train a few minutes on
one person's own recording. ``--teacher`` trains on a pretrained streaming model's pulse (ME-rPPG) on the
same unlabeled video instead of (or besides, ``--contrastive-weight``) the contrastive loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

from edge.cli import train_confidence
from edge.cli.training_setup import torch_for_training
from fusion.errors import ConfigError

__all__ = ["add_parser"]

_LOG = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("train", help="train a model on unlabeled video (needs the [train] extra)")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    p = targets.add_parser("rppg", help="the self-supervised pulse model (Gideon & Stent 2021), exported as ONNX")
    p.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_DIR", help="videos, or folders searched for them")
    p.add_argument("--out", type=Path, required=True, help="the ONNX file to write (NAME.onnx)")
    p.add_argument("--init", type=Path, help="start from this model (.onnx written by this command, or .pt)")
    p.add_argument("--minutes", type=float, help="train this long (wall time)")
    p.add_argument("--steps", type=int, help="train at most this many steps")
    p.add_argument("--dataset", choices=("ubfc", "skin-patches"), default="ubfc", help="face video or skin patches")
    p.add_argument("--size", type=int, default=36, help="crop size in pixels (new model)")
    p.add_argument("--width", type=int, default=8, help="stem channels (new model)")
    p.add_argument("--depth", type=int, default=2, help="temporal poolings (new model)")
    p.add_argument("--fs", type=float, default=30.0, help="training and model frame rate (Hz)")
    p.add_argument("--chunk-frames", type=int, default=160, help="frames per chunk of the exported model")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path(".cache/vitaledge-train"), help="decoded-crop cache folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint (NAME.ckpt.pt)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    p.add_argument(
        "--teacher", type=Path, help="a streaming pulse model (.onnx, ME-rPPG's contract) whose output is the target"
    )
    p.add_argument("--teacher-weight", type=float, default=1.0, help="weight of the teacher loss (with --teacher)")
    p.add_argument(
        "--contrastive-weight", type=float, help="weight of the contrastive loss (default 1, or 0 with --teacher)"
    )
    p.set_defaults(func=run)
    train_confidence.add_target(targets)


def run(args: argparse.Namespace) -> int:
    torch = torch_for_training(args.out, args.threads)
    from models.physnet import PhysNet, PhysNetConfig
    from models.training.data import decode_video, find_videos
    from models.training.export import export_onnx, load_model, parity
    from models.training.teacher import file_digest, teacher_pulse
    from models.training.trainer import TrainConfig, train

    if args.minutes is None and args.steps is None:
        raise ConfigError("give --minutes or --steps")
    torch.manual_seed(args.seed)  # a new model's initial weights
    try:
        paths = find_videos(list(args.inputs))
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    if not paths:
        raise ConfigError("no videos found")
    init_meta: dict[str, str] = {}
    if args.init is not None:
        try:
            model, init_meta = load_model(args.init)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"--init {args.init}: {exc}") from exc
    else:
        try:
            model = PhysNet(PhysNetConfig(size=args.size, width=args.width, depth=args.depth))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    face = args.dataset == "ubfc"
    videos = [decode_video(p, size=model.config.size, face=face, cache_dir=args.cache) for p in paths]
    if args.teacher is not None:
        if not args.teacher.is_file():
            raise ConfigError(f"--teacher {args.teacher}: no such file")
        try:
            videos = [
                dataclasses.replace(v, teacher=teacher_pulse(p, args.teacher, face=face, cache_dir=args.cache))
                for v, p in zip(videos, paths, strict=True)
            ]
        except ValueError as exc:
            raise ConfigError(f"--teacher {args.teacher}: {exc}") from exc
    contrastive = args.contrastive_weight if args.contrastive_weight is not None else float(args.teacher is None)
    # Five or more videos: every fifth is held back for model selection; fewer (personalisation): the
    # selection scores fixed clips of the training videos themselves, still without labels.
    held = videos[4::5] if len(videos) >= 5 else []
    trained_on = [v for i, v in enumerate(videos) if i % 5 != 4] if held else videos
    cfg = TrainConfig(
        arch=model.config,
        fs_hz=args.fs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        steps=args.steps if args.steps is not None else 1_000_000,
        minutes=args.minutes,
        contrastive_weight=contrastive,
        teacher_weight=args.teacher_weight if args.teacher is not None else 0.0,
    )
    try:
        result = train(
            model,
            trained_on,
            cfg,
            checkpoint=args.out.with_suffix(".ckpt.pt"),
            resume=args.resume,
            held_back=held or None,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    teacher = None
    if args.teacher is not None:
        teacher = {"file": args.teacher.name, "sha256": file_digest(args.teacher), "weight": args.teacher_weight}
    provenance = {
        "method": "Gideon & Stent 2021, no labels" + (": a teacher's pulse as the target" if teacher else ""),
        "contrastive_weight": contrastive,
        "teacher": teacher,
        "dataset": args.dataset,
        "videos": [v.name for v in trained_on],
        "held_back": [v.name for v in held],
        "init": json.loads(init_meta.get("rppg.provenance", "null")) if init_meta else None,
        "init_file": args.init.name if args.init is not None else None,
        "steps": result.steps,
        "selected_step": result.best_step,
        "selection_score": None if math.isinf(result.best_score) else round(result.best_score, 4),
        "seed": args.seed,
    }
    try:
        export_onnx(model, args.out, chunk_frames=args.chunk_frames, fs_hz=args.fs, provenance=provenance)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    diff = parity(model, args.out)
    per_step = result.seconds / max(1, len(result.losses))
    print(
        f"{args.out}: {result.steps} steps ({len(result.losses)} this run, {per_step:.2f} s/step, "
        f"{result.clips / max(result.seconds, 1e-9):.2f} clips/s), selected step {result.best_step} "
        f"(score {result.best_score:+.3f}), onnxruntime vs torch max |diff| {diff:.1e}"
    )
    return 0
