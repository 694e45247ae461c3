"""Benchmark: the self-supervised pulse model, general and personalised, held out clip by clip.

Protocol (written before any score was seen):

- **General** models are trained on another dataset than the one scored, so no scored clip (or any
  clip of its dataset) is ever seen: for UBFC, a model trained on the India skin patches (MIT, so it
  may ship); for the India subjects, a model trained on the seven UBFC clips. Both without labels.
- **Personalised** (the seed's protocol): for each scored clip (UBFC) or subject (India, all its
  regions), the general model is trained on for a few minutes on that clip's own video, without its
  labels, and scored on that clip. Labels are only ever read by ``vitaledge eval rppg``.
- Heart-rate settings for UBFC are chosen per fold on the other clips (``--folds leave-one-out``);
  India is scored whole-clip per subject (no setting to choose).
- Step counts, not wall minutes, fix each training (the machine is shared; minutes would vary).

It runs the commands a user runs (``vitaledge train rppg``, ``vitaledge eval rppg``) and prints the
table. Hours of CPU: not part of ``make bench``'s default run (it says so and exits without models).

    .venv/bin/python tests/bench/rppg_training_loo.py --ubfc-general general-india.onnx \\
        --india-general general-ubfc.onnx --personal-steps 60 --out /tmp/loo [--json] [--teacher ME.onnx]

With ``--teacher`` each personalisation is taught by that model on the clip's own video (as
``vitaledge train rppg --teacher``), still without labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
VITALEDGE = [sys.executable, "-m", "edge.cli"]
UBFC = ("subject3", "subject4", "subject5", "subject9", "subject10", "subject12", "subject13")


def _run(args: list[str]) -> str:
    t0 = time.perf_counter()
    done = subprocess.run([*VITALEDGE, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print(f"  {' '.join(args[:2])} … {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return done.stdout


def _eval_json(args: list[str]) -> dict[str, Any]:
    return dict(json.loads(_run(["eval", "rppg", *args, "--json"]).strip().splitlines()[-1]))


def _mean(values: Any) -> float | None:
    known = [float(v) for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


def _personalise(
    general: Path, videos: list[Path], out: Path, steps: int, dataset: str, teacher: Path | None = None
) -> Path:
    if not out.exists():
        taught = ["--teacher", str(teacher)] if teacher is not None else []
        _run(["train", "rppg", *map(str, videos), "--init", str(general), "--out", str(out), "--steps", str(steps),
              "--dataset", dataset, "--cache", str(out.parent / "cache"), *taught])
    return out


def ubfc(general: Path, out: Path, steps: int, teacher: Path | None = None) -> dict[str, Any]:
    dirs = [SHARED / "ubfc" / name for name in UBFC]
    general_run = _eval_json([*map(str, dirs), "--method", "onnx", "--model", str(general), "--folds", "leave-one-out"])
    # Personalised clips are scored one at a time with the default settings, so the general model is set
    # beside them as published (defaults); its leave-one-out-settings figure is reported too.
    per_clip_general = {c["name"]: c["mae_bpm"] for c in general_run["as_published"]["clips"]}
    personal: dict[str, float | None] = {}
    for folder in dirs:
        personal_out = out / f"personal-{folder.name}.onnx"
        model = _personalise(general, [folder / "vid.mp4"], personal_out, steps, "ubfc", teacher)
        scored = _eval_json([str(folder), "--method", "onnx", "--model", str(model)])
        personal[folder.name] = scored["mae_bpm"]
    known = [v for v in personal.values() if v is not None]
    return {
        "general_loo_settings_mae_bpm": general_run["mae_bpm"],
        "general_mae_bpm": general_run["as_published"]["mae_bpm"],
        "general_mean_clip_mae_bpm": _mean(per_clip_general.values()),
        "personalised_mean_clip_mae_bpm": _mean(known),
        "clips": {name: {"general": per_clip_general.get(name), "personalised": personal[name]} for name in personal},
    }


def india(general: Path, out: Path, steps: int, teacher: Path | None = None) -> dict[str, Any]:
    folder = SHARED / "skin-patches" / "India"
    general_run = _eval_json(["--dataset", "skin-patches", str(folder), "--method", "onnx", "--model", str(general)])
    with (folder / "ground_truth.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    personal: dict[str, float | None] = {}
    for subject in general_run["subjects"]:
        name = subject["name"]
        clips = sorted(folder.glob(f"{name}_*.avi"))
        model = _personalise(general, clips, out / f"personal-{name}.onnx", steps, "skin-patches", teacher)
        one = out / f"india-{name}"  # the subject alone, in the dataset's own layout
        one.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            if not (one / clip.name).exists():
                (one / clip.name).symlink_to(clip)
        with (one / "ground_truth.csv").open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([rows[0], *(r for r in rows[1:] if r and r[0].strip() == name)])
        scored = _eval_json(["--dataset", "skin-patches", str(one), "--method", "onnx", "--model", str(model)])
        personal[name] = scored["subjects"][0]["error_bpm"]
    errors = [abs(e) for e in personal.values() if e is not None]  # None: the model gave no rate at all
    return {
        "general_mae_bpm": general_run["mae_bpm"],
        "personalised_mae_bpm": round(sum(errors) / len(errors), 2) if errors else None,
        "subjects": {s["name"]: {"general": s["error_bpm"], "personalised": personal[s["name"]]}
                     for s in general_run["subjects"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ubfc-general", type=Path, help="general model trained without any UBFC clip")
    parser.add_argument("--india-general", type=Path, help="general model trained without any India clip")
    parser.add_argument("--personal-steps", type=int, default=60, help="training steps of each personalisation")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vitaledge-loo"))
    parser.add_argument("--teacher", type=Path, help="personalise with this teacher (as the general model was trained)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.ubfc_general is None and args.india_general is None:
        print("rppg_training_loo: skipped (hours of CPU): give --ubfc-general and/or --india-general models")
        return 0
    if not SHARED.is_dir():
        print(f"rppg_training_loo: skipped: no data at {SHARED}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"personal_steps": args.personal_steps}
    teacher = args.teacher.resolve() if args.teacher is not None else None
    if args.ubfc_general is not None:
        report["ubfc"] = ubfc(args.ubfc_general.resolve(), args.out.resolve(), args.personal_steps, teacher)
    if args.india_general is not None:
        report["india"] = india(args.india_general.resolve(), args.out.resolve(), args.personal_steps, teacher)
    if args.json:
        print(json.dumps(report))
        return 0
    for dataset in ("ubfc", "india"):
        if dataset in report:
            r = report[dataset]
            print(f"{dataset}: {json.dumps({k: v for k, v in r.items() if k not in ('clips', 'subjects')})}")
            for name, v in r.get("clips", r.get("subjects", {})).items():
                print(f"  {name:12s} general {v['general']}  personalised {v['personalised']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
