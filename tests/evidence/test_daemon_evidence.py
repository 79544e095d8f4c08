"""The daemon writes a complete, chained record per verdict and anchors it in the event."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.rig import SimulatedStation
from station.events import EventType
from station.evidence import (
    ChainRecord,
    EvidenceStore,
    open_readonly,
    read_record,
    verify_chain,
)
from station.session import RecordAttempt
from tests.test_daemon import InProcessDaemon, storage_faults


class Listener:
    """Every message on the station's topics, decoded (a backend's view)."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe("packstation/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = lambda _c, _u, m: self.messages.append(json.loads(m.payload))
        self._client.connect(host, port)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def of_type(self, event_type: EventType) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == event_type.value]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@contextmanager
def one_carton_packed(tmp_path: Path, broker) -> Iterator[tuple[SimulatedStation, InProcessDaemon]]:
    """A running station at which ORD-1001/C1 was just packed whole and closed."""
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        yield station, running


def test_a_verdict_event_anchors_its_complete_record(tmp_path: Path, broker) -> None:
    listener = Listener(broker.host, broker.port)
    try:
        with one_carton_packed(tmp_path, broker) as (station, running):
            assert running.wait_for(lambda fx: any(isinstance(e, RecordAttempt) for e in fx))
            assert running.wait_for(
                lambda _: listener.of_type(EventType.VERIFICATION_RESULT), timeout=20
            )
            [event] = listener.of_type(EventType.VERIFICATION_RESULT)
            anchor = event["data"]["evidence"]
            record = running.daemon.evidence.record(anchor["record_id"])
            assert record is not None and record.kind == "attempt"
            assert anchor["sha256"] == record.sha256
            assert anchor["chain"] == running.daemon.evidence.genesis
            data_dir = station.config_path.parent
    finally:
        listener.close()

    body = json.loads(record.body)
    assert body["order_id"] == "ORD-1001" and body["packer_badge"] == "7"
    assert body["verdict"]["outcome"] == event["data"]["outcome"]
    assert body["manifest"]["order_id"] == "ORD-1001" and body["manifest"]["lines"]
    trace = body["observations"]["weight"]["trace"]
    assert trace and any(r["t_s"] > 0 for r in trace)  # readings after the close request too
    assert body["versions"]["software"] and len(body["versions"]["config_sha256"]) == 64
    evidence_files = list(data_dir.rglob("evidence.sqlite3"))
    db = open_readonly(evidence_files[0])
    try:
        check = verify_chain(db)
    finally:
        db.close()
    assert check.ok and check.records >= 2  # the login audit entry and the attempt


def written_record(path: Path, seq: int) -> ChainRecord | None:
    """The record as the file holds it (the store's own reads would write what it owes)."""
    db = open_readonly(path)
    try:
        return read_record(db, seq)
    finally:
        db.close()


@pytest.fixture
def full_evidence_disk(monkeypatch) -> threading.Event:
    """While set, writing an attempt record fails as on a full disk (audits still go)."""
    failing = threading.Event()
    failing.set()
    append = EvidenceStore.append

    def full_disk(self: EvidenceStore, prepared) -> None:
        if failing.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        append(self, prepared)

    monkeypatch.setattr(EvidenceStore, "append", full_disk)
    return failing


def leave_a_verdict_owed(station: SimulatedStation, listener: Listener) -> dict[str, Any]:
    """A station whose verdict event went out but whose record could not be written, then
    stopped; returns the anchor the event carried."""
    with InProcessDaemon(station.config_path) as running:
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        assert running.wait_for(lambda _: listener.of_type(EventType.VERIFICATION_RESULT))
        [first] = listener.of_type(EventType.VERIFICATION_RESULT)
        anchor = first["data"]["evidence"]
        assert running.wait_for(lambda fx: storage_faults(fx, "evidence.sqlite3"))
        assert written_record(running.daemon.evidence.path, anchor["record_id"]) is None
        owed = running.daemon.outbox.owed_records()
        assert [seq for seq, _ in owed] == [anchor["record_id"]]
    return anchor


def test_a_record_whose_write_failed_after_its_event_went_out_is_written_not_lost(
    tmp_path: Path, broker, full_evidence_disk
) -> None:
    """The verdict event anchors a record that its write then fails to store (a full disk,
    and the station stops before it is freed): the record waits in the outbox and is written
    at the next start, so no later record takes its place and every anchor out matches."""
    listener = Listener(broker.host, broker.port)
    try:
        with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
            anchor = leave_a_verdict_owed(station, listener)
            full_evidence_disk.clear()  # space freed while the station was down

            with InProcessDaemon(station.config_path) as restarted:
                evidence_file = restarted.daemon.evidence.path
                written = written_record(evidence_file, anchor["record_id"])
                assert written is not None and written.sha256 == anchor["sha256"]
                assert restarted.daemon.outbox.owed_records() == []
                station.close()  # the recovered carton is closed again
                assert restarted.wait_for(
                    lambda _: len(listener.of_type(EventType.VERIFICATION_RESULT)) == 2
                )
                events = listener.of_type(EventType.VERIFICATION_RESULT)
                assert [e["data"]["attempt"] for e in events] == [1, 2]
    finally:
        listener.close()
    for out in (e["data"]["evidence"] for e in events):
        record = written_record(evidence_file, out["record_id"])
        assert record is not None and record.sha256 == out["sha256"]
    db = open_readonly(evidence_file)
    try:
        assert verify_chain(db).ok
    finally:
        db.close()


