"""Disk-backed outbox: every record is stored before it is published and deleted on PUBACK.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives a crash or a kill of the app
(not necessarily a power cut mid-write). ``seq`` is never reused, even after a power cut: numbers are
reserved in blocks by a fully synced write; when the machine rebooted since the last open (only then can
committed rows be gone) numbering resumes past the reserved block (a gap at a new boot id, never a repeat).
Age is measured on the monotonic clock, anchored to the wall clock once at open,
so a clock jump (NTP on a Pi with no RTC) neither empties nor freezes the outbox.
Bounded by rows, payload bytes and age; the oldest rows go first and every eviction is counted.
Used from the event-loop thread only; each call is one short transaction
(well under a millisecond on a laptop at the 1 Hz record rate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SEQ_BLOCK", "Outbox", "OutboxRow", "default_outbox_path"]

SEQ_BLOCK = 3600  # seqs reserved per fully synced write: one an hour at 1 Hz

_log = logging.getLogger(__name__)

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
        clock: unix seconds, read once at open to anchor the outbox's own clock; injectable for tests.
        monotonic: seconds on a clock that never jumps; ages within a run are measured on it.
        system_boot: the kernel's boot id (None: unknown, assume a reboot); injectable for tests.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = 200_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        system_boot: Callable[[], str | None] = lambda: _kernel_boot_id(),
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._anchor_wall_s = clock()
        self._anchor_mono_s = monotonic()
        self.quarantined: Path | None = None  # where a damaged file found at start was moved
        self.salvaged = 0  # rows copied out of that damaged file
        self.evicted = 0  # rows dropped by the bounds (never published)
        self._reserved = 0  # seqs below this may have been handed out (durable in meta.seq_reserved)
        self.remove_failures = 0  # deletes after a PUBACK that could not be written (retried later)
        self._unremoved: set[int] = set()  # acknowledged rows whose delete failed: never handed out again
        self._rows = 0
        self._bytes = 0
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:
            if str(path) == ":memory:" or (isinstance(exc, sqlite3.OperationalError) and not _corrupt(exc)):
                raise
            self._db = self._recover(Path(path), exc)
        # Rows up to this id were accepted by an earlier run of the app: never live, however young.
        self.inherited_up_to_id = self.last_id()
        # After a reboot the last commits may be gone; after a recovery, last_seq may have been on a lost page.
        self._rebooted = self._note_system_boot(system_boot()) or self.quarantined is not None

    def _note_system_boot(self, boot: str | None) -> bool:
        """Whether the machine rebooted since this outbox was last opened; records the current boot."""
        key = None if boot is None else int(boot.replace("-", "")[:15], 16)
        found = self._db.execute("SELECT value FROM meta WHERE key = 'system_boot'").fetchone()
        if key is not None:
            with contextlib.suppress(sqlite3.Error):  # a full disk: next_seq stays conservative
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('system_boot', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                    (key, key),
                )
        return key is None or found is None or int(found[0]) != key

    def _open(self, path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None)  # autocommit; explicit BEGIN below
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            # A damaged page anywhere (a torn write, a truncated copy) shows here, not at some later put.
            problems = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems[:3]))
            self._db = db
            self._resync()
            found = db.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()
            self._reserved = max(int(found[0]) if found else 0, self._sidecar_reserved())
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self, path: Path, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Move a damaged outbox aside (with its WAL), start a fresh one, copy in the rows still readable."""
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        rows, last_seq = _salvage(path)
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        self.quarantined = aside
        db = self._open(path)
        with _Transaction(db):
            db.executemany("INSERT INTO outbox (seq, created_s, payload) VALUES (?, ?, ?)", rows)
            if last_seq is not None:
                db.execute("INSERT INTO meta (key, value) VALUES ('last_seq', ?)", (last_seq,))
        self.salvaged = len(rows)
        self._resync()
        _log.error(
            "outbox: %s is damaged (%s); moved it to %s, salvaged %d records, continuing with a fresh outbox",
            path, exc, aside, len(rows),
        )
        return db

    def now(self) -> float:
        """The outbox's clock: unix seconds at open plus monotonic time since (rows' ``created_s``)."""
        return self._anchor_wall_s + (self._monotonic() - self._anchor_mono_s)

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
        now = self.now()
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
        if seq >= self._reserved:
            self._reserve(seq + SEQ_BLOCK)
        row_id = cur.lastrowid
        assert row_id is not None  # an INSERT always sets it
        return row_id

    def _reserve(self, up_to: int) -> None:
        """Durably (fsync, even under ``synchronous=NORMAL``) record that seqs below ``up_to`` are spoken for."""
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('seq_reserved', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (up_to, up_to),
            )
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._reserved = up_to
        # Also beside the database, so that a damaged outbox (moved aside at start) cannot take it along.
        if str(self.path) != ":memory:":
            with contextlib.suppress(OSError):
                _write_synced(Path(f"{self.path}.seq"), f"{up_to}\n".encode())

    def _sidecar_reserved(self) -> int:
        if str(self.path) == ":memory:":
            return 0
        try:
            return int(Path(f"{self.path}.seq").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return 0

    def next_seq(self) -> int:
        """The ``seq`` a new record should carry: past every seq this outbox may ever have handed out.

        Within one boot of the machine (a clean stop, a crash, kill -9: committed rows are all there) that is
        one past the last stored; after a reboot (a power cut may have lost the last commits) it is past the
        fully synced reserved block, so no number is used twice.
        """
        last = self.last_seq()
        after_last = 0 if last is None else last + 1
        return max(after_last, self._reserved) if self._rebooted else after_last

    def remove(self, row_id: int) -> None:
        """Delete a row once the broker has acknowledged it (no-op if it was already evicted).

        A delete that cannot be written (disk full) is remembered: the row is never handed out again by
        ``rows`` and the delete is retried with the next one, so a full disk causes no duplicates.
        """
        ids = [row_id, *self._unremoved]
        try:
            with self._transaction():
                gone = self._db.execute(
                    f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))}) RETURNING LENGTH(payload)", ids
                ).fetchall()
        except sqlite3.OperationalError:
            self._unremoved.add(row_id)
            self.remove_failures += 1
            return
        self._unremoved.clear()
        self._rows -= len(gone)
        self._bytes -= sum(int(n) for (n,) in gone)

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
        out: list[OutboxRow] = []
        while len(out) < limit:
            found = self._db.execute(
                "SELECT id, seq, created_s, payload FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after_id, upper, limit),
            ).fetchall()
            out += [OutboxRow(int(i), int(s), float(c), bytes(p)) for i, s, c, p in found if i not in self._unremoved]
            if len(found) < limit:
                break
            after_id = int(found[-1][0])
        return out[:limit]

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
        """Hand back the unused reserved seqs (a clean stop continues without a gap) and close (idempotent)."""
        with contextlib.suppress(sqlite3.Error):  # closed already, or the disk is full: the gap is harmless
            last = self.last_seq()
            if last is not None and self._reserved > last + 1:
                self._reserve(last + 1)
        self._db.close()


