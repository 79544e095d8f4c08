"""The evidence chain in a real SQLite file: hashes, links, tampering, the CLI that checks it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.evidence import (
    CHAIN_FORMAT,
    ChainMoved,
    ChainRecord,
    EvidenceStore,
    canonical_json,
    envelope_bytes,
    genesis_hash,
    image_refs,
    open_readonly,
    verify_chain,
)
from station.evidence import RECALL_PAGE as EVIDENCE_RECALL_PAGE
from station.verification import Outcome
from tests.evidence.factories import T0, attempt, fill

REPO = Path(__file__).resolve().parents[2]


def check(path: Path):
    db = open_readonly(path)
    try:
        return verify_chain(db)
    finally:
        db.close()


def tamper(path: Path, sql: str, *args: object) -> None:
    """Change the file the way someone with a SQLite shell would: outside the station."""
    db = sqlite3.connect(path)
    db.execute(sql, args)
    db.commit()
    db.close()


def packstation(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station.cli", *args],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_records_link_from_the_genesis_and_hash_their_canonical_envelope(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    first, second, *_ = fill(path, 6)
    db = open_readonly(path)
    meta = dict(db.execute("SELECT key, value FROM chain_meta"))
    db.close()
    assert meta["format"] == CHAIN_FORMAT and meta["station_id"] == "pack-01"
    assert first.seq == 1 and first.prev_sha256 == genesis_hash(meta)
    assert second.prev_sha256 == first.sha256
    # The hash is SHA-256 of the canonical JSON of the envelope, body included as an object.
    envelope = {
        "seq": 1,
        "kind": "attempt",
        "at": first.at,
        "prev_sha256": first.prev_sha256,
        "body": json.loads(first.body),
    }
    assert hashlib.sha256(canonical_json(envelope).encode()).hexdigest() == first.sha256
    result = check(path)
    assert result.ok and result.records == 6 and result.head_sha256 == fill_head(path)


def fill_head(path: Path) -> str:
    db = open_readonly(path)
    (head,) = db.execute("SELECT sha256 FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    db.close()
    return head


def test_a_reopened_store_continues_the_same_chain(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    fill(path, 3)
    store = EvidenceStore(path, "pack-01", "dc-north")
    fourth = store.record_attempt(attempt(4, Outcome.BLOCK))
    store.close()
    assert fourth.seq == 4
    assert check(path).ok and check(path).records == 4


def test_an_edited_body_is_named_by_its_record(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    fill(path, 10)
    tamper(path, "UPDATE records SET body = replace(body, 'BADGE-42', 'BADGE-99') WHERE seq = 7")
    result = check(path)
    assert not result.ok and result.broken_seq == 7 and result.records == 6
    assert "record 7" in str(result.problem) and "edited" in str(result.problem)


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    records = fill(path, 10)
    seventh = records[6]
    forged = seventh.body.replace("BADGE-42", "BADGE-99")
    digest = hashlib.sha256(
        envelope_bytes(7, seventh.kind, seventh.at, forged, seventh.prev_sha256)
    ).hexdigest()
    tamper(path, "UPDATE records SET body = ?, sha256 = ? WHERE seq = 7", forged, digest)
    result = check(path)
    assert result.broken_seq == 8 and "changed or replaced" in str(result.problem)


def test_a_deleted_record_is_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    fill(path, 10)
    tamper(path, "DELETE FROM records WHERE seq IN (4, 5)")
    result = check(path)
    assert result.broken_seq == 6 and "4 to 5 are missing" in str(result.problem)


def test_a_changed_lookup_column_is_caught(tmp_path: Path) -> None:
    """The outcome column (what label permission and dashboards filter on) is not hashed on its
    own, so verify checks it against the hashed body."""
    path = tmp_path / "evidence.sqlite3"
    fill(path, 4)
    tamper(path, "UPDATE records SET outcome = 'BLOCK' WHERE seq = 2")
    assert check(path).broken_seq == 2


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_to_a_stored_row_is_detected(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("chain") / "evidence.sqlite3"
    records = fill(path, 6)
    target = data.draw(st.sampled_from(records))
    column = data.draw(st.sampled_from(["body", "at", "kind", "prev_sha256", "sha256"]))
    text = getattr(target, column)
    index = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != text[index]))
    changed = text[:index] + replacement + text[index + 1 :]
    tamper(path, f"UPDATE records SET {column} = ? WHERE seq = ?", changed, target.seq)
    result = check(path)
    assert not result.ok and result.broken_seq in (target.seq, target.seq + 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(body=json_values, kind=st.text(), at=st.text(), seq=st.integers(1, 10**12))
def test_the_envelope_is_the_canonical_json_of_the_whole_record(body, kind, at, seq) -> None:
    prev = "ab" * 32
    built = envelope_bytes(seq, kind, at, canonical_json(body), prev)
    whole = {"seq": seq, "kind": kind, "at": at, "prev_sha256": prev, "body": body}
    assert built == canonical_json(whole).encode("utf-8")
    assert json.loads(built) == json.loads(canonical_json(whole))


def test_canonical_json_is_sorted_compact_utf8_and_has_no_nan() -> None:
    text = canonical_json({"b": [1.5, float("nan")], "a": "Grüße", "c": {"z": 1, "y": None}})
    assert text == '{"a":"Grüße","b":[1.5,null],"c":{"y":null,"z":1}}'


def test_bytes_and_odd_values_never_stop_a_record() -> None:
    """A channel handing over a JPEG or a path must not hold the station (no record, no verdict)."""
    jpeg = b"\xff\xd8jpeg"
    plain = json.loads(canonical_json({"jpeg": jpeg, "file": Path("/x/y.jpg")}))
    assert plain["jpeg"] == {"omitted_bytes": 6, "sha256": hashlib.sha256(jpeg).hexdigest()}
    assert plain["file"] == "/x/y.jpg"


def test_a_prepared_record_cannot_be_written_after_the_chain_moved(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence.sqlite3", "pack-01", "dc-north")
    prepared = store.prepare_attempt(attempt(1))
    store.record_audit("login", {"badge": "BADGE-42"}, T0)
    with pytest.raises(ChainMoved):
        store.append(prepared)
    store.close()


class Settlements:
    """What an evidence store reports about the records it owed."""

    def __init__(self) -> None:
        self.settled: list[int] = []
        self.unwritable: list[tuple[int, str]] = []

    def store(self, path: Path, kept_aside: bool = True) -> EvidenceStore:
        def unwritable(record: ChainRecord, why: str) -> bool:
            self.unwritable.append((record.seq, why))
            return kept_aside

        return EvidenceStore(
            path,
            "pack-01",
            "dc-north",
            on_settled=lambda record: self.settled.append(record.seq),
            on_unwritable=unwritable,
        )


def test_an_owed_record_is_written_before_any_other_record_and_before_any_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evidence.sqlite3"
    first = EvidenceStore(path, "pack-01", "dc-north")
    prepared = first.prepare_attempt(attempt(1))
    kept = ChainRecord.from_text(prepared.stored_text())  # what the outbox holds meanwhile
    assert kept == prepared
    first.close()  # the station stops before writing it

    log = Settlements()
    store = log.store(path)
    store.owe(kept)
    audit = store.record_audit("login", {"badge": "BADGE-42"}, T0)  # pays first
    assert audit.seq == kept.seq + 1 and store.record(kept.seq) == kept
    assert log.settled == [kept.seq] and store.owed == ()

    later = store.prepare_attempt(attempt(2))
    store.owe(later)
    assert [a["seq"] for a in store.attempts("ORD-2", "C1")] == [later.seq]  # reads pay too
    store.owe(later)  # owed again (a restart before the outbox forgot it): found written
    assert store.pay_owed() == [] and log.settled == [kept.seq, later.seq, later.seq]
    assert check(path).ok and check(path).records == 3 and log.unwritable == []
    store.close()


def test_an_owed_record_whose_place_is_taken_or_whose_chain_is_gone_is_handed_back(
    tmp_path: Path,
) -> None:
    log = Settlements()
    store = log.store(tmp_path / "evidence.sqlite3")
    taken = store.prepare_attempt(attempt(1))
    store.record_audit("login", {"badge": "BADGE-42"}, T0)  # not owed yet: takes its place
    store.owe(taken)
    assert store.pay_owed() == []
    replaced = log.store(tmp_path / "replaced.sqlite3")  # a new file: a new chain
    replaced.owe(store.prepare_attempt(attempt(2)))
    replaced.pay_owed()
    (first, why_first), (second, why_second) = log.unwritable
    assert first == taken.seq and "not the one its event anchored" in why_first
    assert second == taken.seq + 1 and "does not continue this file's chain" in why_second
    assert log.settled == [first, second]  # handed back, so the outbox forgets them
    store.close()
    replaced.close()

    nowhere = Settlements()  # nowhere to keep it: it stays owed
    lost = nowhere.store(tmp_path / "third.sqlite3", kept_aside=False)
    lost.owe(taken)
    lost.pay_owed()
    assert nowhere.settled == [] and lost.owed == (taken,)
    lost.close()


def test_a_pre_chain_file_is_converted_into_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,
            carton_id TEXT NOT NULL, attempt INTEGER NOT NULL, outcome TEXT NOT NULL,
            decided_at TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
            at TEXT NOT NULL, data TEXT NOT NULL);
        INSERT INTO audit (kind, at, data) VALUES ('login', '2026-03-01T07:00:00+00:00',
            '{"badge": "BADGE-42"}');
        INSERT INTO attempts (order_id, carton_id, attempt, outcome, decided_at, record) VALUES
            ('ORD-1', 'C1', 1, 'PASS', '2026-03-01T07:05:00+00:00',
             '{"order_id": "ORD-1", "carton_id": "C1", "attempt": 1,
               "verdict": {"outcome": "PASS"}}');
        """
    )
    old.commit()
    old.close()
    store = EvidenceStore(path, "pack-01", "dc-north")
    assert store.attempts("ORD-1", "C1")[0]["verdict"]["outcome"] == "PASS"
    assert store.head[0] == 2
    store.close()
    assert check(path).ok
    # The old table names still answer, as views over the chain.
    db = open_readonly(path)
    assert db.execute("SELECT attempt, outcome FROM attempts").fetchall() == [(1, "PASS")]
    assert db.execute("SELECT kind FROM audit").fetchall() == [("login",)]
    db.close()


