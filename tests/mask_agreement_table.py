"""The README's region-mask agreement table: ``PYTHONPATH=. python -m tests.mask_agreement_table [--coverage 20]``.

Three settings of the generator in ``tests.mask_raters`` (4 raters, 12 images of 120×160, smoothed fields,
seed 0; mu ~ N(-1, 1) per image so extents vary), written as PNG folders and scored by ``vitaledge eval
masks`` in-process; the true latent ICC beside the estimates. ``--coverage N``: how often the latent ICC's
95 % CI holds the true ICC over N images drawn from the model exactly (i.i.d. pixels, 100×150, rater
effects drawn, seeds 0..N-1).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edge.evaluation.masks import evaluate, summarise
from fusion.agreement_latent import latent_icc
from tests.mask_raters import latent_masks, true_icc

SETTINGS = {"high": (5.0, 0.3), "moderate": (2.0, 0.5), "poor": (0.7, 0.7)}  # sigma_pixel, sigma_rater


def table(images: int = 12) -> str:
    rows = ["| setting | σ_pixel, σ_rater | true latent ICC | latent ICC | ICC(2,1) | alpha | area ICC 10 / 15 / 20 "
            "| extent ICC [95 % CI] | raters for 0.9 (latent) |", "|" + "---|" * 9]
    for label, (sp, sr) in SETTINGS.items():
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp:
            dirs = [Path(tmp) / f"r{j}" for j in range(4)]
            for d in dirs:
                d.mkdir()
            for i in range(images):
                mu = float(rng.normal(-1.0, 1.0))
                m = latent_masks(rng, (120, 160), sigma_pixel=sp, sigma_rater=sr, mu=mu, smooth_px=4.0)
                for j, d in enumerate(dirs):
                    cv2.imwrite(str(d / f"img{i:02d}.png"), m[j].astype(np.uint8) * 255)
            names, results, _ = evaluate(dirs)
            rep = summarise(names, results)
        area = " / ".join(f"{rep['icc_area'][d]:.2f}" for d in ("10", "15", "20"))
        ci = rep["icc_extent_ci"]
        rows.append(
            f"| {label} | {sp}, {sr} | {true_icc(sp, sr):.2f} | {rep['icc_pixel_latent_mean']:.2f} ± "
            f"{rep['icc_pixel_latent_se']:.2f} | {rep['icc_pixel_mean']:.2f} ± {rep['icc_pixel_se']:.2f} | "
            f"{rep['alpha_pixel_mean']:.2f} ± {rep['alpha_pixel_se']:.2f} | {area} | "
            f"{rep['icc_extent']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] | "
            f"{rep['spearman_brown']['icc_pixel_latent']['raters_for_0.9']} |")
    return "\n".join(rows)


def coverage(n: int, sigma_p: float = 2.0, sigma_r: float = 0.6) -> dict[str, float]:
    hits = 0
    for seed in range(n):
        y = latent_masks(np.random.default_rng(seed), (100, 150), sigma_pixel=sigma_p, sigma_rater=sigma_r)
        fit = latent_icc(y.reshape(4, -1))
        hits += fit.ci is not None and fit.ci[0] <= true_icc(sigma_p, sigma_r) <= fit.ci[1]
    return {"simulations": n, "covered": hits, "true_icc": round(true_icc(sigma_p, sigma_r), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coverage", type=int, default=0)
    args = parser.parse_args()
    print(table())
    if args.coverage:
        print(json.dumps(coverage(args.coverage)))


if __name__ == "__main__":
    main()
