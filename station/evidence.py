"""Evidence: every close attempt and audit entry, kept as one hash chain in a local SQLite file.

Each record is a JSON body (canonical form, below) in an envelope with its chain position `seq`,
its kind ("attempt", or an audit kind such as "login" or "carton.released"), its time and the
previous record's hash; `sha256` is the SHA-256 of the envelope's canonical JSON. The first record
points at the chain's genesis hash (the hash of the chain's identity, kept in `chain_meta`), so
editing, inserting or deleting any record breaks a link `packstation evidence verify` names.
Deleting the newest records leaves a valid but shorter chain: that is why the newest hash goes out
in every verification event (anchored off the station). docs/evidence.md is the reference.

Canonical JSON: keys sorted, no whitespace, UTF-8 (no \\u escapes for non-ASCII), no NaN or
Infinity. The envelope is assembled from the stored body text, so a verifier hashes the stored
bytes and never re-serialises a number.

Written on the loop: one small insert per record with WAL and synchronous=FULL, like the outbox (a
verdict event's anchor names its record and, through its hash, every record before it: a power
cut must not take any of them back once the event is out). Pruning (`station.evidence_retention`)
uses its own connection on a thread.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from station.events import EvidenceRef
from station.session import AttemptRecord
from station.storage import use_wal

CHAIN_FORMAT = "packstation-evidence/1"
# Evidence images (the vision channel's masked, annotated JPEGs) live under this folder of the
# data_dir, named `<anything>-<first 12 hex digits of their SHA-256>.jpg` or `<sha256>.jpg`.
IMAGES_DIR = Path("evidence") / "images"
ATTEMPT = "attempt"
_BUSY_TIMEOUT_MS = 5_000  # the pruner's short batches hold the write lock for milliseconds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    order_id TEXT,
    carton_id TEXT,
    attempt INTEGER,
    outcome TEXT,
    body TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_carton ON records (order_id, carton_id);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    pruned_at TEXT NOT NULL,
    records_pruned INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS record_images (
    seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT
);
CREATE INDEX IF NOT EXISTS record_images_by_seq ON record_images (seq);
CREATE TABLE IF NOT EXISTS image_backlog (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq INTEGER NOT NULL
);
CREATE VIEW IF NOT EXISTS attempts AS
    SELECT seq AS id, order_id, carton_id, attempt, outcome, at AS decided_at, body AS record
    FROM records WHERE kind = 'attempt';
CREATE VIEW IF NOT EXISTS audit AS
    SELECT seq AS id, kind, at, body AS data FROM records WHERE kind != 'attempt';
"""


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One record as stored: its envelope fields and canonical body text."""

    seq: int
    kind: str
    at: str
    body: str
    prev_sha256: str
    sha256: str
    order_id: str | None = None
    carton_id: str | None = None
    attempt: int | None = None
    outcome: str | None = None

    def envelope(self) -> bytes:
        return envelope_bytes(self.seq, self.kind, self.at, self.body, self.prev_sha256)

    def stored_text(self) -> str:
        """The record as one JSON text, to keep it elsewhere until it is written (`from_text`)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> ChainRecord:
        return cls(**json.loads(text))

    def plain(self) -> dict[str, Any]:
        """The record with its body parsed, for the API and `evidence show`; a body that is no
        JSON object (a damaged file) is given as the text stored, flagged."""
        plain: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at,
            "prev_sha256": self.prev_sha256,
            "sha256": self.sha256,
        }
        body = self.parsed_body()
        if body is None:
            return {**plain, "body": None, "body_text": self.body, "damaged": True}
        return {**plain, "body": body}

    def parsed_body(self) -> dict[str, Any] | None:
        """The body as the object it was written as; None if it is not one any more."""
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the chain starts after pruning: the last pruned record's position and hash."""

    through_seq: int
    sha256: str
    pruned_at: str
    records_pruned: int


class ChainMoved(RuntimeError):
    """A prepared record's predecessor is no longer the newest record (a bug in effect order)."""


