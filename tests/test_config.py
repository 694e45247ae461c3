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
        (lambda d: d.update(mqtt={"url": "http://x"}), "mqtt.url", "mqtt://"),
        (lambda d: d.update(mqtt={"url": "mqtt://127.0.0.1:notaport"}), "mqtt.url", "port must be a number"),
        (lambda d: d.update(mqtt={"url": "mqtt://127.0.0.1:70000"}), "mqtt.url", "from 1 to 65535"),
        (lambda d: d.update(mqtt={"url": "mqtt://127.0.0.1:0"}), "mqtt.url", "from 1 to 65535"),
        (lambda d: d.update(mqtt={"url": "mqtt://:1883"}), "mqtt.url", "has no host: 'mqtt://:1883'"),
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


@pytest.mark.parametrize("url", ["mqtt://broker.lan", "mqtts://broker.lan:8883", "mqtt://[::1]:1883", "mqtt://h:65535"])
def test_a_whole_mqtt_url_is_accepted(url: str) -> None:
    assert load_config(None, {**_minimal(), "mqtt": {"url": url}}).mqtt.url == url


def test_our_own_rules_read_without_pydantics_prefix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**_minimal(), "heart_rate": {"method": "onnx"}})
    assert str(caught.value) == "configuration: heart_rate: method 'onnx' needs 'model' (path to the .onnx file)"


def test_an_error_from_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "device_id: lab-1\n")
    monkeypatch.setenv("VITALEDGE_MQTT__QOS", "5")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith("environment variable VITALEDGE_MQTT__QOS: mqtt.qos: "), caught.value
    assert str(path) not in str(caught.value)
    monkeypatch.delenv("VITALEDGE_MQTT__QOS")
    monkeypatch.setenv("VITALEDGE_MQTT__USERNAME", "u")  # a rule over the section, set from below
    with pytest.raises(ConfigError, match=r"^environment variable VITALEDGE_MQTT__USERNAME: mqtt: "):
        load_config(path)


def test_a_file_error_still_names_the_file_while_the_environment_sets_other_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "device_id: lab-1\nmqtt:\n  qos: 7\n")
    monkeypatch.setenv("VITALEDGE_MQTT__KEEPALIVE_S", "60")
    with pytest.raises(ConfigError, match=rf"^{path}: mqtt.qos: "):
        load_config(path)


