"""The station's ledger of shipped EPCs: tags in cartons it passed or released.

A shipped EPC read in a new carton smells of a swap (or a return put back on the shelf without
being re-registered): the read-window filter denies it and the carton goes to REVIEW. Entries are
written only when a carton is passed or released, never at a BLOCK, and expire after the retention
period. SQLite (WAL): one small transaction per shipped carton, on the station loop.

The RFID channel (`station/channels/rfid.py`) also writes the EPCs the site's other stations
announce as shipped over MQTT, and `forget`s the EPCs of the WMS's returns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from rfid.window import Denial
from station.storage import use_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shipped (
    epc TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    carton_id TEXT NOT NULL,
    shipped_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shipped_by_time ON shipped (shipped_at);
"""


class EpcLedger:
    def __init__(self, path: Path, retention: timedelta, now: datetime) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._retention = retention
        self.prune(now)

    def shipped(self, epcs: Iterable[str], order_id: str, carton_id: str, at: datetime) -> int:
        """Record the EPCs of a passed or released carton; returns how many were written."""
        rows = [(epc.upper(), order_id, carton_id, at.isoformat()) for epc in set(epcs)]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO shipped (epc, order_id, carton_id, shipped_at)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def denials(self, epcs: Iterable[str]) -> Mapping[str, Denial]:
        """Which of `epcs` (upper-case hex) may not count, and why."""
        wanted = sorted({e.upper() for e in epcs})
        found: dict[str, Denial] = {}
        for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for (epc,) in self._db.execute(
                f"SELECT epc FROM shipped WHERE epc IN ({marks})",  # only placeholders
                chunk,
            ):
                found[epc] = "shipped"
        return found

    def forget(self, epcs: Iterable[str]) -> None:
        """A returned unit: its EPC may ship again."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM shipped WHERE epc = ?", [(e.upper(),) for e in epcs])

    def forget_carton(self, order_id: str, carton_id: str) -> int:
        """A carton that did not ship after all (its PASS was withdrawn); returns rows removed."""
        cursor = self._db.execute(
            "DELETE FROM shipped WHERE order_id = ? AND carton_id = ?", (order_id, carton_id)
        )
        return cursor.rowcount

    def prune(self, now: datetime) -> None:
        cutoff = (now - self._retention).isoformat()
        self._db.execute("DELETE FROM shipped WHERE shipped_at < ?", (cutoff,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM shipped").fetchone()[0])

    def close(self) -> None:
        self._db.close()