class EvidenceStore:
    """The station's evidence chain in one SQLite file.

    Records owed (`owe`): a verdict's record is hashed before its event is committed, since the
    event carries the hash, and written after. Until it is written it is owed, and the store
    writes what it owes before it takes the next chain position for anything else, and before it
    answers a read about the owed record or its carton, so no other record takes its position
    and no answer (a label permission) is given from a chain that lacks it. An owed record that
    can no longer be written (another record took its place, or the file was replaced) goes to
    `on_unwritable`, which says whether it kept it elsewhere (if not, it stays owed); each one
    done with goes to `on_settled`.

    Every write is synced to disk (FULL): a verdict's anchor names its record's predecessors
    too, and a power cut must not take them back once the anchor is out.
    """

    def __init__(
        self,
        path: Path,
        station_id: str,
        site_id: str,
        on_settled: Callable[[ChainRecord], None] = lambda record: None,
        on_unwritable: Callable[[ChainRecord, str], bool] = lambda record, why: False,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._owed: dict[int, ChainRecord] = {}
        self._on_settled, self._on_unwritable = on_settled, on_unwritable
        self._writing = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # One transaction: a crash while an older file is converted leaves it unconverted.
        self._opening = True
        self._db.execute("BEGIN IMMEDIATE")
        try:
            legacy = _take_legacy_rows(self._db)
            indexed = has_table(self._db, "record_images")
            for statement in _SCHEMA.split(";"):
                self._db.execute(statement)
            if not indexed:  # a file from before 2026-11-27: retention indexes its records
                _note_image_backlog(self._db)
            self.genesis = _ensure_genesis(self._db, station_id, site_id)
            self._head = _head(self._db, self.genesis)
            for kind, at, body, keys in legacy:
                self._append(self._prepare(kind, at, body, keys))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._opening = False

    # -- writing -----------------------------------------------------------------------------

    def prepare_attempt(
        self, record: AttemptRecord, extra: Mapping[str, object] | None = None
    ) -> ChainRecord:
        """The next record for `record` (hashed, not yet written): its anchor can go out in the
        verdict event before `append` writes it. `extra` adds to the body (manifest, channel
        observations, versions)."""
        body = {**to_plain(record), **to_plain(extra or {})}
        keys = (record.order_id, record.carton_id, record.attempt, record.verdict.outcome.value)
        return self._prepare(ATTEMPT, record.decided_at.isoformat(), _canonical(body), keys)

    def append(self, prepared: ChainRecord) -> None:
        """Write a prepared record; refused if another record was written since it was prepared
        (its anchor may already be out, so it must not be re-chained silently)."""
        if prepared.seq != self._head[0] + 1 or prepared.prev_sha256 != self._head[1]:
            raise ChainMoved(f"evidence record {prepared.seq} was prepared on an older chain head")
        self._append(prepared)

    def owe(self, prepared: ChainRecord) -> None:
        """`prepared`'s anchor is out (its event is committed): write it before anything else."""
        with self._writing:
            self._owed[prepared.seq] = prepared

    @property
    def owed(self) -> tuple[ChainRecord, ...]:
        return tuple(self._owed[seq] for seq in sorted(self._owed))

    def pay_owed(self) -> list[ChainRecord]:
        """Write the records owed, oldest first; returns those written now (not those found
        written already). A write that fails raises, and they stay owed."""
        written = []
        # Under the lock: a read from another thread (a test's, a tool's) pays too, and must not
        # write the same record at the same moment.
        with self._writing:
            for prepared in self.owed:
                try:
                    if self._write_anchored(prepared):
                        written.append(prepared)
                except ChainMoved as exc:
                    if not self._on_unwritable(prepared, str(exc)):
                        continue  # not kept anywhere else: still owed
                del self._owed[prepared.seq]
                self._on_settled(prepared)
        return written

    def holds(self, prepared: ChainRecord) -> bool:
        """The chain holds this very record (same position, same hash)."""
        stored = read_record(self._db, prepared.seq)
        return stored is not None and stored.sha256 == prepared.sha256

    def _pay_owed_about(self, order_id: str | None, carton_id: str | None) -> None:
        """Before a read about one carton: write what is owed if any of it is about that carton
        (a failure to write the rest must not stop answers about other cartons)."""
        if any(o.order_id == order_id and o.carton_id == carton_id for o in self._owed.values()):
            self.pay_owed()

    def _write_anchored(self, prepared: ChainRecord) -> bool:
        """Write a record whose anchor is out, unless it is written (or pruned since) with the
        same hash; True if written now. ChainMoved when it can never be written."""
        head_seq, head_sha = self._head
        if prepared.seq > head_seq:
            if prepared.seq != head_seq + 1 or prepared.prev_sha256 != head_sha:
                raise ChainMoved(
                    f"evidence record {prepared.seq} does not continue this file's chain (now at "
                    f"{head_seq}): was the file replaced, or set aside as damaged?"
                )
            self.append(prepared)
            return True
        stored = read_record(self._db, prepared.seq)
        if stored is not None and stored.sha256 != prepared.sha256:
            raise ChainMoved(
                f"evidence record {prepared.seq} is not the one its event anchored "
                f"({stored.sha256[:12]} written, {prepared.sha256[:12]} anchored)"
            )
        return False

    def record_attempt(
        self, record: AttemptRecord, extra: Mapping[str, object] | None = None
    ) -> ChainRecord:
        prepared = self.prepare_attempt(record, extra)
        self._append(prepared)
        return prepared

    def record_audit(self, kind: str, data: Mapping[str, object], at: datetime) -> ChainRecord:
        if kind == ATTEMPT:
            raise ValueError("'attempt' is reserved for close attempts")
        plain = to_plain(data)
        keys = _columns_of(kind, plain)
        prepared = self._prepare(kind, at.isoformat(), _canonical(plain), keys)
        self._append(prepared)
        return prepared

    def anchor(self, record: ChainRecord) -> EvidenceRef:
        """What a verification event carries so the chain is anchored off the station."""
        return EvidenceRef(record_id=record.seq, sha256=record.sha256, chain=self.genesis)

    def _prepare(self, kind: str, at: str, body: str, keys: _Keys) -> ChainRecord:
        self.pay_owed()  # never over a position an anchor already names
        seq, prev = self._head[0] + 1, self._head[1]
        digest = hashlib.sha256(envelope_bytes(seq, kind, at, body, prev)).hexdigest()
        order_id, carton_id, attempt, outcome = keys
        return ChainRecord(seq, kind, at, body, prev, digest, order_id, carton_id, attempt, outcome)

    def _append(self, record: ChainRecord) -> None:
        """The record and the images it refers to (which retention counts and removes with
        it), in one transaction (or in the opening one, converting an older file)."""
        values = tuple(getattr(record, f.name) for f in dataclasses.fields(record))
        with self._writing:
            own = not self._opening
            if own:
                if self._db.in_transaction:  # left open by a commit and a rollback that failed
                    self._db.execute("ROLLBACK")
                self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"INSERT INTO records ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", values
                )
                _index_record_images(self._db, record.seq, record.body)
                if own:
                    self._db.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a ROLLBACK
                # then would fail and hide the real error.
                if own and self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._head = (record.seq, record.sha256)

    # -- reading -----------------------------------------------------------------------------

    def attempts(self, order_id: str, carton_id: str) -> list[dict[str, Any]]:
        """The carton's attempt records, oldest first, each with its chain position (`seq`)."""
        self._pay_owed_about(order_id, carton_id)
        rows = self._db.execute(
            "SELECT seq, body FROM records WHERE kind = 'attempt' AND order_id = ?"
            " AND carton_id = ? ORDER BY seq",
            (order_id, carton_id),
        )
        return [{**json.loads(body), "seq": seq} for seq, body in rows]

    def attempts_made(self, order_id: str, carton_id: str) -> int:
        """The highest attempt number this carton has used: its attempt records, and attempts a
        restart found interrupted (void, never recorded, but their number may be in an event
        already: `session.recovered` audits count them)."""
        recorded = [a["attempt"] for a in self.attempts(order_id, carton_id)]
        recovered = self.audits(order_id, carton_id, "session.recovered")
        return max([*recorded, *(int(r.get("attempts") or 0) for r in recovered)], default=0)

    def releases(self, order_id: str, carton_id: str) -> list[dict[str, Any]]:
        """Reviewer releases of this carton (audit `carton.released`), oldest first, with `at`."""
        return self.audits(order_id, carton_id, "carton.released")

    def carton_records(self, order_id: str, carton_id: str) -> list[ChainRecord]:
        """Every record about one carton (attempts and audit entries), in chain order."""
        self._pay_owed_about(order_id, carton_id)
        return list(
            _select(
                self._db, "WHERE order_id = ? AND carton_id = ? ORDER BY seq", (order_id, carton_id)
            )
        )

    def record(self, seq: int) -> ChainRecord | None:
        if seq in self._owed:
            self.pay_owed()
        return read_record(self._db, seq)

    @property
    def head(self) -> tuple[int, str]:
        """(seq, sha256) of the newest record; (last pruned seq or 0, its hash) when empty."""
        return self._head

    def audits(self, order_id: str, carton_id: str, *kinds: str) -> list[dict[str, Any]]:
        """Audit entries of `kinds` about one carton, oldest first, with `kind`, `at` and their
        chain position `seq` (what orders them: the wall clock may have been stepped)."""
        self._pay_owed_about(order_id, carton_id)
        marks = ", ".join("?" for _ in kinds)
        rows = self._db.execute(
            f"SELECT seq, kind, at, body FROM records WHERE kind IN ({marks})"  # placeholders
            " AND order_id = ? AND carton_id = ? ORDER BY seq",
            (*kinds, order_id, carton_id),
        )
        return [
            {**json.loads(body), "kind": kind, "at": at, "seq": seq} for seq, kind, at, body in rows
        ]

    def since(self, kind: str, since: datetime) -> list[dict[str, Any]]:
        """Records of `kind` written at `since` or later, newest first, with `at` and `seq`
        (what a restart recalls recent events from). Walks the chain back from its head a page
        at a time and stops at the first page written wholly before `since`, so it reads what
        the window holds, not the file."""
        found: list[int] = []
        top = self._head[0]
        while top > 0:
            rows = self._db.execute(
                "SELECT seq, kind, at FROM records WHERE seq <= ? AND seq > ? ORDER BY seq DESC",
                (top, top - RECALL_PAGE),
            ).fetchall()
            recent = [(seq, k) for seq, k, at in rows if datetime.fromisoformat(at) >= since]
            found += [seq for seq, k in recent if k == kind]
            if not recent:
                break
            top -= RECALL_PAGE
        out = []
        for seq in found:
            at, body = self._db.execute(
                "SELECT at, body FROM records WHERE seq = ?", (seq,)
            ).fetchone()
            out.append({**json.loads(body), "at": at, "seq": seq})
        return out

    def close(self) -> None:
        self._db.close()


