"""The open session on disk: one row in `session.sqlite3`, so a restarted daemon recovers the
packer, the open carton, its attempts and published shortage, and the degraded mode.

The daemon writes the session's snapshot on the loop after every step that changed it, once the
step's effects (events, evidence) are carried out: the row never claims a step whose records are
not written. WAL with `synchronous=FULL`, like the outbox: a snapshot lost to a power cut would
bring back a carton at an attempt number its committed events already used. Cost per write:
see docs/reliability.md ("Session recovery").

A row that cannot be read (a damaged file, a format from another version) is never silently
dropped: `load` raises `SessionUnreadable` and the daemon moves the file aside, says so and
publishes a fault.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from station.session import SessionSnapshot
from station.storage import use_wal

# Bumped when SessionSnapshot changes shape: a row of a format not in READABLE is then reported,
# not misread. Format 2 added the carton waiting for its label and the weigh-one-unit capture in
# flight, with defaults, so a format 1 row reads as a format 2 row with neither. Format 3 added
# the SKUs a verdict asked to recount (none in older rows); an older daemon refuses a format 3
# row rather than forget a recount and let its second mismatch ask again. Format 4 added the
# attempts a carton opened again had before (0 in older rows: numbering as before). The cartons
# recent labels were granted for (`label_owners`) came later without a new format: an older daemon
# ignores them harmlessly, and an older row has none (known again from the next grant).
FORMAT = 4
READABLE = frozenset({1, 2, 3, 4})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    format   INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);
"""
_SNAPSHOT = TypeAdapter(SessionSnapshot)


class SessionUnreadable(Exception):
    """The stored session cannot be read back; the message says why."""


class SessionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            self._db.close()
            raise SessionUnreadable(f"{path}: {exc}") from exc

    def save(self, snapshot: SessionSnapshot) -> None:
        """Replace the stored session (one fsynced statement)."""
        self._db.execute(
            "INSERT INTO session (id, format, snapshot) VALUES (1, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET format = excluded.format, snapshot = excluded.snapshot",
            (FORMAT, _SNAPSHOT.dump_json(snapshot).decode()),
        )

    def load(self) -> SessionSnapshot | None:
        """The stored session, or None if none was ever saved."""
        try:
            row = self._db.execute("SELECT format, snapshot FROM session").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SessionUnreadable(f"{self.path}: {exc}") from exc
        if row is None:
            return None
        stored_format, text = row
        if stored_format not in READABLE:
            raise SessionUnreadable(
                f"{self.path}: session format {stored_format}, this version reads "
                f"{sorted(READABLE)}"
            )
        try:
            return _SNAPSHOT.validate_json(text)
        except ValidationError as exc:
            raise SessionUnreadable(f"{self.path}: {exc.error_count()} invalid fields") from exc

    def close(self) -> None:
        self._db.close()
