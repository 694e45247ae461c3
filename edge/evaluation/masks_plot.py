"""The figure of ``vitaledge eval masks --plot``: per-image ICC and alpha, and the worst and best image."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fusion.agreement import ImageAgreement, consensus

__all__ = ["plot"]

_Mask = npt.NDArray[np.bool_]


def plot(out: Path, images: list[ImageAgreement],
         load: Callable[[str], tuple[_Mask, _Mask | None]]) -> None:
    """Per-image pixel ICC(2,1), latent ICC and alpha, sorted, with the 0.5 ("poor") and 0.9 ("excellent")
    lines; and the consensus of the worst and the best image (by ICC(2,1)) over the share of raters marking each
    pixel.

    Args:
        out: the PNG to write.
        images: per-image results.
        load: image name → (R×H×W masks, skin mask or None).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4.5), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=(2, 1, 1))
    ax = fig.add_subplot(grid[0])
    order = sorted(images, key=lambda im: im.icc_pixel if math.isfinite(im.icc_pixel) else -math.inf)
    x = np.arange(len(order))
    ax.plot(x, [im.icc_pixel for im in order], "o-", ms=3, label="ICC(2,1)")
    ax.plot(x, [im.latent.icc for im in order], "s", ms=3, label="ICC latent")
    ax.plot(x, [im.alpha_pixel for im in order], "^", ms=3, label="Krippendorff α")
    ax.axhline(0.5, color="tab:red", ls="--", lw=1, label="poor (0.5)")
    ax.axhline(0.9, color="tab:green", ls="--", lw=1, label="excellent (0.9)")
    ax.set(xlabel="image (sorted by ICC(2,1))", ylabel="agreement", ylim=(min(-0.05, ax.get_ylim()[0]), 1.05))
    ax.legend(fontsize=8, loc="lower right")
    scored = [im for im in order if math.isfinite(im.icc_pixel)] or order
    for slot, (title, im) in enumerate((("worst", scored[0]), ("best", scored[-1]))):
        masks, skin = load(im.name)
        share = masks.mean(axis=0)
        if skin is not None:
            share = np.where(skin, share, np.nan)
        panel = fig.add_subplot(grid[slot + 1])
        shown = panel.imshow(share, cmap="viridis", vmin=0, vmax=1)
        panel.contour(consensus(masks), levels=[0.5], colors="white", linewidths=1)
        panel.set_title(f"{title}: {im.name}\nICC {im.icc_pixel:.2f}, α {im.alpha_pixel:.2f}", fontsize=9)
        panel.set_axis_off()
    fig.colorbar(shown, ax=fig.axes[1:], shrink=0.7, label="share of raters (white: consensus)")
    fig.savefig(out, dpi=100)
    plt.close(fig)
