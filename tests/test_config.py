"""Config rules: one minimal valid dict, then one failing variant per rule, each naming its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config import load_config
from fusion.errors import ConfigError


def _minimal() -> dict[str, Any]:
    return {"device_id": "lab-1", "sources": [{"kind": "synthetic", "name": "rig"}]}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vitaledge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_is_valid_with_paper_defaults() -> None:
    cfg = load_config(None, _minimal())
    assert cfg.device_id == "lab-1"
    assert cfg.sources[0].kind == "synthetic"
    assert (cfg.thermal.palm.a, cfg.thermal.palm.b) == (-1.4485, 1.0103)
    assert (cfg.thermal.wrist.a, cfg.thermal.wrist.b) == (15.6850, 0.5418)
    assert cfg.thermal.wristband_window_s == 60.0
    assert cfg.mqtt.url is None and cfg.mqtt.qos == 1


@pytest.mark.parametrize(
    ("change", "key_path", "reason"),
    [
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["sources"][0].update(sed=3), "sources.0.synthetic.sed", "unknown key"),
        (lambda d: d.update(device_id="Lab 1"), "device_id", "pattern"),
        (lambda d: d["sources"].append({"kind": "synthetic", "name": "rig"}), "(top level)", "unique"),
        (lambda d: d["sources"].append({"kind": "teleporter"}), "sources.1", "does not match"),
        (lambda d: d.update(mqtt={"qos": 3}), "mqtt.qos", "less than or equal to 2"),
        (lambda d: d.update(mqtt={"username": "u"}), "mqtt", "together"),
        (lambda d: d.update(mqtt={"url": "http://x"}), "mqtt", "mqtt://"),
        (lambda d: d.update(heart_rate={"method": "onnx"}), "heart_rate", "needs 'model'"),
        (lambda d: d.update(heart_rate={"window_s": 2}), "heart_rate.window_s", "greater than or equal"),
        (lambda d: d.update(thermal={"reference": "ear"}), "thermal.reference", "'palm', 'wrist' or 'fused'"),
    ],
)
def test_each_rule_names_its_key(change: Any, key_path: str, reason: str) -> None:
    data = _minimal()
    change(data)
    with pytest.raises(ConfigError) as caught:
        load_config(None, data)
    message = str(caught.value)
    assert f": {key_path}: " in message, message
    assert reason in message, message


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "device_id: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    path = _write(tmp_path, "device_id: lab-1\nmqtt:\n  qos: 1\n  colour: red\n")
    with pytest.raises(ConfigError, match=rf"^{path}: mqtt.colour: unknown key$"):
        load_config(path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "device_id: lab-1\nmqtt:\n  qos: 1\n")
    monkeypatch.setenv("VITALEDGE_MQTT__QOS", "2")
    monkeypatch.setenv("VITALEDGE_DEVICE_ID", "lab-2")
    cfg = load_config(path)
    assert cfg.mqtt.qos == 2 and cfg.device_id == "lab-2"


def test_secret_is_never_echoed_in_errors() -> None:
    data = _minimal()
    data["mqtt"] = {"username": "u", "password": "hunter2", "password_file": "/run/secret"}
    with pytest.raises(ConfigError) as caught:
        load_config(None, data)
    assert "hunter2" not in str(caught.value)
    cfg = load_config(None, {**_minimal(), "mqtt": {"username": "u", "password": "hunter2"}})
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())


def test_a_camera_index_may_be_written_as_a_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "device_id: lab-1\nsources:\n  - {kind: webcam, device: 0}\n"
                            "  - {kind: uvc-thermal, model: p2pro, device: 2}\n")
    webcam, thermal = load_config(path).sources
    assert (webcam.device, thermal.device) == ("0", "2")  # type: ignore[union-attr]  # both have `device`
    with pytest.raises(ConfigError, match=r"sources\.0\.webcam\.device"):
        load_config(None, {**_minimal(), "sources": [{"kind": "webcam", "device": True}]})


def test_config_path_order_is_flag_then_env_then_system_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.config

    system = tmp_path / "etc.yaml"
    monkeypatch.setattr(edge.config, "DEFAULT_CONFIG", system)
    monkeypatch.delenv("VITALEDGE_CONFIG", raising=False)
    assert edge.config.config_path(None) is None  # no system file: built-in defaults
    system.write_text("device_id: from-etc\n")
    assert edge.config.config_path(None) == system
    monkeypatch.setenv("VITALEDGE_CONFIG", str(tmp_path / "env.yaml"))
    assert edge.config.config_path(None) == tmp_path / "env.yaml"
    assert edge.config.config_path(tmp_path / "flag.yaml") == tmp_path / "flag.yaml"


def test_record_reads_the_system_config_like_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edge.config
    from edge.cli import main

    system = tmp_path / "etc.yaml"
    system.write_text("device_id: from-etc\nsources: []\n")
    monkeypatch.setattr(edge.config, "DEFAULT_CONFIG", system)
    monkeypatch.delenv("VITALEDGE_CONFIG", raising=False)
    assert main(["record", str(tmp_path / "session"), "--seconds", "1"]) == 2
    assert f"{system}: sources: nothing to record" in capsys.readouterr().err