# Records read per step when walking the chain back (`EvidenceStore.since`).
RECALL_PAGE = 500

_Keys = tuple[str | None, str | None, int | None, str | None]


def open_readonly(path: Path) -> sqlite3.Connection:
    """The evidence file for tools (`evidence verify`, `show`): read-only, never created."""
    if not path.is_file():
        raise FileNotFoundError(f"no evidence file at {path}: is the data_dir right?")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def envelope_bytes(seq: int, kind: str, at: str, body: str, prev_sha256: str) -> bytes:
    """Canonical JSON of {at, body, kind, prev_sha256, seq} (keys already in sorted order),
    built around the stored body text so nothing is re-serialised."""
    return (
        f'{{"at":{_string(at)},"body":{body},"kind":{_string(kind)},'
        f'"prev_sha256":{_string(prev_sha256)},"seq":{seq}}}'
    ).encode()


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, non-ASCII as UTF-8 (not escaped); NaN and Infinity (which JSON
    lacks) become null and values JSON has no type for become their text, so a device's odd
    reading can never stop a record being written."""
    return _canonical(to_plain(value))


def _canonical(plain: Any) -> str:
    """canonical_json of a value already made plain."""
    try:
        return _dumps(plain)
    except ValueError:  # a NaN or Infinity somewhere: the rare case pays for the walk
        return _dumps(_finite(plain))


def _dumps(plain: Any) -> str:
    # default=str: any other value (a path, a decimal) as its text rather than no record at all.
    return json.dumps(
        plain,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def genesis_hash(meta: Mapping[str, str]) -> str:
    """The hash the first record points at: the chain's identity (format, station, created)."""
    return hashlib.sha256(canonical_json(dict(meta)).encode()).hexdigest()


