"""Fixtures shared by the whole suite: the real test data folder and a real Mosquitto broker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import MosquittoBroker, mosquitto_binary

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default outboxes (and apps the tests start, which inherit the environment) stay out of ~/.local."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (see the README: ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port for one test."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed; `make test` installs it")
    with MosquittoBroker() as broker:
        yield broker


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A device id unique to the test, so topics never collide between tests."""
    return re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:48]
