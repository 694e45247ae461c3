"""Disk-backed outbox: every record is stored before it is published and deleted on PUBACK.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives a crash or a kill of the app
(not necessarily a power cut mid-write). Bounded by rows, payload bytes and age; the oldest rows go
first and every eviction is counted. Used from the event-loop thread only; each call is one short
transaction (well under a millisecond on a laptop at the 1 Hz record rate).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxRow", "default_outbox_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    created_s REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_s);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def default_outbox_path(device_id: str) -> Path:
    """Where the outbox lives when the config does not say: systemd's StateDirectory, else XDG state.

    Args:
        device_id: the configured device id (one file per device).

    Returns:
        ``$STATE_DIRECTORY/outbox-<id>.sqlite`` under systemd, else ``~/.local/state/vitaledge/...``.
    """
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        base = Path(state.split(":")[0])
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "vitaledge"
    return base / f"outbox-{device_id}.sqlite"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored record: ``id`` orders rows (oldest first), ``payload`` is the JSON wire form."""

    id: int
    seq: int
    created_s: float  # unix seconds when it was accepted
    payload: bytes


class Outbox:
    """A bounded, persistent FIFO of published-to-be records.

    Args:
        path: the SQLite file (its folder is created); ``":memory:"`` for a volatile one.
        max_rows: keep at most this many rows; the oldest beyond it are evicted.
        max_bytes: keep at most this many payload bytes.
        max_age_s: evict rows older than this.
        clock: unix seconds; injectable for tests.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = 200_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._db = sqlite3.connect(str(path), isolation_level=None)  # autocommit; explicit BEGIN below
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._rows = 0
        self._bytes = 0
        self._resync()
        self.evicted = 0  # rows dropped by the bounds (never published)
        # Rows up to this id were accepted by an earlier run of the app: never live, however young.
        self.inherited_up_to_id = self.last_id()

    def _resync(self) -> None:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows = int(count)
        self._bytes = int(size)

    # --- writing ---------------------------------------------------------------------------------

    def put(self, seq: int, payload: bytes) -> int:
        """Store one record (committed before this returns) and enforce the bounds.

        Args:
            seq: the record's sequence number.
            payload: its JSON wire form.

        Returns:
            The row id, which orders rows oldest first.
        """
        now = self._clock()
        try:
            row_id = self._insert(seq, payload, now)
        except sqlite3.Error:
            self._resync()  # the transaction rolled back: recount rather than trust the counters
            raise
        return row_id

    def _insert(self, seq: int, payload: bytes, now: float) -> int:
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO outbox (seq, created_s, payload) VALUES (?, ?, ?)", (seq, now, payload)
            )
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                (seq,),
            )
            self._rows += 1
            self._bytes += len(payload)
            self._enforce_bounds(now)
        row_id = cur.lastrowid
        assert row_id is not None  # an INSERT always sets it
        return row_id

    def remove(self, row_id: int) -> None:
        """Delete a row once the broker has acknowledged it (no-op if it was already evicted)."""
        with self._transaction():
            cur = self._db.execute("DELETE FROM outbox WHERE id = ? RETURNING LENGTH(payload)", (row_id,))
            gone = cur.fetchone()
        if gone is not None:
            self._rows -= 1
            self._bytes -= int(gone[0])

    def _enforce_bounds(self, now: float) -> None:
        evicted = self._db.execute(
            "DELETE FROM outbox WHERE created_s < ? RETURNING LENGTH(payload)", (now - self.max_age_s,)
        ).fetchall()
        self._forget(evicted)
        if self._rows > self.max_rows:
            evicted = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) "
                "RETURNING LENGTH(payload)",
                (self._rows - self.max_rows,),
            ).fetchall()
            self._forget(evicted)
        while self._bytes > self.max_bytes and self._rows > 1:
            evicted = self._db.execute(
                "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox) RETURNING LENGTH(payload)"
            ).fetchall()
            self._forget(evicted)

    def _forget(self, evicted: list[tuple[int]]) -> None:
        self._rows -= len(evicted)
        self._bytes -= sum(int(n) for (n,) in evicted)
        self.evicted += len(evicted)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # --- reading ---------------------------------------------------------------------------------

    def rows(self, *, after_id: int = 0, up_to_id: int | None = None, limit: int = 100) -> list[OutboxRow]:
        """The oldest rows with ``after_id < id <= up_to_id``, oldest first."""
        upper = up_to_id if up_to_id is not None else 2**63 - 1
        found = self._db.execute(
            "SELECT id, seq, created_s, payload FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after_id, upper, limit),
        ).fetchall()
        return [OutboxRow(int(i), int(s), float(c), bytes(p)) for i, s, c, p in found]

    def last_id(self) -> int:
        """The newest row id ever assigned (0 when none): rows up to it exist now or were handled."""
        found = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(found[0]) if found else 0

    def last_id_before(self, created_s: float) -> int:
        """The newest row id among rows accepted before ``created_s`` (0 when none)."""
        found = self._db.execute("SELECT MAX(id) FROM outbox WHERE created_s < ?", (created_s,)).fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def last_seq(self) -> int | None:
        """The highest record ``seq`` ever accepted, kept across restarts (None for a new outbox)."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        return int(found[0]) if found else None

    @property
    def depth(self) -> int:
        """Rows waiting for a PUBACK."""
        return self._rows

    @property
    def size_bytes(self) -> int:
        """Payload bytes waiting."""
        return self._bytes

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
