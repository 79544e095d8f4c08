"""The station's SQLite files at start: a damaged one is moved aside, never deleted.

A file that is not a database, or fails SQLite's `quick_check`, would make the daemon fail at
every start (a silent crash loop under systemd) or, worse, lose rows quietly. The daemon instead
moves it (with its -wal and -shm) to `<name>.damaged-<UTC time>`, starts with a fresh file, logs
the move and publishes a fault naming both files. The events or records in the damaged file are
still in it: docs/reliability.md says how to salvage them.

At run time, `takes_writes` tells whether a file that could not be written (a full disk) takes a
write again, so its storage fault clears by itself once space is freed. Every file keeps its
write-ahead log small (`use_wal`), so the space freed is not eaten again by the logs' growth.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

_COMPANIONS = ("-wal", "-shm")


# A file's write-ahead log is checkpointed every WAL_PAGES pages and cut back to WAL_BYTES
# after: SQLite's default lets a log grow to ~4 MB (1000 pages) before reusing it, and never
# shrinks it, so on a full disk the space freed went to the logs' growth (the session is saved
# at every step) until the disk was full again. The outbox keeps SQLite's default
# (OUTBOX_WAL_PAGES): draining a backlog of 100,000 events, checkpoints every 64 pages cost it a
# fifth of its rate (docs/performance.md).
WAL_PAGES = 64
OUTBOX_WAL_PAGES = 1000
WAL_BYTES = 512 * 1024


def use_wal(db: sqlite3.Connection, pages: int = WAL_PAGES) -> None:
    """Put `db` in WAL mode with a bounded log: checkpointed every `pages` pages (see
    WAL_PAGES), cut back to WAL_BYTES after."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA wal_autocheckpoint={pages}")
    db.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")


def damage(path: Path) -> str | None:
    """Why the SQLite file at `path` cannot be trusted, or None (also when it does not exist)."""
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if problems == ["ok"]:
        return None
    return "; ".join(problems[:3])


def takes_writes(path: Path) -> str | None:
    """None if `path` takes a write again, else SQLite's error. The write is one fsynced row in
    a table of its own (`storage_probe`), so it needs free space just as a record does and
    changes nothing the station reads."""
    try:
        with closing(sqlite3.connect(path, isolation_level=None, timeout=1.0)) as db:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "CREATE TABLE IF NOT EXISTS storage_probe (id INTEGER PRIMARY KEY, n INTEGER)"
            )
            db.execute(
                "INSERT INTO storage_probe VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1"
            )
            db.execute("COMMIT")  # on a full disk this fails and SQLite rolls back by itself
    except sqlite3.Error as exc:
        return str(exc)
    return None


def set_aside(path: Path, now: datetime) -> Path:
    """Move `path` and its companions to `<name>.damaged-<now>`; returns the new path."""
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(target)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    return target


def write_synced(path: Path, data: bytes) -> None:
    """Write `path` and sync it and its folder: on disk before the caller forgets the data."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
