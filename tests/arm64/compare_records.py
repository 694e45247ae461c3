"""Compare two ``vitaledge demo --records`` files: same records, numbers equal within a tolerance.

Usage: ``python tests/arm64/compare_records.py here.jsonl arm64.jsonl [--tol 1e-6]``; exit 0 when equal.
Times (``t_wall``, ``t_mono_ns``, ``window_end_t_mono_ns``) and the run's ``boot_id`` differ between runs by
design and are left out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

_SKIP = {"t_wall", "t_mono_ns", "window_end_t_mono_ns", "boot_id"}


def _diff(a: object, b: object, path: str, tol: float, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in _SKIP:
                _diff(a.get(key), b.get(key), f"{path}.{key}", tol, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", tol, out)
    elif isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
            out.append(f"{path}: {a} != {b}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("here", type=Path)
    parser.add_argument("there", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    here = [json.loads(line) for line in args.here.read_text(encoding="utf-8").splitlines()]
    there = [json.loads(line) for line in args.there.read_text(encoding="utf-8").splitlines()]
    out: list[str] = []
    if len(here) != len(there):
        out.append(f"{len(here)} records here, {len(there)} there")
    for i, (a, b) in enumerate(zip(here, there, strict=False)):
        _diff(a, b, f"record[{i}]", args.tol, out)
    print("\n".join(out[:50]) if out else f"{len(here)} records equal within {args.tol:g}")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