def _write_synced(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, on disk (fsync) before this returns."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _kernel_boot_id() -> str | None:
    """Linux's id of the current boot (new after every reboot), or None where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Whether an OperationalError means a damaged file rather than a locked or unreachable one."""
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _salvage(path: Path) -> tuple[list[tuple[int, float, bytes]], int | None]:
    """The rows (seq, created_s, payload) and ``last_seq`` that can still be read from a damaged outbox.

    Reads forward until the first unreadable page, then backward from the end, so one bad page in the
    middle loses only the rows on it. Never raises: an unreadable file salvages nothing.
    """
    found: dict[int, tuple[int, float, bytes]] = {}
    last_seq: int | None = None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return [], None
    try:
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA writable_schema=ON")  # read the schema even when an index's root page is gone
        for order in ("ASC", "DESC"):
            try:
                for i, s, c, p in db.execute(f"SELECT id, seq, created_s, payload FROM outbox ORDER BY id {order}"):
                    if isinstance(p, bytes) and isinstance(s, int) and isinstance(c, int | float):
                        found[int(i)] = (int(s), float(c), p)
            except sqlite3.Error:
                pass
        for key, past in (("last_seq", 0), ("seq_reserved", 1)):  # never reuse a seq, even from a damaged file
            try:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    last_seq = max(last_seq if last_seq is not None else -1, int(row[0]) - past)
            except (sqlite3.Error, TypeError, ValueError):
                pass
    finally:
        db.close()
    seqs = [s for s, _, _ in found.values()]
    if seqs:
        last_seq = max(last_seq or 0, *seqs)
    return [found[i] for i in sorted(found)], last_seq


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
