"""Damaged SQLite files at start: found by `damage`, moved aside whole by `set_aside`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from station.storage import WAL_BYTES, damage, set_aside, use_wal

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def healthy(path: Path, rows: int = 500) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
        db.executemany("INSERT INTO t (payload) VALUES (?)", [("x" * 100,)] * rows)
    db.close()


def test_a_missing_or_healthy_file_is_not_damaged(tmp_path: Path) -> None:
    assert damage(tmp_path / "absent.sqlite3") is None
    healthy(tmp_path / "ok.sqlite3")
    assert damage(tmp_path / "ok.sqlite3") is None


def test_garbage_header_and_garbage_pages_are_found(tmp_path: Path) -> None:
    header, page = tmp_path / "header.sqlite3", tmp_path / "page.sqlite3"
    for path in (header, page):
        healthy(path)
    with header.open("r+b") as file:
        file.write(b"\xff" * 100)
    with page.open("r+b") as file:
        file.seek(4096 * 3)
        file.write(bytes(range(256)) * 16)
    assert "not a database" in (damage(header) or "")
    assert damage(page) is not None


def test_set_aside_moves_the_file_and_its_companions(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    for name, content in (("", b"db"), ("-wal", b"wal"), ("-shm", b"shm")):
        (tmp_path / f"outbox.sqlite3{name}").write_bytes(content)
    moved = set_aside(path, NOW)
    assert moved.name == "outbox.sqlite3.damaged-20261126T120000.123456Z"
    assert moved.read_bytes() == b"db"
    assert (tmp_path / f"{moved.name}-wal").read_bytes() == b"wal"
    assert (tmp_path / f"{moved.name}-shm").read_bytes() == b"shm"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [moved.name, f"{moved.name}-shm", f"{moved.name}-wal"]


def test_a_write_ahead_log_stays_small_however_much_is_written(tmp_path: Path) -> None:
    """SQLite's default log grows to ~4 MB before it is reused and never shrinks: on a nearly
    full disk the space freed went to the logs again (tests/reliability/test_disk_fills_up.py)."""
    path = tmp_path / "busy.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    use_wal(db)
    db.execute("CREATE TABLE rows (payload BLOB)")
    for _ in range(4_000):  # 4 MB in single-row commits, as the outbox writes
        db.execute("INSERT INTO rows VALUES (?)", (b"x" * 1024,))
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size <= WAL_BYTES, wal.stat().st_size
    assert db.execute("SELECT count(*) FROM rows").fetchone() == (4_000,)
    db.close()