def test_malformed_sources_in_the_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALEDGE_SOURCES", "[{kind: x")
    with pytest.raises(ConfigError, match=r"^environment variable VITALEDGE_SOURCES: sources: not valid JSON"):
        load_config(None)


def test_files_the_configuration_names_are_checked_and_named(tmp_path: Path) -> None:
    from edge.preflight import check_files

    present = tmp_path / "TEMP.csv"
    present.write_text("0\n1\n")
    cases = [
        ({"sources": [{"kind": "flir-jpeg", "path": str(tmp_path / "no.jpg")}]}, "sources.0.flir-jpeg.path", "no.jpg"),
        ({"sources": [{"kind": "e4-csv", "path": str(tmp_path / "TEMP2.csv")}]}, "sources.0.e4-csv.path", "TEMP2.csv"),
        ({"sources": [{"kind": "video-file", "path": str(tmp_path / "v.avi")}]}, "sources.0.video-file.path", "v.avi"),
        ({"heart_rate": {"method": "onnx", "model": str(tmp_path / "hr.onnx")}}, "heart_rate.model", "hr.onnx"),
        (
            {"heart_rate": {"greyscale": {"colouriser": str(tmp_path / "col.onnx")}}},
            "heart_rate.greyscale.colouriser",
            "col.onnx",
        ),
        ({"mqtt": {"username": "u", "password_file": str(tmp_path / "pw")}}, "mqtt.password_file", "pw"),
    ]
    for change, key, name in cases:
        cfg = load_config(None, {"sources": [{"kind": "e4-csv", "path": str(present)}], **change})
        with pytest.raises(ConfigError) as caught:
            check_files(cfg, "site.yaml")
        assert str(caught.value) == f"site.yaml: {key}: no such file: {tmp_path / name}"
    check_files(load_config(None, {"sources": [{"kind": "e4-csv", "path": str(present)}]}), "site.yaml")


def test_run_check_config_fails_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    path = _write(tmp_path, f"sources:\n  - {{kind: flir-jpeg, path: {tmp_path / 'nothere.jpg'}}}\n")
    assert main(["run", "--config", str(path), "--check-config"]) == 2
    assert f"sources.0.flir-jpeg.path: no such file: {tmp_path / 'nothere.jpg'}" in capsys.readouterr().err


def test_run_without_a_config_file_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edge.config
    from edge.cli import main

    monkeypatch.setattr(edge.config, "DEFAULT_CONFIG", tmp_path / "etc.yaml")
    monkeypatch.delenv("VITALEDGE_CONFIG", raising=False)
    assert main(["run", "--check-config"]) == 2
    err = capsys.readouterr().err
    assert "no configuration file found" in err and "$VITALEDGE_CONFIG" in err and str(tmp_path / "etc.yaml") in err


def test_greyscale_settings_are_validated_with_their_key_path() -> None:
    cfg = load_config(None, {"sources": [{"kind": "synthetic"}], "heart_rate": {"greyscale": {"detector": "haar"}}})
    assert cfg.heart_rate.greyscale.detector == "haar" and cfg.heart_rate.greyscale.clahe
    for change, key in (
        ({"detector": "yolo"}, "heart_rate.greyscale.detector"),
        ({"clahe_clip_limit": 0}, "heart_rate.greyscale.clahe_clip_limit"),
        ({"colourize": "x.onnx"}, "heart_rate.greyscale.colourize"),
    ):
        with pytest.raises(ConfigError, match=rf"{key}"):
            load_config(None, {"sources": [{"kind": "synthetic"}], "heart_rate": {"greyscale": change}})


def test_the_trackers_look_ahead_defaults_to_3_s_on_raw_video_and_6_s_on_lensed_unless_set() -> None:
    cfg = load_config(None, {"privacy": {"mode": "lens"}, "heart_rate": {"input": "lensed"}})
    assert cfg.heart_rate.tracker is not None
    assert cfg.heart_rate.tracker.settings(1.0).lag_steps == 3
    assert cfg.heart_rate.tracker.settings(1.0, lensed=True).lag_steps == 6
    assert cfg.heart_rate.tracker.settings(0.5, lensed=True).lag_steps == 12
    pinned = load_config(
        None, {"heart_rate": {"input": "lensed", "tracker": {"lag_s": 2}}, "privacy": {"mode": "lens"}}
    )
    assert pinned.heart_rate.tracker is not None
    assert pinned.heart_rate.tracker.settings(1.0, lensed=True).lag_steps == 2


def test_the_pulse_method_defaults_to_fused_on_raw_video_and_pos_on_lensed_unless_set(tmp_path: Path) -> None:
    lens = {"privacy": {"mode": "lens"}}
    assert load_config(None, {}).heart_rate.pulse_method == "fused"
    assert load_config(None, {**lens, "heart_rate": {"input": "lensed"}}).heart_rate.pulse_method == "pos"
    chrom = load_config(None, {**lens, "heart_rate": {"input": "lensed", "method": "chrom"}})
    assert chrom.heart_rate.pulse_method == "chrom"
    # A model set without a method is fused with the classical estimators, through a lens too.
    model = load_config(None, {**lens, "heart_rate": {"input": "lensed", "model": str(tmp_path / "m.onnx")}})
    assert model.heart_rate.pulse_method == "fused"


def test_the_lensed_pipeline_runs_pos_alone_by_default() -> None:
    from edge.build import build_heart_rate_pipeline
    from edge.privacy import build_lensing

    cfg = load_config(None, {"privacy": {"mode": "lens"}, "heart_rate": {"input": "lensed"}})
    pipeline = build_heart_rate_pipeline(cfg.heart_rate, 30.0, lensing=build_lensing("lens", seed=0))
    assert pipeline.method == "pos"
    raw = build_heart_rate_pipeline(load_config(None, {}).heart_rate, 30.0)
    assert raw.method == "pos+chrom"