def test_image_references_are_found_wherever_the_channel_put_them() -> None:
    digest = "0f" * 32
    body = {"observations": {"vision": {"images": [{"path": "a.jpg", "sha256": digest}]}}}
    assert image_refs(body) == [digest]
    assert image_refs({"sha256": digest}) == []  # a bare hash is not an image


def test_verify_and_show_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "evidence.sqlite3"
    fill(path, 12)
    ok = packstation("evidence", "verify", "--data-dir", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert "evidence chain OK: 12 records 1..12" in ok.stdout

    shown = packstation("evidence", "show", "3", "--data-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "order ORD-3 carton C1" in shown.stdout and "verdict PASS" in shown.stdout
    assert "packer BADGE-42" in shown.stdout and "weight trace: 1 readings" in shown.stdout
    as_json = json.loads(
        packstation("evidence", "show", "5", "--json", "--data-dir", str(tmp_path)).stdout
    )
    assert as_json["kind"] == "carton.released" and as_json["body"]["reviewer_badge"] == "SUP-1"

    tamper(path, "UPDATE records SET body = replace(body, 'C1', 'C2') WHERE seq = 9")
    broken = packstation("evidence", "verify", "--data-dir", str(tmp_path))
    assert broken.returncode == 2
    assert "BROKEN at record 9" in broken.stderr and "8 records before it" in broken.stderr

    missing = packstation("evidence", "show", "99", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and "no evidence record 99" in missing.stderr

    # A body that is no JSON object any more is shown as stored, not a traceback.
    tamper(path, "UPDATE records SET body = 'not json' WHERE seq = 4")
    for flag in ((), ("--json",)):
        shown = packstation("evidence", "show", "4", *flag, "--data-dir", str(tmp_path))
        assert shown.returncode == 0 and "not json" in shown.stdout, shown.stderr
    # A file that is no database at all: said, with what to do, exit 2.
    path.write_bytes(b"this is not an evidence file" * 100)
    for path_wal in tmp_path.glob("evidence.sqlite3-*"):
        path_wal.unlink()
    damaged = packstation("evidence", "verify", "--data-dir", str(tmp_path))
    assert damaged.returncode == 2 and "damaged or not an evidence file" in damaged.stderr
    assert "Traceback" not in damaged.stderr


def test_a_carton_opened_again_counts_on_from_every_attempt_number_it_used(
    tmp_path: Path,
) -> None:
    """Its attempt records, and an attempt a restart voided (never recorded: the restart's
    `session.recovered` audit says how many attempts the carton had)."""
    store = EvidenceStore(tmp_path / "evidence.sqlite3", "pack-01", "dc-north")
    assert store.attempts_made("ORD-1", "C1") == 0
    store.record_attempt(attempt(1, order="ORD-1"))
    assert store.attempts_made("ORD-1", "C1") == 1
    recovered = {"order_id": "ORD-1", "carton_id": "C1", "attempts": 2, "interrupted_attempt": 2}
    store.record_audit("session.recovered", recovered, T0)
    assert store.attempts_made("ORD-1", "C1") == 2
    assert store.attempts_made("ORD-2", "C1") == 0
    store.close()


def test_since_recalls_the_records_of_a_window_across_pages_of_the_chain(tmp_path: Path) -> None:
    """Wrong PINs are recalled at start this way: every `override.refused` written at the
    cutoff or later, however many other records came after them (more than a page), and
    none from before it (the walk stops at a page wholly older)."""
    store = EvidenceStore(tmp_path / "evidence.sqlite", "pack-01", "dc-north")
    old = T0 - timedelta(hours=2)
    store.record_audit("override.refused", {"reason": "bad_credentials"}, old)
    for n in range(EVIDENCE_RECALL_PAGE + 20):
        store.record_audit("carton.aborted", {"n": n}, old)
    store.record_audit("override.refused", {"reason": "bad_credentials"}, T0)
    for _ in range(EVIDENCE_RECALL_PAGE + 20):
        store.record_audit("override.refused", {"reason": "locked_out"}, T0)
    recalled = store.since("override.refused", T0 - timedelta(minutes=5))
    reasons = [r["reason"] for r in recalled]
    assert reasons.count("bad_credentials") == 1 and len(reasons) == EVIDENCE_RECALL_PAGE + 21
    assert recalled[0]["seq"] > recalled[-1]["seq"]  # newest first
    assert store.since("override.refused", T0 + timedelta(minutes=1)) == []
    store.close()
