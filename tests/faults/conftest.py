"""The fault suite reports, per scenario, records accepted vs delivered (by boot id and seq)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.faults.harness import Tally

_TALLIES: list[Tally] = []


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Tally]]:
    made: list[Tally] = []

    def make(scenario: str) -> Tally:
        made.append(Tally(scenario))
        return made[-1]

    yield make
    _TALLIES.extend(made)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TALLIES:
        terminalreporter.section("faults: records accepted vs delivered")
        for t in _TALLIES:
            terminalreporter.line(t.line())