def chain_meta(db: sqlite3.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT key, value FROM chain_meta").fetchall())


def checkpoint(db: sqlite3.Connection) -> Checkpoint | None:
    row = db.execute(
        "SELECT through_seq, sha256, pruned_at, records_pruned FROM checkpoint WHERE id = 1"
    ).fetchone()
    return Checkpoint(*row) if row else None


def read_record(db: sqlite3.Connection, seq: int) -> ChainRecord | None:
    return next(_select(db, "WHERE seq = ?", (seq,)), None)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of checking a whole chain: how far it held and the first broken link."""

    records: int  # records checked
    first_seq: int | None
    last_seq: int | None
    head_sha256: str
    problem: str | None = None  # the first broken link, naming the record
    broken_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(db: sqlite3.Connection) -> ChainCheck:
    """Recompute every hash and link, oldest first; stop at the first broken link."""
    meta = chain_meta(db)
    if meta.get("format") != CHAIN_FORMAT:
        problem = f"chain_meta names format {meta.get('format')!r}, expected {CHAIN_FORMAT!r}"
        return ChainCheck(0, None, None, "", problem)
    pruned = checkpoint(db)
    expected_seq, expected_prev = (
        (pruned.through_seq + 1, pruned.sha256) if pruned else (1, genesis_hash(meta))
    )
    checked, first = 0, None
    for record, implied in _records_with_columns(db):
        problem = _link_problem(record, implied, expected_seq, expected_prev)
        if problem is not None:
            last = expected_seq - 1 if checked else None
            return ChainCheck(checked, first, last, expected_prev, problem, record.seq)
        first = record.seq if first is None else first
        checked += 1
        expected_seq, expected_prev = record.seq + 1, record.sha256
    return ChainCheck(checked, first, expected_seq - 1 if checked else None, expected_prev)


# The lookup values a body implies, extracted by SQLite (five times faster than json.loads of
# a whole record in Python); NULL for a body that is not JSON.
_IMPLIED = (
    "CASE WHEN json_valid(body) THEN json_extract(body, '$.order_id', '$.carton_id',"
    " '$.attempt', '$.verdict.outcome') END"
)


def _records_with_columns(
    db: sqlite3.Connection, batch: int = 1_000
) -> Iterator[tuple[ChainRecord, _Keys | None]]:
    last = -1
    while True:
        rows = db.execute(
            f"SELECT {_COLUMNS}, {_IMPLIED} FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, batch),
        ).fetchall()
        for *columns, implied in rows:
            record = ChainRecord(*columns)
            values = json.loads(implied) if implied is not None else None
            yield record, None if values is None else _keys(record.kind, *values)
        if len(rows) < batch:
            return
        last = rows[-1][0]


def _link_problem(record: ChainRecord, implied: _Keys | None, seq: int, prev: str) -> str | None:
    if record.seq != seq:
        missing = f"{seq}" if record.seq == seq + 1 else f"{seq} to {record.seq - 1}"
        return f"record {record.seq} follows {seq - 1}: record(s) {missing} are missing"
    if record.prev_sha256 != prev:
        return (
            f"record {record.seq}: its prev_sha256 {record.prev_sha256[:12]}... is not the hash "
            f"of the record before it ({prev[:12]}...): that record was changed or replaced"
        )
    if hashlib.sha256(record.envelope()).hexdigest() != record.sha256:
        return f"record {record.seq}: its content does not match its sha256 (it was edited)"
    if implied is None:
        return f"record {record.seq}: its body is not JSON"
    stored = (record.order_id, record.carton_id, record.attempt, record.outcome)
    if stored != implied:
        return f"record {record.seq}: its lookup columns {stored} disagree with its body {implied}"
    return None


def _columns_of(kind: str, body: Any) -> _Keys:
    """The lookup columns a body implies (indexed copies the hash does not cover directly)."""
    if not isinstance(body, dict):
        return (None, None, None, None)
    verdict = body.get("verdict")
    outcome = verdict.get("outcome") if isinstance(verdict, dict) else None
    return _keys(kind, body.get("order_id"), body.get("carton_id"), body.get("attempt"), outcome)


def _keys(kind: str, order_id: Any, carton_id: Any, attempt: Any, outcome: Any) -> _Keys:
    keys = (
        order_id if isinstance(order_id, str) else None,
        carton_id if isinstance(carton_id, str) else None,
    )
    if kind != ATTEMPT:
        return (*keys, None, None)
    return (
        *keys,
        attempt if isinstance(attempt, int) else None,
        outcome if isinstance(outcome, str) else None,
    )


def image_refs(value: Any) -> list[str]:
    """SHA-256 digests of every image a record references (`image_files`), once each."""
    return list(dict.fromkeys(digest for digest, _ in image_files(value)))


def image_files(value: Any) -> list[tuple[str, str | None]]:
    """(SHA-256, path or None) of every image a record references: any object with an
    `image_sha256`, or a `sha256` next to a `path` (the vision channel's frames), wherever it
    sits in the body."""
    found: list[tuple[str, str | None]] = []
    if isinstance(value, dict):
        path = value.get("path")
        digest = value.get("image_sha256") or (value.get("sha256") if "path" in value else None)
        if isinstance(digest, str) and is_sha256(digest):
            found.append((digest, path if isinstance(path, str) else None))
        for item in value.values():
            found += image_files(item)
    elif isinstance(value, list):
        for item in value:
            found += image_files(item)
    return found


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def find_image(folder: Path, digest: str) -> bytes | None:
    """The bytes of the image under `folder` whose SHA-256 is `digest`, found by the digest in
    its name and served only if its content still has that hash (a changed file is not it)."""
    for path in sorted(folder.rglob(f"*{digest[:12]}*")):
        if path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == digest:
                return data
    return None


def to_json(value: object) -> str:
    return json.dumps(to_plain(value), ensure_ascii=False, separators=(",", ":"))


def to_plain(value: Any) -> Any:
    """Dataclasses, pydantic models, enums, datetimes and containers as JSON-ready values."""
    kind = type(value)
    if kind in _JSON_SCALARS:  # most of a record: checked first, it is the hot path
        return value
    if kind is dict:
        return {str(k): to_plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_plain(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        # Raw bytes (a JPEG, a scale frame) never go into a record, only what identifies them.
        data = bytes(value)
        return {"omitted_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return value


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


# ChainRecord's fields, in order.
_COLUMNS = "seq, kind, at, body, prev_sha256, sha256, order_id, carton_id, attempt, outcome"
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS.split(",")))


def _select(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> Iterator[ChainRecord]:
    for row in db.execute(f"SELECT {_COLUMNS} FROM records {where}", args):
        yield ChainRecord(*row)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def _index_record_images(db: sqlite3.Connection, seq: int, body: str) -> None:
    try:
        files = image_files(json.loads(body))
    except ValueError:  # not JSON: refers to no image
        return
    db.executemany(
        "INSERT INTO record_images (seq, sha256, path) VALUES (?, ?, ?)",
        [(seq, digest, path) for digest, path in files],
    )


def _note_image_backlog(db: sqlite3.Connection) -> None:
    """Records written before images were indexed: retention indexes them in short batches on
    its thread (`index_image_backlog`), not the opening transaction (months of records would
    keep the station from starting for minutes)."""
    (head,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
    if head:
        db.execute("INSERT OR REPLACE INTO image_backlog (id, through_seq) VALUES (1, ?)", (head,))


def index_image_backlog(db: sqlite3.Connection, batch: int = 500) -> bool:
    """Index one batch of records written before images were indexed, newest first; True
    while some remain. Its own short transaction (the loop's writes wait at most one batch)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT through_seq FROM image_backlog WHERE id = 1").fetchone()
        if row is None:
            db.execute("COMMIT")
            return False
        rows = db.execute(
            "SELECT seq, body FROM records WHERE seq <= ? ORDER BY seq DESC LIMIT ?",
            (row[0], batch),
        ).fetchall()
        for seq, body in rows:
            _index_record_images(db, seq, body)
        if len(rows) < batch:
            db.execute("DELETE FROM image_backlog")
        else:
            db.execute("UPDATE image_backlog SET through_seq = ?", (rows[-1][0] - 1,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return len(rows) == batch


def _ensure_genesis(db: sqlite3.Connection, station_id: str, site_id: str) -> str:
    meta = chain_meta(db)
    if not meta:
        meta = {
            "format": CHAIN_FORMAT,
            "station_id": station_id,
            "site_id": site_id,
            "created_at": datetime.now(UTC).isoformat(),
        }
        db.executemany("INSERT INTO chain_meta (key, value) VALUES (?, ?)", meta.items())
    return genesis_hash(meta)


def _head(db: sqlite3.Connection, genesis: str) -> tuple[int, str]:
    row = db.execute("SELECT seq, sha256 FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    if row:
        return int(row[0]), str(row[1])
    pruned = checkpoint(db)
    return (pruned.through_seq, pruned.sha256) if pruned else (0, genesis)


def _take_legacy_rows(db: sqlite3.Connection) -> list[tuple[str, str, str, _Keys]]:
    """Rows of the pre-chain layout (plain `attempts` and `audit` tables), oldest first, for the
    constructor to chain; the tables are dropped (in its transaction) to make way for the views."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "attempts" not in tables:
        return []
    rows: list[tuple[str, str, str, _Keys]] = [
        (ATTEMPT, at, canonical_json(json.loads(body)), (order, carton, attempt, outcome))
        for order, carton, attempt, outcome, at, body in db.execute(
            "SELECT order_id, carton_id, attempt, outcome, decided_at, record FROM attempts"
        )
    ]
    for kind, at, data in db.execute("SELECT kind, at, data FROM audit"):
        plain = json.loads(data)
        rows.append((kind, at, canonical_json(plain), _columns_of(kind, plain)))
    db.execute("DROP TABLE attempts")
    db.execute("DROP TABLE audit")
    return sorted(rows, key=lambda row: row[1])
