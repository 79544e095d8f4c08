"""The SQLite outbox: commit before publish, ordered pending rows, delete on ack, crash safety."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from station.clock import ManualClock
from station.events import EventType, event_source, parse_event, topic_for
from station.outbox import Outbox
from tests.mqtt.factories import SITE, STATION, shipped_short, verification

SOURCE = event_source(SITE, STATION)
TOPIC = topic_for(EventType.VERIFICATION_RESULT, SITE, STATION)


def commit_verification(outbox: Outbox, carton_id: str = "C-1"):
    return outbox.commit(
        EventType.VERIFICATION_RESULT,
        TOPIC,
        verification(carton_id),
        source=SOURCE,
        subject=carton_id,
    )


def test_commit_assigns_sequence_version_and_cloudevent_attributes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", clock=ManualClock())
    first = commit_verification(outbox, "C-1")
    second = commit_verification(outbox, "C-1")
    third = commit_verification(outbox, "C-2")

    event = parse_event(second.payload)
    assert [first.station_seq, second.station_seq, third.station_seq] == [1, 2, 3]
    assert event.stationseq == 2 and event.cartonversion == 2
    assert parse_event(third.payload).cartonversion == 1
    assert event.source == "packstation/site1/st7" and event.subject == "C-1"
    assert event.id == second.event_id and event.time.isoformat() == "2026-01-01T00:00:00+00:00"


def test_pending_is_ordered_and_ack_deletes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    stored = [commit_verification(outbox, f"C-{n}") for n in range(5)]

    assert [e.station_seq for e in outbox.pending(10)] == [1, 2, 3, 4, 5]
    assert [e.station_seq for e in outbox.pending(2, after_seq=2)] == [3, 4]
    assert outbox.ack(stored[0].station_seq, stored[2].station_seq) == 2
    assert [e.station_seq for e in outbox.pending(10)] == [2, 4, 5]
    assert outbox.depth() == 3


def test_dict_data_is_validated_against_the_payload_model(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    stored = outbox.commit(
        EventType.MISSING_ITEM_SHIPPED_SHORT,
        topic_for(EventType.MISSING_ITEM_SHIPPED_SHORT, SITE, STATION),
        shipped_short().model_dump(mode="json"),
        source=SOURCE,
        subject="C-1",
    )
    assert parse_event(stored.payload).data == shipped_short()


def test_rows_and_sequence_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    crashed = Outbox(path)
    commit_verification(crashed)
    commit_verification(crashed)
    crashed.ack(1)
    # No close(): the process "dies" with the connection open.

    reopened = Outbox(path)
    assert [e.station_seq for e in reopened.pending(10)] == [2]
    assert commit_verification(reopened).station_seq == 3
    assert parse_event(commit_verification(reopened, "C-1").payload).cartonversion == 4


def test_sequence_continues_after_everything_was_acked(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    outbox = Outbox(path)
    outbox.ack(commit_verification(outbox).station_seq)
    outbox.close()
    assert commit_verification(Outbox(path)).station_seq == 2


def test_journal_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_logical_key_gives_a_stable_id_and_no_second_pending_row(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")

    def commit():
        return outbox.commit(
            EventType.VERIFICATION_RESULT, TOPIC, verification(), source=SOURCE, logical_key="C-1#1"
        )

    first, again = commit(), commit()
    assert again == first and outbox.depth() == 1
    outbox.ack(first.station_seq)
    assert commit().event_id == first.event_id


def test_publisher_sessions_increase_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    outbox = Outbox(path)
    assert [outbox.next_publisher_session(), outbox.next_publisher_session()] == [1, 2]
    outbox.close()
    assert Outbox(path).next_publisher_session() == 3


def test_a_record_owed_with_an_event_is_kept_with_it_until_settled(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    crashed = Outbox(path)
    crashed.commit(
        EventType.VERIFICATION_RESULT,
        TOPIC,
        verification("C-1"),
        source=SOURCE,
        subject="C-1",
        owed=(41, '{"seq": 41}'),
    )
    commit_verification(crashed, "C-2")  # owes nothing
    crashed.ack(1)  # the broker has the event: the record is still owed
    # No close(): the process "dies" before the record is written.

    reopened = Outbox(path)
    assert reopened.owed_records() == [(41, '{"seq": 41}')]
    reopened.settle_owed(41)
    assert reopened.owed_records() == []


def test_an_event_that_cannot_be_committed_owes_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    with pytest.raises(ValueError):
        outbox.commit(
            EventType.VERIFICATION_RESULT,
            TOPIC,
            {"not": "a verification"},
            source=SOURCE,
            owed=(7, "{}"),
        )
    assert outbox.owed_records() == [] and outbox.depth() == 0
