"""The SQLite outbox: FIFO, durable across reopen, bounded by rows, bytes and age."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from edge.publish.outbox import Outbox, default_outbox_path


def test_rows_come_back_oldest_first_and_leave_on_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    ids = [box.put(seq, f"record {seq}".encode()) for seq in range(5)]
    assert ids == sorted(ids) and box.depth == 5
    assert [r.seq for r in box.rows(limit=3)] == [0, 1, 2]
    assert [r.seq for r in box.rows(after_id=ids[1], up_to_id=ids[3])] == [2, 3]
    box.remove(ids[0])
    box.remove(ids[0])  # twice: harmless
    assert box.depth == 4 and box.size_bytes == sum(len(f"record {s}") for s in range(1, 5))
    assert box.rows(limit=1)[0].payload == b"record 1"
    box.close()


def test_a_reopened_outbox_has_every_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "state" / "o.sqlite"
    box = Outbox(path)
    for seq in range(10):
        box.put(seq, b"x" * 10)
    box.remove(box.rows(limit=1)[0].id)
    last = box.last_id()
    again = Outbox(path)  # opened beside the first, not after a close(): committed rows are in the WAL
    assert again.depth == 9 and [r.seq for r in again.rows()] == list(range(1, 10))
    assert again.last_seq() == 9 and again.last_id() == last
    assert again.put(10, b"y") > last, "ids keep growing after a restart (AUTOINCREMENT)"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    again.close()
    box.close()


def test_bounded_by_rows(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_rows=10)
    for seq in range(25):
        box.put(seq, b"{}")
    assert box.depth == 10 and box.evicted == 15
    assert [r.seq for r in box.rows()] == list(range(15, 25)), "the oldest go first"
    box.close()


def test_bounded_by_bytes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000)
    for seq in range(30):
        box.put(seq, b"z" * 100)
    assert box.size_bytes <= 1000 and box.depth == 10
    assert box.rows()[0].seq == 20
    box.close()


def test_bounded_by_age(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite", max_age_s=60, clock=lambda: 1000.0, monotonic=lambda: now[0])
    for seq in range(10):
        box.put(seq, b"{}")
        now[0] += 10
    assert box.depth == 7, "rows accepted more than 60 s before the last put are gone"
    assert box.rows()[0].seq == 3 and box.evicted == 3
    assert box.last_id_before(1055.0) == box.rows()[2].id
    box.close()


def test_default_path_follows_systemd_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/vitaledge")
    assert default_outbox_path("pi-1") == Path("/var/lib/vitaledge/outbox-pi-1.sqlite")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_outbox_path("pi-1") == tmp_path / "vitaledge" / "outbox-pi-1.sqlite"


def test_random_bytes_are_moved_aside_and_a_fresh_outbox_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite"
    damage = random.Random(1).randbytes(8192)
    path.write_bytes(damage)
    box = Outbox(path)
    assert box.quarantined is not None and box.quarantined.read_bytes() == damage, "kept aside, untouched"
    assert box.quarantined.name.startswith("o.sqlite.corrupt-") and box.salvaged == 0
    assert str(path) in caplog.text and str(box.quarantined) in caplog.text
    assert box.put(0, b"after") > 0 and box.depth == 1
    box.close()
    assert Outbox(path).quarantined is None, "the fresh file is healthy on the next start"


def test_a_truncated_outbox_keeps_its_readable_rows_and_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    for seq in range(400):
        box.put(seq, b"p" * 200)
    box.close()  # checkpoints the WAL into the main file
    size = path.stat().st_size
    assert size > 60_000
    with path.open("r+b") as f:
        f.truncate(size // 2)
    again = Outbox(path)
    assert again.quarantined is not None and again.quarantined.stat().st_size == size // 2
    assert 0 < again.salvaged < 400 and again.depth == again.salvaged
    seqs = [r.seq for r in again.rows(limit=1000)]
    assert seqs == sorted(seqs) and seqs[0] == 0, "the readable rows, oldest first"
    assert again.last_seq() is not None and again.last_seq() >= seqs[-1]
    again.close()


def test_a_wall_clock_jump_does_not_age_the_backlog(tmp_path: Path) -> None:
    wall, mono = [1_800_000_000.0], [50.0]
    box = Outbox(tmp_path / "o.sqlite", max_age_s=3600, clock=lambda: wall[0], monotonic=lambda: mono[0])
    for seq in range(10):
        box.put(seq, b"{}")
        mono[0] += 1
    wall[0] += 10 * 24 * 3600  # NTP on a Pi with no RTC: +10 days
    box.put(10, b"{}")
    assert box.depth == 11 and box.evicted == 0, "nothing was an hour old on a clock that does not jump"
    assert box.last_id_before(box.now() - 5) == box.rows()[4].id, "stale/live split on the same clock"
    mono[0] += 3601
    box.put(11, b"{}")
    assert box.depth == 1 and box.evicted == 11, "an hour later on the monotonic clock they are old"
    box.close()


def test_seq_is_never_reused_after_a_power_cut_and_continues_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, system_boot=lambda: "0b1")
    for seq in range(box.next_seq(), 10):
        box.put(seq, b"{}")
    # kill -9 (no close): the same machine boot, every committed row is there.
    again = Outbox(path, system_boot=lambda: "0b1")
    assert again.next_seq() == 10, "same boot: no gap"
    for seq in range(10, 20):
        again.put(seq, b"{}")
    # A power cut under synchronous=NORMAL can lose the last commits: last_seq rolls back to 12.
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = 12 WHERE key = 'last_seq'")
    raw.execute("DELETE FROM outbox WHERE seq > 12")
    raw.commit()
    raw.close()
    rebooted = Outbox(path, system_boot=lambda: "0b2")
    assert rebooted.last_seq() == 12 and rebooted.next_seq() >= 20, "past the fully synced reservation"
    unknown = Outbox(path, system_boot=lambda: None)
    assert unknown.next_seq() >= 20, "no boot id to compare: assume a reboot"
    for each in (unknown, rebooted, again, box):
        each.close()


def test_seq_survives_the_outbox_being_damaged(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, system_boot=lambda: "0b1")
    for seq in range(300):
        box.put(seq, b"p" * 200)
    box.close()
    with path.open("r+b") as f:
        f.truncate(20 * 1024)  # last_seq and the reservation in the file are gone with the pages
    again = Outbox(path, system_boot=lambda: "0b1")
    assert again.quarantined is not None and again.next_seq() >= 300, "the reservation beside the file survives"
    again.close()
