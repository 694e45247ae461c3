"""``vitaledge eval rppg --plot DIR``: what rPPG users look at, as PNG files (matplotlib, extra ``[plot]``).

- ``bland_altman_<method>.png``: per method, the difference (estimate − reference) against the mean,
  with the bias and the 95 % limits of agreement (bias ± 1.96 SD); UBFC: one point per window,
  low-confidence windows hollow; skin patches: one point per subject.
- ``trace_<method>_<clip>.png`` (UBFC): the published heart rate and the reference over the clip,
  low-confidence windows marked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import HeartRateConfig
from fusion.errors import ConfigError
from fusion.heartrate import fused_spectral_peak

__all__ = ["write_plots"]


def write_plots(folder: Path, dataset: str, data: Mapping[str, Any], cfg: HeartRateConfig) -> list[Path]:
    """Writes the plots for each method's cached runs; returns the files written.

    Args:
        folder: output folder (created).
        dataset: ``ubfc`` (data: list of (ClipRun, ReferencePpg)) or ``skin-patches`` (data: list of
            (subject, reference bpm, [ClipRun])).
        data: per method name, its cached runs.
        cfg: window and step used for the references.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'vitaledge[plot]'") from exc
    from edge.evaluation.rppg import score_clip

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for method, runs in data.items():
        tag = _slug(method)
        if dataset == "skin-patches":
            est = [
                fused_spectral_peak([x for c in clips for x in c.pulse_signals()], clips[0].fs_hz)
                for _, _, clips in runs
            ]
            ref = [r for _, r, _ in runs]
            flagged = [False] * len(est)
            unit = "subject"
        else:
            results = [score_clip(clip, clip.published, r, cfg) for clip, r in runs]
            est = [e for c in results for e in c.estimates_bpm]
            ref = [x for c in results for x in c.references_bpm]
            flagged = [f for c in results for f in c.flagged]
            unit = "window"
            for c in results:
                fig, ax = plt.subplots(figsize=(9, 4))
                t = np.asarray(c.end_s)
                ax.plot(t, c.references_bpm, color="black", label="reference (PPG)")
                ax.plot(t, c.estimates_bpm, color="tab:blue", label=f"published ({method})")
                low = np.asarray(c.flagged, dtype=bool)
                if low.any():
                    ax.scatter(
                        t[low],
                        np.asarray(c.estimates_bpm)[low],
                        color="tab:red",
                        marker="x",
                        zorder=3,
                        label="low_confidence",
                    )
                ax.set(xlabel="window end (s)", ylabel="heart rate (bpm)", title=f"{c.name}: {method}")
                ax.legend(loc="best", fontsize="small")
                ax.grid(alpha=0.3)
                written.append(_save(fig, folder / f"trace_{tag}_{_slug(c.name)}.png", plt))
        written.append(
            _save(_bland_altman(plt, est, ref, flagged, f"{method} ({unit}s)"), folder / f"bland_altman_{tag}.png", plt)
        )
    return written


def _bland_altman(plt: Any, est: list[float], ref: list[float], flagged: list[bool], title: str) -> Any:
    e, r = np.asarray(est, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(r)
    e, r, low = e[ok], r[ok], np.asarray(flagged, dtype=bool)[ok]
    mean, diff = (e + r) / 2, e - r
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(mean[~low], diff[~low], s=12, color="tab:blue", label="published")
    if low.any():
        ax.scatter(mean[low], diff[low], s=12, facecolors="none", edgecolors="tab:red", label="low_confidence")
    if len(diff):
        bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(y, color="grey", linestyle=style, linewidth=1)
        ax.set_title(f"Bland–Altman: {title}\nbias {bias:+.1f} bpm, limits ±{1.96 * sd:.1f} bpm")
    ax.set(xlabel="mean of estimate and reference (bpm)", ylabel="estimate − reference (bpm)")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _slug(name: str) -> str:
    method, _, model = name.partition(":")
    if model:  # onnx:/models/me-rppg/model.onnx → onnx-me-rppg
        path = Path(model)
        method = f"{method}-{path.parent.name or path.stem}"
    return re.sub(r"[^A-Za-z0-9]+", "-", method).strip("-")[:40] or "method"
