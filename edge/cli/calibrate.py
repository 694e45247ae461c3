"""``vitaledge calibrate --reference palm|wrist FILE.csv [--json]``: fit T_ref = a + b · T_wristband.

The CSV holds paired readings taken at the same moments, one pair a line::

    wristband_c,reference_c        <- optional header (any first line that is not two numbers)
    33.10,31.95                    <- wristband °C, reference region °C (palm or wrist, by a contact
    33.42,32.30                       thermometer or a calibrated camera)
    # a comment                    <- '#' lines and blank lines are skipped

Comma-separated, two columns, decimal points. A bad line stops the command with an error naming the file
and line. It prints a, b, the mean absolute residual, n, and the YAML to paste under ``thermal:``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from fusion.errors import VitalEdgeError

__all__ = ["CalibrationDataError", "add_parser", "read_pairs", "run"]


class CalibrationDataError(VitalEdgeError):
    """The calibration CSV is missing, malformed or cannot be fitted; the message names file and line."""


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "calibrate",
        help="fit a reference region's regression on the wristband from paired readings",
        description="Least-squares fit of T_ref = a + b * T_wristband from a CSV of paired readings "
        "(columns: wristband °C, reference °C; optional header; '#' comments).",
    )
    parser.add_argument("--reference", required=True, choices=("palm", "wrist"), help="which region the "
                        "second column measures")
    parser.add_argument("csv", type=Path, metavar="FILE.csv", help="paired readings")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def read_pairs(path: Path) -> tuple[list[float], list[float]]:
    """Read (wristband °C, reference °C) pairs from ``path``.

    Raises:
        CalibrationDataError: the file cannot be read, or a line is not two finite numbers (the first
            data line may instead be a header of two non-numbers).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationDataError(f"{path}: cannot read: {exc}") from exc
    xs: list[float] = []
    ys: list[float] = []
    seen_line = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        first, seen_line = not seen_line, True
        if len(fields) != 2:
            raise CalibrationDataError(f"{path}:{number}: expected 2 comma-separated columns "
                                       f"(wristband °C, reference °C), got {len(fields)}: {raw!r}")
        values = [_number(f) for f in fields]
        if first and values[0] is None and values[1] is None:
            continue  # header
        if values[0] is None or values[1] is None:
            bad = fields[0] if values[0] is None else fields[1]
            raise CalibrationDataError(f"{path}:{number}: not a number: {bad!r}")
        x, y = values[0], values[1]
        if not (math.isfinite(x) and math.isfinite(y)):
            raise CalibrationDataError(f"{path}:{number}: values must be finite, got {raw!r}")
        xs.append(x)
        ys.append(y)
    return xs, ys


def run(args: argparse.Namespace) -> int:
    from fusion.offset import fit_regression

    path: Path = args.csv
    reference: str = args.reference
    xs, ys = read_pairs(path)
    if len(xs) < 2:
        raise CalibrationDataError(f"{path}: need at least 2 pairs, found {len(xs)}")
    try:
        a, b, mae = fit_regression(xs, ys)
    except ValueError as exc:
        raise CalibrationDataError(f"{path}: {exc}") from exc
    sd = math.sqrt(math.fsum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True)) / len(xs))
    yaml_snippet = f"thermal:\n  {reference}:\n    a: {a:.4f}\n    b: {b:.4f}\n"
    if args.json:
        print(json.dumps({"reference": reference, "a": round(a, 6), "b": round(b, 6), "mae_c": round(mae, 4),
                          "residual_sd_c": round(sd, 4), "n": len(xs), "yaml": yaml_snippet}))
        return 0
    print(f"{reference}: T_{reference} = a + b * T_wristband, least squares over n = {len(xs)} pairs ({path})")
    print(f"  a   = {a:.4f}")
    print(f"  b   = {b:.4f}")
    print(f"  MAE = {mae:.3f} °C   (residual SD {sd:.3f} °C)")
    print("Paste into the config file (merge with an existing thermal: section):")
    print(yaml_snippet, end="")
    return 0
