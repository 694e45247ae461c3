"""The training loop: clips, AdamW, unlabeled model selection, checkpoints, resume, progress.

Model selection follows the paper: every ``val_every`` steps the model runs on a fixed set of
held-back clips and their resampled copies, and the score is the negated maximum cross-correlation of
the anchor's output with the positive (the negative's output resampled back); the state with the lowest
score is kept. No label is ever read.

With a teacher (videos carrying ``DecodedVideo.teacher``, a pretrained model's pulse on the same frames)
the loss adds ``teacher_weight`` × the PSD-MSE between the student's output and the teacher's pulse on
the anchor and on the negative (the teacher's pulse sampled at the negative's times), and the selection
score is that distance on the held-back clips.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt
import torch

from models.physnet import EDGE, PhysNet, PhysNetConfig
from models.training.data import DecodedVideo, interpolate_frames, temporal_z
from models.training.loss import max_cross_correlation, positive_from_negative, spectral_distance, triplet_loss

__all__ = ["Clip", "ClipSampler", "TrainConfig", "TrainResult", "train"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """What and how long to train.

    Attributes:
        arch: the network's size.
        fs_hz: training rate (every video is sampled at it; the exported model declares it).
        clip_s: clip length (rounded up to a multiple of the network's temporal stride).
        r_min / r_max: range of the resampling factor R_f; half the negatives use 1/R_f.
        views / view_s: V_N windows of V_L seconds per signal.
        batch: clips per step.
        lr / weight_decay: AdamW's.
        steps: most steps; minutes: most wall time (whichever comes first).
        val_every: steps between model-selection checks and checkpoints.
        val_clips: held-back clips scored for model selection.
        seed: everything random derives from it.
        contrastive_weight: weight of the contrastive (triplet) loss.
        teacher_weight: weight of the teacher loss (needs videos with a teacher's pulse); 0: none.
    """

    arch: PhysNetConfig = EDGE
    fs_hz: float = 30.0
    clip_s: float = 10.0
    r_min: float = 0.66
    r_max: float = 0.8
    views: int = 4
    view_s: float = 5.0
    batch: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    steps: int = 1_000_000
    minutes: float | None = None
    val_every: int = 25
    val_clips: int = 8
    seed: int = 0
    contrastive_weight: float = 1.0
    teacher_weight: float = 0.0

    @property
    def clip_frames(self) -> int:
        m = self.arch.frames_multiple
        return int(math.ceil(self.clip_s * self.fs_hz / m) * m)


@dataclass(slots=True)
class TrainResult:
    """How training went.

    Attributes:
        steps: steps done (in all runs, when resumed).
        losses: the loss of every step of this run.
        best_score: the selected state's selection score (lower is better), inf when never scored.
        best_step: the step it was scored at.
        seconds: wall time of this run.
        clips: clips trained on in this run.
    """

    steps: int = 0
    losses: list[float] = field(default_factory=list)
    best_score: float = math.inf
    best_step: int = 0
    seconds: float = 0.0
    clips: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class Clip:
    """One training clip.

    Attributes:
        anchor: 3×T×S×S, normalised, frame k at ``t0 + k/fs``.
        negative: the same at ``t0 + q·k/fs``.
        q: the resampling factor.
        teacher_anchor / teacher_negative: the teacher's pulse at the same T times (None without a teacher).
    """

    anchor: npt.NDArray[np.float32]
    negative: npt.NDArray[np.float32]
    q: float
    teacher_anchor: npt.NDArray[np.float32] | None = None
    teacher_negative: npt.NDArray[np.float32] | None = None


class ClipSampler:
    """Random clips from decoded videos, each span fully tracked (and covered by the teacher, if any).

    Raises:
        ValueError: no video is long enough for one clip.
    """

    def __init__(self, videos: list[DecodedVideo], cfg: TrainConfig, rng: random.Random) -> None:
        self._cfg = cfg
        self._rng = rng
        self._span_s = cfg.clip_frames / cfg.fs_hz / cfg.r_min  # the longest a negative reaches
        self.videos = [v for v in videos if v.duration_s - 1.0 / v.fps > self._span_s]
        if not self.videos:
            raise ValueError(f"no video is longer than one clip's span of {self._span_s:.1f} s")

    def sample(self) -> Clip:
        """One clip."""
        cfg = self._cfg
        k = np.arange(cfg.clip_frames, dtype=np.float64) / cfg.fs_hz
        for _ in range(1000):
            video = self._rng.choice(self.videos)
            t0 = self._rng.uniform(0.0, video.duration_s - 1.0 / video.fps - self._span_s)
            r = self._rng.uniform(cfg.r_min, cfg.r_max)
            q = r if self._rng.random() < 0.5 else 1.0 / r
            anchor = interpolate_frames(video, t0 + k)
            negative = interpolate_frames(video, t0 + q * k)
            if anchor is None or negative is None:
                continue
            if video.teacher is None:
                return Clip(_to_model(anchor), _to_model(negative), q)
            frame_t = np.arange(len(video.teacher)) / video.fps
            ta = np.interp(t0 + k, frame_t, video.teacher).astype(np.float32)
            tn = np.interp(t0 + q * k, frame_t, video.teacher).astype(np.float32)
            if np.isfinite(ta).all() and np.isfinite(tn).all():
                return Clip(_to_model(anchor), _to_model(negative), q, ta, tn)
        raise ValueError("no fully tracked clip found in 1000 tries")


def _to_model(frames_thwc: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(temporal_z(frames_thwc).transpose(3, 0, 1, 2))


def _step_batch(model: PhysNet, clips: list[Clip]) -> tuple[torch.Tensor, torch.Tensor]:
    anchors = torch.from_numpy(np.stack([c.anchor for c in clips]))
    negatives = torch.from_numpy(np.stack([c.negative for c in clips]))
    out = model(torch.cat([anchors, negatives]))
    return out[: len(clips)], out[len(clips) :]


def _teacher_distance(y_a: torch.Tensor, y_n: torch.Tensor, clips: list[Clip], fs_hz: float) -> torch.Tensor:
    """PSD-MSE of the student's outputs (anchor and negative) against the teacher's pulse at the same times."""
    ta = torch.from_numpy(np.stack([c.teacher_anchor for c in clips if c.teacher_anchor is not None]))
    tn = torch.from_numpy(np.stack([c.teacher_negative for c in clips if c.teacher_negative is not None]))
    return (spectral_distance(y_a, ta, fs_hz) + spectral_distance(y_n, tn, fs_hz)) / 2


def _score(model: PhysNet, held_back: list[Clip], fs_hz: float, teacher: bool) -> float:
    """The selection score (lower is better): the teacher distance when taught, else minus the mean max
    cross-correlation of anchor and positive outputs."""
    model.eval()
    scores = []
    with torch.no_grad():
        for clip in held_back:
            y_a, y_n = _step_batch(model, [clip])
            if teacher:
                scores.append(float(_teacher_distance(y_a, y_n, [clip], fs_hz)))
                continue
            y_p = positive_from_negative(y_n, clip.q)
            scores.append(-float(max_cross_correlation(y_a[:, : y_p.shape[-1]], y_p, fs_hz).mean()))
    model.train()
    return float(np.mean(scores))


class _Progress:
    """One updating line with step, loss and ETA; silent unless the stream is a terminal."""

    def __init__(self, stream: TextIO, total_steps: int, deadline: float | None) -> None:
        self._stream = stream
        self._on = stream.isatty()
        self._total = total_steps
        self._deadline = deadline
        self._t0 = time.monotonic()

    def update(self, step: int, done_here: int, loss: float) -> None:
        if not self._on:
            return
        now = time.monotonic()
        per = (now - self._t0) / max(1, done_here)
        eta = (self._total - step) * per
        if self._deadline is not None:
            eta = min(eta, self._deadline - now)
        m, s = divmod(max(0, int(eta)), 60)
        self._stream.write(f"\rstep {step}/{self._total}  loss {loss:+.4f}  {per:.2f} s/step  ETA {m}:{s:02d} ")
        self._stream.flush()

    def close(self) -> None:
        if self._on:
            self._stream.write("\n")


def train(
    model: PhysNet,
    videos: list[DecodedVideo],
    cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: TextIO | None = None,
    held_back: list[DecodedVideo] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``videos`` and leave it holding the selected state.

    Args:
        model: the network (fresh or initialised from another model).
        videos: unlabeled training videos.
        cfg: the settings.
        checkpoint: where to save the state every ``val_every`` steps.
        resume: continue from ``checkpoint`` when it exists.
        progress: where the progress line goes (only when it is a terminal); default stderr.
        held_back: videos for model selection; default the training videos (fixed clips, own seed).
    """
    taught = cfg.teacher_weight > 0
    if taught and any(v.teacher is None for v in [*videos, *(held_back or [])]):
        raise ValueError("teacher_weight > 0 needs every video's teacher pulse")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = ClipSampler(videos, cfg, rng)
    val_sampler = ClipSampler(held_back or videos, cfg, random.Random(cfg.seed + 1))
    val = [val_sampler.sample() for _ in range(cfg.val_clips)]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult()
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if resume and checkpoint is not None and checkpoint.is_file():
        ckpt = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        best_state = ckpt["best_state"]
        result.steps, result.best_score, result.best_step = ckpt["step"], ckpt["best_score"], ckpt["best_step"]
        rng.setstate(ckpt["rng"])
        gen.set_state(ckpt["gen"])
        torch.set_rng_state(ckpt["torch_rng"])
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60.0 if cfg.minutes is not None else None
    bar = _Progress(progress or sys.stderr, cfg.steps, deadline)
    model.train()
    if result.steps == 0:
        result.best_score = _score(model, val, cfg.fs_hz, taught)  # the starting point (matters for --init)
    while result.steps < cfg.steps and (deadline is None or time.monotonic() < deadline):
        clips = [sampler.sample() for _ in range(cfg.batch)]
        y_a, y_n = _step_batch(model, clips)
        loss = torch.zeros(())
        if cfg.contrastive_weight:
            contrastive = sum(
                (
                    triplet_loss(
                        y_a[i : i + 1],
                        y_n[i : i + 1],
                        c.q,
                        fs_hz=cfg.fs_hz,
                        views=cfg.views,
                        view_s=cfg.view_s,
                        gen=gen,
                    )
                    for i, c in enumerate(clips)
                ),
                torch.zeros(()),
            )
            loss = loss + cfg.contrastive_weight * contrastive / len(clips)
        if taught:
            loss = loss + cfg.teacher_weight * _teacher_distance(y_a, y_n, clips, cfg.fs_hz)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
        result.steps += 1
        result.clips += len(clips)
        result.losses.append(float(loss.detach()))
        bar.update(result.steps, len(result.losses), result.losses[-1])
        if result.steps % cfg.val_every == 0 or result.steps == cfg.steps:
            score = _score(model, val, cfg.fs_hz, taught)
            if score < result.best_score:
                result.best_score, result.best_step = score, result.steps
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if checkpoint is not None:
                _save(checkpoint, model, opt, best_state, result, rng, gen, cfg)
    bar.close()
    if checkpoint is not None:
        _save(checkpoint, model, opt, best_state, result, rng, gen, cfg)
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.monotonic() - t0
    return result


def _save(
    path: Path,
    model: PhysNet,
    opt: torch.optim.Optimizer,
    best_state: dict[str, torch.Tensor],
    result: TrainResult,
    rng: random.Random,
    gen: torch.Generator,
    cfg: TrainConfig,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "best_state": best_state,
            "step": result.steps,
            "best_score": result.best_score,
            "best_step": result.best_step,
            "rng": rng.getstate(),
            "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "arch": model.config.to_json(),
            "config": {k: v for k, v in asdict(cfg).items() if k != "arch"},
        },
        tmp,
    )
    tmp.replace(path)
