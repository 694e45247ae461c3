"""Leave-one-out evaluation of the learned confidence (``vitaledge eval rppg --folds leave-one-out
--learned-confidence``), beside the estimator's own confidence under the same protocol.

Protocol, written down before any fold was scored. For each clip (held out) of the UBFC set:

1. **learned**: :func:`models.training.confidence.fit_confidence` on the *other* clips only (model trained
   on them with the default :class:`ConfidenceTrainConfig`; its flag threshold chosen on them by
   cross-fitting: the lowest window confidence at which their unflagged published rates have MAE ≤ 2
   bpm). The model is exported to ONNX and opened with onnxruntime exactly as ``heart_rate.confidence_model``
   is; the held-out clip's pulse is replayed through the heart-rate estimator with it, and each published
   window is flagged when its learned confidence is under the fold's threshold.
2. **own, threshold by the same rule**: the confidence the estimator publishes without a model (the
   spectral confidence when this protocol was written; the tracker's support since), its threshold
   chosen by the same rule on the other clips' published windows.
3. **own as shipped**: that confidence with its fixed threshold (``fusion.rppg.low_confidence_threshold``).

The published rate is the same in all three (the default tracker; the confidence only flags). Figures:
coverage (share of the held-out windows published without ``low_confidence``) and the MAE of those
windows, over all held-out windows of all clips and per clip. A diagnostic rides along: the MAE of the
paper's learned blend ``Σ c·hr / Σ c`` over each window's STFT frames, to show whether the learned
confidence should also set the rate (it does not, unless this beats the tracker's rate).

``target`` picks the training loss (``frames``, the paper's, was the protocol's; ``published`` and
``correct`` were added after its figures were seen, see :class:`ConfidenceTrainConfig`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edge.config import HeartRateConfig
from edge.evaluation.rppg_data import ClipRun
from fusion.reference import ReferencePpg
from fusion.rppg import low_confidence_threshold

__all__ = ["ArmResult", "confidence_leave_one_out", "labelled_pulse", "print_confidence_summary"]


def labelled_pulse(run: ClipRun, ref: ReferencePpg) -> Any:
    """The training code's view of a decoded clip (a ``LabelledPulse``)."""
    from models.training.confidence import LabelledPulse

    return LabelledPulse(run.name, run.fs_hz, run.segments, ref)


@dataclass(slots=True)
class ArmResult:
    """One way of flagging, over the held-out clips: per clip, (|error| of each window, flagged)."""

    name: str
    clips: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        err = np.concatenate([e for e, _ in self.clips.values()]) if self.clips else np.zeros(0)
        flagged = np.concatenate([f for _, f in self.clips.values()]) if self.clips else np.zeros(0, dtype=bool)
        return {
            "name": self.name,
            **_coverage(err, flagged),
            "clips": [
                {"name": n, "threshold": _r(self.thresholds[n]), **_coverage(e, f)} for n, (e, f) in self.clips.items()
            ],
        }