def test_a_passed_carton_whose_record_and_session_a_stop_lost_gets_no_label(
    tmp_path: Path, broker, full_evidence_disk
) -> None:
    """The PASS event went out, its record did not, and the stored session is gone too: the
    record is written at start, but the carton left the station with its light and diverter
    never set, so that is audited and the label interlock refuses it."""
    listener = Listener(broker.host, broker.port)
    try:
        with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
            anchor = leave_a_verdict_owed(station, listener)
            assert listener.of_type(EventType.VERIFICATION_RESULT)[0]["data"]["outcome"] == "PASS"
            full_evidence_disk.clear()
            data_dir = station.config_path.parent
            for lost in data_dir.rglob("session.sqlite3*"):
                lost.unlink()

            with InProcessDaemon(station.config_path) as restarted:
                daemon = restarted.daemon
                written = written_record(daemon.evidence.path, anchor["record_id"])
                assert written is not None and written.sha256 == anchor["sha256"]
                answer = asyncio.run_coroutine_threadsafe(
                    ask_label(daemon, "ORD-1001", "C1"), daemon._loop
                ).result(10)
                left = daemon.evidence.audits("ORD-1001", "C1", "carton.left_at_restart")
                assert daemon.outbox.owed_records() == []  # settled once that is on the record
    finally:
        listener.close()
    assert answer["allowed"] is False and answer["reason"] == "left_unsealed"
    assert [a["reason"] for a in left] == ["stopped_before_recorded"]


def test_a_label_asked_while_its_carton_record_cannot_be_written_gets_a_refusal(
    tmp_path: Path, broker, full_evidence_disk
) -> None:
    """The PASS event went out and its record is still owed (the disk is full): the interlock
    cannot answer from a chain that lacks it, and says so instead of failing silently; once the
    disk is freed, the answer comes from the record again."""
    listener = Listener(broker.host, broker.port)
    try:
        with one_carton_packed(tmp_path, broker) as (_, running):
            assert running.wait_for(lambda _: listener.of_type(EventType.VERIFICATION_RESULT))
            daemon = running.daemon
            assert running.wait_for(lambda _: bool(daemon.evidence.owed))
            refused = asked_on_the_loop(daemon)
            full_evidence_disk.clear()
            after = asked_on_the_loop(daemon)
    finally:
        listener.close()
    assert (refused["allowed"], refused["reason"]) == (False, "evidence_unavailable")
    # Answered from the record again: the carton is still open at the station, its verdict's
    # step having waited for the write.
    assert (after["allowed"], after["reason"]) == (False, "reopened")


def asked_on_the_loop(daemon) -> dict[str, Any]:
    return asyncio.run_coroutine_threadsafe(
        ask_label(daemon, "ORD-1001", "C1"), daemon._loop
    ).result(10)


async def ask_label(daemon, order_id: str, carton_id: str) -> dict[str, Any]:
    """The shipping software's question, answered on the daemon's loop as the API does."""
    return daemon.interlock.decide(order_id, carton_id, "print", "api")


def test_a_stored_session_whose_recovery_cannot_be_written_is_kept_until_it_can(
    tmp_path: Path, broker, full_evidence_disk
) -> None:
    """The station starts while the record is still owed and the disk still full: recovering
    the session (its audit) cannot be written. The stored session must not be overwritten by
    the fresh one meanwhile: once the disk is freed, the carton is recovered and the record
    written."""
    listener = Listener(broker.host, broker.port)
    try:
        with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
            anchor = leave_a_verdict_owed(station, listener)
            with InProcessDaemon(station.config_path) as restarted:
                daemon = restarted.daemon
                assert restarted.wait_for(lambda fx: storage_faults(fx, "evidence.sqlite3"))
                assert daemon.session.open_carton is None  # not recovered yet
                full_evidence_disk.clear()  # space freed: the next tick recovers
                assert restarted.wait_for(
                    lambda _: daemon.session.open_carton == ("ORD-1001", "C1"), timeout=20
                )
                written = written_record(daemon.evidence.path, anchor["record_id"])
                assert written is not None and written.sha256 == anchor["sha256"]
                assert restarted.wait_for(
                    lambda fx: (
                        [f["cleared"] for f in storage_faults(fx, "evidence.sqlite3")]
                        == [False, True]
                    )
                )
    finally:
        listener.close()
