"""``vitaledge demo`` as a new user meets it: what reached the broker, and where the overlay is."""

from __future__ import annotations

import json
import socket

import pytest

from edge.cli import main
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
