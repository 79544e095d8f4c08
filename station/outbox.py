"""Durable SQLite outbox: every event is committed here before it is published, and deleted only
after the broker acknowledged it (PUBACK reason code < 0x80).

Durability choice: WAL with `synchronous=FULL`. In WAL mode NORMAL survives a crash of the
process but may lose the last transactions on power loss or an OS crash; a packing station is
unplugged often enough, and a lost `shipped_short` is a customer who never gets their item, so
every commit waits for the WAL fsync. Measured cost: `benchmarks/outbox_bench.py`. Deletes after
PUBACK are batched by the caller and run with NORMAL (no fsync of their own): a delete lost to
power loss only means a duplicate publish, which consumers drop by event id.

Thread-safe: one connection behind a lock, shared by the callers (commit) and the publisher's
drainer thread (pending, ack).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from station.clock import Clock, SystemClock
from station.events import PAYLOAD_MODELS, CloudEvent, EventType
from station.storage import OUTBOX_WAL_PAGES, use_wal

# Namespace for ids derived from a caller's logical key (uuid5), so a retried logical event keeps
# its id across restarts and the backend de-duplicates it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-2a4e-4f0e-9d55-3f0c1f6e8a01")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    station_seq INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS carton_versions (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS owed_records (
    key    INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
"""

# (key, text) of a record another store owes an event: the evidence chain position and record.
OwedRecord = tuple[int, str]

_STATION_SEQ = "station_seq"
_PUBLISHER_SESSION = "publisher_session"


@dataclass(frozen=True)
class StoredEvent:
    """An event as committed to the outbox: exactly the bytes that will be published."""

    station_seq: int
    event_id: str
    event_type: EventType
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: str | Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so a commit
        # takes the write lock up front instead of failing half-way on upgrade.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        use_wal(self._db, OUTBOX_WAL_PAGES)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a ROLLBACK
                # then would fail and hide the real error.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def commit(
        self,
        event_type: EventType,
        topic: str,
        data: dict[str, Any] | BaseModel,
        *,
        source: str,
        subject: str | None = None,
        logical_key: str | None = None,
        owed: OwedRecord | None = None,
    ) -> StoredEvent:
        """Validate, number and durably store one event; returns once the row is on disk.

        The station sequence number and the carton version are taken in the same transaction as
        the insert, so a crash can never leave a number used without its event (or vice versa).
        `logical_key` derives a deterministic event id (same key, same id) for callers that may
        commit the same logical event twice: while the first is still pending the call returns
        it unchanged; after it was published a new row keeps the id (consumers drop it by id).
        Without a key the id is a random UUID.

        `owed` is a record another store must still write because this event refers to it (the
        evidence record a verdict anchors): kept in the same transaction, so an event never goes
        out whose record a crash or a failed write could lose. See `owed_records`.
        """
        payload_model = PAYLOAD_MODELS[event_type]
        payload = payload_model.model_validate(data, from_attributes=True)
        event_id = _event_id(source, event_type, logical_key)
        with self._transaction() as db:
            already_pending = _select_rows(db, "WHERE event_id = ?", (event_id,))
            if already_pending:
                return already_pending[0]
            seq = _increment(db, "counters", _STATION_SEQ)
            version = _increment(db, "carton_versions", subject) if subject else None
            event = CloudEvent[payload_model](  # type: ignore[valid-type]
                id=event_id,
                source=source,
                type=event_type,
                time=self._clock.now_utc(),
                subject=subject,
                stationseq=seq,
                cartonversion=version,
                data=payload,
            )
            stored = StoredEvent(seq, event_id, event_type, topic, event.to_json())
            db.execute(
                "INSERT INTO outbox (station_seq, event_id, event_type, topic, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (stored.station_seq, stored.event_id, event_type.value, topic, stored.payload),
            )
            if owed is not None:
                db.execute("INSERT OR REPLACE INTO owed_records (key, record) VALUES (?, ?)", owed)
        return stored

    def owed_records(self) -> list[OwedRecord]:
        """Records committed with an event and not yet settled, oldest key first."""
        with self._lock:
            rows = self._db.execute("SELECT key, record FROM owed_records ORDER BY key").fetchall()
        return [(int(key), str(record)) for key, record in rows]

    def settle_owed(self, key: int) -> None:
        """The owed record `key` is written where it belongs: forget it (synced: a settle lost
        to a power cut would make the next start think the record's carton was left open)."""
        with self._transaction() as db:
            db.execute("DELETE FROM owed_records WHERE key = ?", (key,))

    def pending(self, limit: int, after_seq: int = 0) -> list[StoredEvent]:
        """Unacknowledged events in station sequence order, starting after `after_seq`."""
        with self._lock:
            return _select_rows(
                self._db, "WHERE station_seq > ? ORDER BY station_seq LIMIT ?", (after_seq, limit)
            )

    def ack(self, *station_seqs: int) -> int:
        """Delete acknowledged events in one transaction; returns the number of rows deleted."""
        if not station_seqs:
            return 0
        # NORMAL: no fsync of its own (the next FULL commit syncs it along); a delete lost to
        # power loss only means the event is published again and dropped by id downstream.
        with self._transaction(synchronous="NORMAL") as db:
            cursor = db.executemany(
                "DELETE FROM outbox WHERE station_seq = ?", [(seq,) for seq in station_seqs]
            )
            return cursor.rowcount

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    def last_station_seq(self) -> int:
        """The station sequence number of the newest committed event (0 before the first)."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM counters WHERE key = ?", (_STATION_SEQ,)
            ).fetchone()
        return int(row[0]) if row else 0

    def next_publisher_session(self) -> int:
        """A new, persisted publisher session number (the availability `session`)."""
        with self._transaction() as db:
            return _increment(db, "counters", _PUBLISHER_SESSION)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _increment(db: sqlite3.Connection, table: str, key: str) -> int:
    (value,) = db.execute(
        f"INSERT INTO {table} (key, value) VALUES (?, 1)"
        " ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
        (key,),
    ).fetchone()
    return int(value)


def _select_rows(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[StoredEvent]:
    rows = db.execute(
        f"SELECT station_seq, event_id, event_type, topic, payload FROM outbox {where}", args
    ).fetchall()
    return [
        StoredEvent(seq, event_id, EventType(event_type), topic, bytes(payload))
        for seq, event_id, event_type, topic, payload in rows
    ]


def _event_id(source: str, event_type: EventType, logical_key: str | None) -> str:
    if logical_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}|{event_type.value}|{logical_key}"))
