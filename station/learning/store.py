"""The learned-weights store: weight samples per SKU and per box, and unknown items weighed, in
one SQLite file per station (`<data_dir>/learned_weights.sqlite`).

Bounded: each SKU and box keeps its latest `max_samples` samples (older ones are deleted on
insert), and the unknown-item list its latest `max_unknown` rows. A carton gives at most one
sample per SKU: a second close attempt of the same carton replaces the first (same `ref`).
WAL with synchronous=NORMAL: a power cut may lose the last sample, which costs nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from station.learning.estimator import SampleSource, WeightSample
from station.storage import use_wal

FILE_NAME = "learned_weights.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    key TEXT NOT NULL,
    grams_per_unit REAL NOT NULL,
    units INTEGER NOT NULL,
    noise_g REAL NOT NULL,
    source TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    ref TEXT,
    box TEXT,
    tare_g REAL,
    site TEXT NOT NULL,
    station TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_key ON samples (subject, key, id);
CREATE UNIQUE INDEX IF NOT EXISTS samples_by_ref ON samples (subject, key, ref)
    WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS unknown_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    barcode TEXT NOT NULL,
    grams REAL NOT NULL,
    packer_badge TEXT,
    site TEXT NOT NULL,
    station TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class Subject(StrEnum):
    SKU = "sku"
    BOX = "box"


@dataclass(frozen=True, slots=True)
class UnknownItem:
    barcode: str
    grams: float
    packer_badge: str | None
    site: str
    station: str
    at: str


class LearnedWeightStore:
    def __init__(
        self, path: Path, site: str, station: str, max_samples: int, max_unknown: int = 10_000
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._site, self._station = site, station
        self._max_samples, self._max_unknown = max_samples, max_unknown
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        _add_tare_columns(self._db)

    def add(
        self,
        subject: Subject,
        key: str,
        sample: WeightSample,
        confirmed_by: str,
        at: datetime,
        ref: str | None = None,
    ) -> None:
        """Keep one sample; with a `ref` (the carton) it replaces that carton's earlier one."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO samples (subject, key, grams_per_unit, units, noise_g,"
                " source, confirmed_by, ref, box, tare_g, site, station, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    subject.value,
                    key,
                    sample.grams_per_unit,
                    sample.units,
                    sample.noise_g,
                    sample.source.value,
                    confirmed_by,
                    ref,
                    sample.box,
                    sample.tare_g,
                    self._site,
                    self._station,
                    at.isoformat(),
                ),
            )
            self._db.execute(
                "DELETE FROM samples WHERE subject = ? AND key = ? AND id <= ("
                " SELECT id FROM samples WHERE subject = ? AND key = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (subject.value, key, subject.value, key, self._max_samples),
            )

    def forget(self, ref: str) -> int:
        """Delete the samples a carton (`ref`) gave; how many there were."""
        with self._db:
            self._db.execute("BEGIN")
            deleted = self._db.execute("DELETE FROM samples WHERE ref = ?", (ref,)).rowcount
        return int(deleted)

    def samples(self, subject: Subject, key: str) -> list[WeightSample]:
        """The kept samples of one SKU or box at this site, oldest first (a data directory
        moved or copied from another site keeps that site's samples, but they teach nothing
        here: its boxes, scales and suppliers may differ)."""
        rows = self._db.execute(
            "SELECT grams_per_unit, units, noise_g, source, box, tare_g FROM samples"
            " WHERE subject = ? AND key = ? AND site = ? ORDER BY id",
            (subject.value, key, self._site),
        )
        return [
            WeightSample(g, n, noise, SampleSource(src), box, tare)
            for g, n, noise, src, box, tare in rows
        ]

    def keys(self, subject: Subject) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT key FROM samples WHERE subject = ? AND site = ? ORDER BY key",
            (subject.value, self._site),
        )
        return [row[0] for row in rows]

    def sources(self, subject: Subject, key: str) -> dict[str, int]:
        """How many kept samples came from each source (for the report)."""
        rows = self._db.execute(
            "SELECT source, COUNT(*) FROM samples WHERE subject = ? AND key = ? AND site = ?"
            " GROUP BY source",
            (subject.value, key, self._site),
        )
        return dict(rows.fetchall())

    def add_unknown(
        self, barcode: str, grams: float, packer_badge: str | None, at: datetime
    ) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO unknown_items (barcode, grams, packer_badge, site, station, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (barcode, grams, packer_badge, self._site, self._station, at.isoformat()),
            )
            self._db.execute(
                "DELETE FROM unknown_items WHERE id <= ("
                " SELECT id FROM unknown_items ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self._max_unknown,),
            )

    def unknown_items(self) -> Iterator[UnknownItem]:
        rows = self._db.execute(
            "SELECT barcode, grams, packer_badge, site, station, at FROM unknown_items ORDER BY id"
        )
        for row in rows:
            yield UnknownItem(*row)

    def close(self) -> None:
        self._db.close()


def _add_tare_columns(db: sqlite3.Connection) -> None:
    """A store from before 2026-11-27 lacks the box and tare of its carton samples: added
    empty (such samples are not reduced again when a tare changes)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(samples)")}
    for column, kind in (("box", "TEXT"), ("tare_g", "REAL")):
        if column not in columns:
            db.execute(f"ALTER TABLE samples ADD COLUMN {column} {kind}")
