"""``vitaledge flir-constants PHOTO.jpg``: a FLIR unit's Planck constants as YAML for the flirone config.

The FLIR ONE does not send its calibration over USB, but every radiometric photo its phone app saves
carries it in the camera-info record. Print it ready to paste under the ``flirone`` source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "constants_yaml", "run"]

SKIN_EMISSIVITY = 0.98


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "flir-constants", help="print a FLIR unit's Planck constants (from a radiometric photo) as config YAML"
    )
    parser.add_argument("photo", type=Path, help="a radiometric JPEG saved by the FLIR ONE app of this unit")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of YAML")
    parser.set_defaults(func=run)


def constants_yaml(photo: Path) -> tuple[str, dict[str, object]]:
    """The ``planck:`` block for ``photo``'s unit (YAML text with comments, and the same as a dict).

    Emissivity is set to skin's 0.98 and the reflected temperature is the photo's; the comment keeps
    the photo's own emissivity.

    Raises:
        OSError: the photo cannot be read.
        DecodeError: it is not a radiometric FLIR JPEG.
    """
    import yaml

    from drivers.flir_jpeg import read_radiometric_jpeg

    p = read_radiometric_jpeg(photo).planck
    block: dict[str, object] = {
        "r1": p.r1,
        "r2": p.r2,
        "b": p.b,
        "f": p.f,
        "o": p.o,
        "emissivity": SKIN_EMISSIVITY,
        "reflected_c": round(p.reflected_c, 3),
        "provenance": f"camera-info record of {photo.name}",
    }
    body = yaml.safe_dump({"planck": block}, sort_keys=False, default_flow_style=False)
    header = (
        f"# Planck constants of the FLIR unit that took {photo.name}; paste under its flirone source.\n"
        f"# emissivity: skin's {SKIN_EMISSIVITY} (the photo used {p.emissivity:.3g}).\n"
    )
    return header + body, block


def run(args: argparse.Namespace) -> int:
    text, block = constants_yaml(args.photo)
    print(json.dumps({"planck": block}, indent=2) if args.json else text, end="" if not args.json else "\n")
    return 0
