"""onnxruntime only where it is needed: without it the default pipeline runs, and an ONNX model says what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs in a child interpreter where ``import onnxruntime`` raises ImportError (a sys.modules entry of None),
# as on a Pi whose wheel is missing or broken.
_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["onnxruntime"] = None
    from drivers.synthetic import SimulatedRig
    from edge.build import build_fusion
    from edge.config import load_config
    from fusion.errors import ConfigError

    cfg = load_config(None, {"sources": [{"kind": "synthetic", "name": "rig", "realtime": False}]})
    fusion = build_fusion(cfg)
    records = []
    for sample in SimulatedRig(realtime=False).stream(3.0):
        records += fusion.push(sample)
    assert "onnxruntime" not in {m for m, mod in sys.modules.items() if mod is not None}
    print("records", len(records), "temperature", records[-1].thermal.face_corrected_c is not None)
    onnx_cfg = load_config(
        None,
        {"sources": [{"kind": "synthetic", "name": "rig"}], "heart_rate": {"method": "onnx", "model": sys.argv[1]}},
    )
    try:
        build_fusion(onnx_cfg)
    except ConfigError as exc:
        print("error", exc)
    """
)


def test_without_onnxruntime_the_default_pipeline_runs_and_onnx_gives_a_clear_error(tmp_path: Path) -> None:
    model = tmp_path / "ppg.onnx"
    model.write_bytes(b"not read: the import fails first")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(model)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "records 2 temperature True"  # POS and the thermal path ran, records were cut
    error = lines[1]
    assert error.startswith("error heart_rate.model: onnxruntime "), error
    assert "cannot be imported" in error and 'pip install "onnxruntime>=1.20,<1.25"' in error


@pytest.mark.parametrize("key", ["heart_rate.model"])
def test_the_advice_names_the_range_the_project_pins(key: str) -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"onnxruntime>=1.20,<1.25"' in pyproject, "pyproject's pin and the error's advice must agree"