def _r(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else None


def _coverage(err: npt.NDArray[np.float64], flagged: npt.NDArray[np.bool_]) -> dict[str, Any]:
    kept = err[~flagged]
    return {
        "windows": len(err),
        "unflagged_windows": len(kept),
        "unflagged_share": _r(len(kept) / len(err)) if len(err) else None,
        "unflagged_mae_bpm": _r(float(kept.mean())) if len(kept) else None,
        "mae_bpm": _r(float(err.mean())) if len(err) else None,
    }


def confidence_leave_one_out(
    runs: Sequence[tuple[ClipRun, ReferencePpg]],
    cfg: HeartRateConfig,
    *,
    target: Literal["frames", "published", "correct"] = "frames",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The protocol of the module docstring over ``runs`` (at least 3 clips: 2 to cross-fit on per fold).

    Raises:
        ValueError: fewer than 3 clips.
    """
    import onnxruntime as ort

    from edge.evaluation.folds import flag_threshold
    from edge.evaluation.rppg import HrSetting, replay
    from fusion.confidence import LearnedConfidence
    from models.training.confidence import (
        ConfidenceTrainConfig,
        clip_windows,
        fit_confidence,
        window_confidence,
    )
    from models.training.confidence_export import export_confidence

    if len(runs) < 3:
        raise ValueError(f"the learned confidence's leave-one-out needs at least 3 clips, got {len(runs)}")
    tracker = cfg.tracker.settings(cfg.step_s) if cfg.tracker is not None else None
    train_cfg = ConfidenceTrainConfig(window_s=cfg.window_s, step_s=cfg.step_s, tracker=tracker, target=target)
    windows = [clip_windows(labelled_pulse(run, ref), train_cfg) for run, ref in runs]
    arms = {k: ArmResult(k) for k in ("learned", "own_same_rule", "own_as_shipped")}
    shipped = low_confidence_threshold(tracker)
    blend_err: list[float] = []
    seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="vitaledge-conf-") as tmp:
        for h, (run, ref) in enumerate(runs):
            others = [w for i, w in enumerate(windows) if i != h]
            fit = fit_confidence(others, train_cfg)
            seconds += fit.seconds
            path = Path(tmp) / f"{run.name}.onnx"
            export_confidence(fit.model, path, fs_hz=run.fs_hz, threshold=fit.threshold, provenance={})
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            runner = LearnedConfidence(session, fs_hz=run.fs_hz)
            published = replay(
                run, HrSetting(tracker, low_confidence=fit.threshold), cfg.window_s, cfg.step_s, confidence=runner
            )
            err, flagged = _scored(published, ref, cfg.window_s)
            arms["learned"].clips[run.name] = (err, flagged)
            arms["learned"].thresholds[run.name] = fit.threshold
            pw = windows[h].published
            own_t = flag_threshold(
                np.concatenate([w.published.own for w in others]),
                np.concatenate([np.abs(w.published.bpm - w.published.reference_bpm) for w in others]),
                train_cfg.max_mae_bpm,
            )
            abs_err = np.abs(pw.bpm - pw.reference_bpm)
            arms["own_same_rule"].clips[run.name] = (abs_err, pw.own < own_t)
            arms["own_same_rule"].thresholds[run.name] = own_t
            arms["own_as_shipped"].clips[run.name] = (abs_err, pw.own < shipped)
            arms["own_as_shipped"].thresholds[run.name] = shipped
            c = _frame_confidence(fit.model, pw.features)
            blend = (c * pw.frame_bpm).sum(axis=1) / c.sum(axis=1)
            blend_err.extend(np.abs(blend - pw.reference_bpm).tolist())
            if log is not None:
                mean_c = window_confidence(fit.model, pw.features)
                log(
                    f"fold {h + 1}/{len(runs)} {run.name}: threshold {fit.threshold:.3f} "
                    f"(own {own_t:.3f}), {len(mean_c)} windows"
                )
    published_err = np.concatenate([e for e, _ in arms["learned"].clips.values()])
    return {
        "target": target,
        "protocol": "leave-one-out: model and threshold from the other clips (threshold: cross-fitted, "
        f"lowest with unflagged MAE ≤ {train_cfg.max_mae_bpm:g} bpm)",
        "arms": [a.summary() for a in arms.values()],
        "published_rate_mae_bpm": _r(float(published_err.mean())) if len(published_err) else None,
        "learned_blend_rate_mae_bpm": _r(float(np.mean(blend_err))) if blend_err else None,
        "training_s": round(seconds, 1),
    }


def _frame_confidence(model: Any, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(features)).double().numpy()  # type: ignore[no-any-return]


def _scored(
    published: Sequence[Any], ref: ReferencePpg, window_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """|error| and flag of each published window that has a reference."""
    rows = [(abs(p.bpm - r), p.flagged) for p in published if math.isfinite(r := ref.window_bpm(p.end_s, window_s))]
    return np.array([e for e, _ in rows], dtype=np.float64), np.array([f for _, f in rows], dtype=bool)


def print_confidence_summary(s: dict[str, Any]) -> None:
    """The three arms as a table (held-out figures), then per clip."""
    print(f"confidence leave-one-out ({s['protocol']}):")
    print(f"{'flagging':>22} {'coverage':>8} {'unflagged MAE':>13} {'(n / all)':>11}")
    for arm in s["arms"]:
        print(
            f"{arm['name']:>22} {_f(arm['unflagged_share'], 8, 3)} {_f(arm['unflagged_mae_bpm'], 13)} "
            f"({arm['unflagged_windows']:>3} / {arm['windows']:>3})"
        )
    for arm in s["arms"]:
        cells = "  ".join(
            f"{c['name']} {_f(c['unflagged_share'], 0, 2)}@{_f(c['unflagged_mae_bpm'], 0, 1)}"
            f" (t {_f(c['threshold'], 0, 2)})"
            for c in arm["clips"]
        )
        print(f"  {arm['name']}: {cells}")
    print(
        f"published rate MAE {_f(s['published_rate_mae_bpm'], 0)} bpm; the paper's learned blend over STFT "
        f"frames {_f(s['learned_blend_rate_mae_bpm'], 0)} bpm; training {s['training_s']} s"
    )


def _f(x: float | None, width: int = 7, digits: int = 2) -> str:
    return f"{'—':>{width}}" if x is None else f"{x:>{width}.{digits}f}"
