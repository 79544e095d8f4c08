"""The ledger of evidence records that verdict events anchor: what a stop left owed goes back to
the store, and the outbox forgets a row only once nothing more depends on it."""

from __future__ import annotations

import json
from pathlib import Path

from station.events import EventType, event_source, topic_for
from station.evidence import EvidenceStore
from station.outbox import Outbox
from station.owed_evidence import UNWRITTEN_DIR, OwedRecords
from tests.evidence.factories import attempt
from tests.mqtt.factories import SITE, STATION, verification


def commit_owing(outbox: Outbox, seq: int, text: str) -> None:
    outbox.commit(
        EventType.VERIFICATION_RESULT,
        topic_for(EventType.VERIFICATION_RESULT, SITE, STATION),
        verification(),
        source=event_source(SITE, STATION),
        owed=(seq, text),
    )


def test_a_record_a_stop_left_owed_goes_back_to_the_store_and_its_row_waits_for_its_carton(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    store = EvidenceStore(tmp_path / "evidence.sqlite3", "pack-01", "dc-north")
    prepared = store.prepare_attempt(attempt(1))  # ORD-1 / C1, never written: the stop
    commit_owing(outbox, prepared.seq, prepared.stored_text())

    owed = OwedRecords(outbox, tmp_path)
    owed.take_back(store)
    assert store.owed == (prepared,)
    assert owed.left_at(("ORD-1", "C1")) == prepared.seq + 0.5 and owed.left_at(("X", "1")) is None

    owed.settled(prepared)  # written, but its carton is not seen to yet: the row stays
    assert [seq for seq, _ in outbox.owed_records()] == [prepared.seq]
    assert owed.left_unverified(held=[("ORD-1", "C1"), None]) == []  # the session holds it
    owed.seen_to()
    assert outbox.owed_records() == [] and not owed.pending_at_start


def test_an_unreadable_owed_row_is_kept_aside_not_lost_and_not_a_reason_not_to_start(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    commit_owing(outbox, 9, "{not a record")
    owed = OwedRecords(outbox, tmp_path)
    owed.take_back(EvidenceStore(tmp_path / "evidence.sqlite3", "pack-01", "dc-north"))
    [kept] = (tmp_path / UNWRITTEN_DIR).glob("record-9-*.json")
    assert kept.read_text() == "{not a record" and outbox.owed_records() == []


def test_a_record_the_chain_cannot_take_is_kept_aside_as_json(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    record = EvidenceStore(tmp_path / "a.sqlite3", "pack-01", "dc-north").prepare_attempt(
        attempt(2)
    )
    assert OwedRecords(outbox, tmp_path).unwritable(record, "the file was replaced")
    [kept] = (tmp_path / UNWRITTEN_DIR).glob(f"record-{record.seq}-*.json")
    assert json.loads(kept.read_text())["sha256"] == record.sha256
