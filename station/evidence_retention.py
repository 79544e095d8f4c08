"""Evidence retention: drop the oldest records (and the images they reference) once they are older
than `max_age_days` or the evidence takes more than `max_bytes`, keeping the chain verifiable.

Only a prefix of the chain is ever dropped, and the last dropped record's position and hash go into
the `checkpoint` row in the same transaction: `evidence verify` then starts from the checkpoint.
Pruning stops at the first record that must stay: one whose carton still has an event in the
outbox (not yet acknowledged by the broker), or whose position an unsent verdict event anchors.
Such a record and everything after it wait for the next run.

Runs on a thread (`asyncio.to_thread`) with its own SQLite connection, in batches of
`BATCH_RECORDS` rows per transaction, so the loop's own inserts wait at most one short batch.
Freed pages are reused by SQLite (the file does not shrink, it stops growing).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from station.evidence import has_table, image_files, index_image_backlog
from station.outbox import StoredEvent
from station.storage import use_wal

log = logging.getLogger("packstation.evidence")

BATCH_RECORDS = 200
_OUTBOX_PAGE = 500
_BUSY_TIMEOUT_MS = 5_000


class EvidenceRetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age_days: float = Field(
        default=365.0,
        gt=0,
        description="Records (and their images) older than this are dropped, oldest first; "
        "never while an event of theirs is still waiting in the outbox.",
    )
    max_bytes: int = Field(
        default=5_000_000_000,
        ge=1_000_000,
        description="Disk budget for the evidence file's data and the evidence images; above it "
        "the oldest records go first, whatever their age (unsent events' records stay).",
    )
    prune_interval_s: float = Field(
        default=3600.0, ge=1.0, le=86_400.0, description="How often retention runs."
    )


@dataclass(frozen=True, slots=True)
class Protected:
    """What unsent events still need: their cartons' records and anything from the oldest
    anchored record on."""

    cartons: frozenset[tuple[str, str]] = frozenset()
    from_seq: int | None = None

    def covers(self, seq: int, order_id: str | None, carton_id: str | None) -> bool:
        if self.from_seq is not None and seq >= self.from_seq:
            return True
        return (order_id, carton_id) in self.cartons


@dataclass
class PruneResult:
    records: int = 0
    images: int = 0
    through_seq: int | None = None
    stopped_for_outbox: bool = False
    bytes_used: int = 0
    reasons: set[str] = field(default_factory=set)  # "age", "bytes"
    # Image files no record refers to (an attempt a stop or a timeout cut short, a record still
    # owed): never counted against the budget, never deleted here.
    unreferenced_files: int = 0
    unreferenced_bytes: int = 0


def protected_by(events: Iterable[StoredEvent]) -> Protected:
    """Cartons and anchored records of events still in the outbox."""
    cartons: set[tuple[str, str]] = set()
    anchored: list[int] = []
    for event in events:
        try:
            envelope = json.loads(event.payload)
        except ValueError:  # the outbox only holds validated events; be safe all the same
            continue
        data = envelope.get("data") or {}
        if isinstance(data.get("order_id"), str) and isinstance(data.get("carton_id"), str):
            cartons.add((data["order_id"], data["carton_id"]))
        anchor = data.get("evidence") or {}
        if isinstance(anchor.get("record_id"), int):
            anchored.append(anchor["record_id"])
    return Protected(frozenset(cartons), min(anchored) if anchored else None)


def pending_events(pending: Callable[[int, int], list[StoredEvent]]) -> list[StoredEvent]:
    """Every event in the outbox, read in pages (`Outbox.pending`)."""
    events: list[StoredEvent] = []
    after = 0
    while page := pending(_OUTBOX_PAGE, after):
        events += page
        after = page[-1].station_seq
    return events


class EvidencePruner:
    def __init__(
        self,
        db_path: Path,
        images_dirs: Sequence[Path],
        config: EvidenceRetentionConfig,
        unsent: Callable[[], Iterable[StoredEvent]],
    ) -> None:
        """`images_dirs`: every folder evidence images are written under (the data folder's,
        and the vision section's `evidence_dir` when it names another)."""
        self._db_path = db_path
        self._images_dirs = tuple(images_dirs)
        self._config = config
        self._unsent = unsent

    def run(self, now: datetime, by_age: bool = True) -> PruneResult:
        """One retention pass (blocking: call it on a thread); `by_age` False: only the disk
        budget drops records (the wall clock cannot be trusted to say how old they are)."""
        result = PruneResult()
        db = sqlite3.connect(self._db_path, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # The log's bounds are per connection: this pass deletes in batches when the disk
            # is short, so it must not grow the log to SQLite's default ~4 MB meanwhile.
            use_wal(db)
            # Never past the chain's head as the pass starts: a record written meanwhile may
            # be anchored by an event committed after the outbox was read.
            # An older file's records, once, in batches (the store made the tables at opening).
            while _has_image_index(db) and index_image_backlog(db):
                pass
            (head,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
            images = ImageIndex.of(self._images_dirs)
            stray = images.set_aside_unreferenced(_image_refs(db))
            result.unreferenced_files, result.unreferenced_bytes = stray
            cutoff = _age_cutoff(db, now, self._config.max_age_days, by_age)
            while True:
                used = _data_bytes(db) + images.bytes
                # Read again per batch: an event committed during the pass protects its carton.
                protected = protected_by(self._unsent())
                batch, stop = self._next_batch(db, head, protected, cutoff, used, images, result)
                if batch:
                    self._drop(db, batch, now, images, result)
                if stop or len(batch) < BATCH_RECORDS:
                    break
            result.bytes_used = _data_bytes(db) + images.bytes
        finally:
            db.close()
        if result.unreferenced_files:
            log.warning(
                "evidence image files no record refers to: not counted, not deleted (attempts "
                "cut short by a stop or a timeout, or records still owed); once the station has "
                "no owed record they may be removed by hand",
                extra={
                    "files": result.unreferenced_files,
                    "bytes": result.unreferenced_bytes,
                    "folders": [str(folder) for folder in self._images_dirs],
                },
            )
        if result.records:
            log.info(
                "evidence pruned",
                extra={
                    "records": result.records,
                    "images": result.images,
                    "through_seq": result.through_seq,
                    "reasons": sorted(result.reasons),
                },
            )
        return result

    def _next_batch(
        self,
        db: sqlite3.Connection,
        head: int,
        protected: Protected,
        cutoff: datetime,
        used: int,
        images: ImageIndex,
        result: PruneResult,
    ) -> tuple[list[_Dropped], bool]:
        """The next oldest records to drop (seq, sha256, images), and whether to stop."""
        rows = db.execute(
            "SELECT seq, at, order_id, carton_id, body, sha256 FROM records WHERE seq <= ?"
            " ORDER BY seq LIMIT ?",
            (head, BATCH_RECORDS),
        ).fetchall()
        batch: list[_Dropped] = []
        for seq, at, order_id, carton_id, body, sha256 in rows:
            too_old = datetime.fromisoformat(at) < cutoff
            over_budget = used > self._config.max_bytes
            if not (too_old or over_budget):
                return batch, True
            if protected.covers(seq, order_id, carton_id):
                result.stopped_for_outbox = True
                return batch, True
            result.reasons.add("age" if too_old else "bytes")
            files = image_files(json.loads(body))
            used -= len(body) + sum(images.size(digest, path) for digest, path in files)
            batch.append((seq, sha256, files))
        return batch, False

    def _drop(
        self,
        db: sqlite3.Connection,
        batch: list[_Dropped],
        now: datetime,
        images: ImageIndex,
        result: PruneResult,
    ) -> None:
        last_seq, last_sha = batch[-1][0], batch[-1][1]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM records WHERE seq <= ?", (last_seq,))
            if _has_image_index(db):
                db.execute("DELETE FROM record_images WHERE seq <= ?", (last_seq,))
            db.execute(
                "INSERT INTO checkpoint (id, through_seq, sha256, pruned_at, records_pruned)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET through_seq ="
                " excluded.through_seq, sha256 = excluded.sha256, pruned_at = excluded.pruned_at,"
                " records_pruned = records_pruned + excluded.records_pruned",
                (last_seq, last_sha, now.isoformat(), len(batch)),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        result.records += len(batch)
        result.through_seq = last_seq
        # Images go after the commit: a crash in between leaves a file no record needs, never a
        # record whose image is gone.
        for _seq, _sha, files in batch:
            for digest, path in files:
                result.images += images.remove(digest, path)


def _age_cutoff(
    db: sqlite3.Connection, now: datetime, max_age_days: float, by_age: bool
) -> datetime:
    """Records before this are too old. Ages count to `now`, but never past a day after the
    newest record: a wall clock stepped ahead (a restart with a bad RTC, before any offset is
    measured) must not make every record too old at once. Nothing is too old when `by_age` is
    off (the clock is known to be off)."""
    if not by_age:
        return datetime.min.replace(tzinfo=now.tzinfo)
    (newest,) = db.execute("SELECT MAX(at) FROM records").fetchone()
    if newest is not None:
        now = min(now, datetime.fromisoformat(newest) + timedelta(days=1))
    return now - timedelta(days=max_age_days)


def _has_image_index(db: sqlite3.Connection) -> bool:
    return has_table(db, "record_images")


def _image_refs(db: sqlite3.Connection) -> list[tuple[str, str | None]] | None:
    """(digest, path) of every image the records refer to; None for a file without the index
    (then every file counts, as before it)."""
    if not _has_image_index(db):
        return None
    return [(digest, path) for digest, path in db.execute("SELECT sha256, path FROM record_images")]


def _data_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the evidence file in use (free pages are reused, so they do not count)."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


_Dropped = tuple[int, str, list[tuple[str, str | None]]]  # seq, sha256, (digest, path) images


@dataclass
class ImageIndex:
    """The evidence image files under the image folders, walked once per pass: by path (as
    found, not resolved: a symlink is removed, never what it points to), with their sizes, and
    by the first 12 hex digits of their digest (from the name: `<anything>-<12 hex>.jpg` or
    `<sha256>.jpg`)."""

    sizes: dict[Path, int]
    by_digest: dict[str, set[Path]]

    @classmethod
    def of(cls, folders: Sequence[Path]) -> ImageIndex:
        index = cls({}, {})
        for folder in folders:
            if folder.is_dir():
                for found in folder.rglob("*"):
                    if found.is_file() and not found.is_symlink():
                        path = Path(os.path.abspath(found))  # one folder may nest in another
                        index.sizes[path] = found.stat().st_size
                        key = path.stem.rsplit("-", 1)[-1][:12]
                        index.by_digest.setdefault(key, set()).add(path)
        return index

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    def _files(self, digest: str, path: str | None) -> list[Path]:
        """The record's own file where it names one (another attempt's frame may have the same
        digest and must stay); one that moved with the data folder, by its digest and its last
        two path parts; else every file by the digest. Only files under the image folders."""
        same = sorted(p for p in self.by_digest.get(digest[:12], ()) if p in self.sizes)
        if path is None:
            return same
        named = Path(os.path.abspath(path))
        if named in self.sizes:
            return [named]
        return [p for p in same if p.parts[-2:] == named.parts[-2:]]

    def set_aside_unreferenced(
        self, refs: Iterable[tuple[str, str | None]] | None
    ) -> tuple[int, int]:
        """Take the files no reference in `refs` names out of the index (not from the disk):
        they count against no budget and are never removed. (files, bytes) set aside."""
        if refs is None:
            return 0, 0
        kept = {file for digest, path in refs for file in self._files(digest, path)}
        stray = [file for file in self.sizes if file not in kept]
        return len(stray), sum(self.sizes.pop(file) for file in stray)

    def size(self, digest: str, path: str | None) -> int:
        return sum(self.sizes[p] for p in self._files(digest, path))

    def remove(self, digest: str, path: str | None) -> int:
        """Delete the image files of one reference; how many went."""
        files = self._files(digest, path)
        for file in files:
            file.unlink(missing_ok=True)
            del self.sizes[file]
        return len(files)
