"""``vitaledge demo`` as a new user meets it: what reached the broker, and where the overlay is."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli import main
from edge.cli.demo import remove_orphaned_state
from tests.mosquitto import MosquittoBroker


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_without_a_broker_counts_nothing_as_published(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"mqtt://127.0.0.1:{_closed_port()}"
    assert main(["demo", "--fast", "--seconds", "3", "--mqtt", url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] >= 2
    assert (summary["published"], summary["queued"]) == (0, summary["records"])
    assert summary["broker_unreachable"] is True


def test_demo_summary_says_the_broker_was_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"mqtt://127.0.0.1:{_closed_port()}"
    assert main(["demo", "--fast", "--seconds", "3", "--mqtt", url]) == 0
    out = capsys.readouterr().out
    assert "published (acknowledged)   0\n" in out
    assert f"the broker at {url} was unreachable" in out


def test_demo_with_a_broker_counts_every_record_published(
    mosquitto: MosquittoBroker, topic_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["demo", "--fast", "--seconds", "3", "--mqtt", mosquitto.url, "--device-id", topic_prefix, "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] >= 2
    assert (summary["published"], summary["queued"], summary["broker_unreachable"]) == (summary["records"], 0, False)


@pytest.fixture
def _restore_library_log_levels() -> Iterator[None]:
    names = ("transitions", "amqtt", "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("_restore_library_log_levels")
def test_library_chatter_is_quiet_unless_verbose(caplog: pytest.LogCaptureFixture) -> None:
    def library_lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.split(".")[0] in ("transitions", "amqtt")]

    caplog.set_level(logging.DEBUG)  # the root lets everything through: only the libraries' own levels decide
    for name in ("transitions", "amqtt"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    assert main(["demo", "--fast", "--seconds", "2", "--json"]) == 0
    assert [r for r in library_lines() if r.levelno < logging.WARNING] == []
    caplog.clear()
    assert main(["--verbose", "demo", "--fast", "--seconds", "2", "--json"]) == 0
    assert any(r.levelno < logging.WARNING for r in library_lines())  # --verbose shows them


def test_demo_header_names_the_overlay_it_serves(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.web.overlay")
    assert main(["demo", "--fast", "--seconds", "2", "--overlay-port", "0", "--json"]) == 0
    served = [r.args[0] for r in caplog.records if r.name == "edge.web.overlay" and r.msg == "overlay: %s"]
    assert len(served) == 1 and isinstance(served[0], str) and not served[0].endswith(":0/")
    header = capsys.readouterr().err.splitlines()[0]
    assert header.startswith(f"vitaledge demo — overlay {served[0]} "), header


def test_demo_measures_the_heart_rate_through_the_privacy_lens(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--fast", "--seconds", "24", "--privacy", "lens", "--lensed-heart-rate", "--overlay-port", "0"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["privacy"], summary["heart_rate_input"]) == ("lens", "lensed")
    # The face is found on the lensed frames and the pulse survives: rates near the rig's truth (a lost
    # face gives none, a wrong lock tens of bpm off).
    assert summary["hr_records"] >= 1
    assert summary["hr_mae_bpm"] < 10


def test_demo_refuses_a_lensed_heart_rate_without_a_lens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--fast", "--seconds", "2", "--lensed-heart-rate"]) == 2
    assert "--lensed-heart-rate needs --privacy" in capsys.readouterr().err


def test_a_killed_demos_folder_is_removed_by_the_next(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = tmp_path / f"vitaledge-demo-{gone.pid}-abc"
    (orphan).mkdir()
    (orphan / "outbox.sqlite").write_bytes(b"x")
    running = tmp_path / f"vitaledge-demo-{os.getpid()}-def"
    running.mkdir()
    other = tmp_path / "vitaledge-demo-unrelated"
    other.mkdir()
    assert remove_orphaned_state(tmp_path) == [orphan]
    assert not orphan.exists() and running.is_dir() and other.is_dir()
