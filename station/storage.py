"""The station's SQLite files at start: a damaged one is moved aside, never deleted.

A file that is not a database, or fails SQLite's `quick_check`, would make the daemon fail at
every start (a silent crash loop under systemd) or, worse, lose rows quietly. The daemon instead
moves it (with its -wal and -shm) to `<name>.damaged-<UTC time>`, starts with a fresh file, logs
the move and publishes a fault naming both files. The events or records in the damaged file are
still in it: docs/reliability.md says how to salvage them.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

_COMPANIONS = ("-wal", "-shm")


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
