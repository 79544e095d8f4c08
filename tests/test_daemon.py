"""The daemon in process against the simulated station: faults the weight channel must raise,
and simulations on a fast clock."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from simulators.rig import PAPERWORK_G, SimulatedStation
from station.channels.weight import WeightChannel
from station.clock import Clock, ScaledClock
from station.daemon import STORAGE_UNUSABLE, StationDaemon, load_station_config
from station.domain import ManifestLine, ManifestStatus
from station.events import EventType
from station.evidence import EvidenceStore
from station.outbox import Outbox
from station.session import (
    Effect,
    PublishEvent,
    RecordAttempt,
    RecordAudit,
    SessionState,
    SetLight,
    ShowMessage,
)
from station.session_store import SessionStore
from tests.session.test_session_snapshot import blocked_short_one_tea


class InProcessDaemon:
    def __init__(self, config_path: Path, clock: Clock | None = None) -> None:
        self.daemon = StationDaemon(load_station_config(config_path), clock=clock)
        self.effects: list[Effect] = []
        self.daemon.observers.append(self.effects.append)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.daemon.run(ready=self._ready.set))

    def __enter__(self) -> InProcessDaemon:
        self._thread.start()
        assert self._ready.wait(10) and self.daemon.devices_seen.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self._thread.join(10)

    def wait_for(self, predicate: Callable[[list[Effect]], bool], timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.effects)):
                return True
            time.sleep(0.02)
        return False


def faults(effects: list[Effect]) -> list[dict]:
    return [
        dict(e.data) for e in effects if isinstance(e, PublishEvent) and e.kind == "station.fault"
    ]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    running = MosquittoBroker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()


def test_empty_platter_drift_is_a_scale_fault_and_clears(tmp_path: Path, broker) -> None:
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.place(16.0)  # above the 10 g zero band, far below any box
        assert running.wait_for(
            lambda fx: any(f["device"] == "scale zero" and not f["cleared"] for f in faults(fx))
        )
        raised = next(f for f in faults(running.effects) if f["device"] == "scale zero")
        assert "16" in str(raised["message"]) and "zero the scale" in str(raised["message"])
        station.clear_platter()
        assert running.wait_for(
            lambda fx: any(f["device"] == "scale zero" and f["cleared"] for f in faults(fx))
        )


def test_a_box_put_down_before_the_order_is_not_drift(tmp_path: Path, broker) -> None:
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.place(station.box_weight("BOX-S"))
        time.sleep(1.5)  # several stability windows
        assert not faults(running.effects)


def test_inactivity_logout_on_a_fast_clock(tmp_path: Path, broker) -> None:
    """15 simulated minutes of inactivity in about 3 real seconds."""
    with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
        clock = ScaledClock(300.0)
        with InProcessDaemon(station.config_path, clock=clock) as running:
            station.scan("BADGE-42")
            assert running.wait_for(lambda _: running.daemon.session.state is SessionState.IDLE)
            started = time.monotonic()
            assert running.wait_for(
                lambda fx: any(
                    isinstance(e, RecordAudit) and e.kind == "packer.logout" for e in fx
                ),
                timeout=15,
            )
            assert time.monotonic() - started < 10
            assert running.daemon.session.state is SessionState.LOGGED_OUT


def test_the_catalog_is_out_of_the_collectors_reach_while_the_station_runs(
    tmp_path: Path, broker
) -> None:
    """A full garbage collection on the loop would walk the whole catalog (~100 ms at 50,000
    SKUs): what start-up built is frozen once the station is ready, and thawed when it stops."""
    with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
        with InProcessDaemon(station.config_path) as running:
            item = next(iter(running.daemon.catalog.items.values()))
            assert gc.is_tracked(item) and gc.get_freeze_count() > 0
            gc.collect()
            # The collector's generations (all it walks) do not hold the catalog's items.
            assert all(tracked is not item for tracked in gc.get_objects())
        assert gc.get_freeze_count() == 0
        assert any(tracked is item for tracked in gc.get_objects())


def verdicts(effects: list[Effect]) -> list[str]:
    return [e.record.verdict.outcome.value for e in effects if isinstance(e, RecordAttempt)]


def test_a_carton_weighed_on_a_drifted_scale_goes_to_review(tmp_path: Path, broker) -> None:
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.place(16.0)  # the empty platter reads 16 g: every weight is off by that much
        assert running.wait_for(lambda fx: any(f["device"] == "scale zero" for f in faults(fx)))
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        assert running.wait_for(lambda fx: verdicts(fx) == ["REVIEW"])


def test_a_failing_channel_sends_the_carton_to_review_not_limbo(
    tmp_path: Path, broker, monkeypatch
) -> None:
    async def broken(*_args: object) -> None:
        raise KeyError("a bug in a channel")

    monkeypatch.setattr(WeightChannel, "collect", broken)  # fault injection, the device is real
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        assert running.wait_for(lambda fx: verdicts(fx) == ["REVIEW"])
        assert running.daemon.session.state is SessionState.BLOCKED


def storage_faults(effects: list[Effect], name: str) -> list[dict]:
    return [f for f in faults(effects) if f.get("device") == f"storage {name}"]


def test_a_verdict_whose_event_cannot_be_committed_holds_the_carton_until_storage_is_back(
    tmp_path: Path, broker, monkeypatch
) -> None:
    full = threading.Event()
    full.set()
    commit = Outbox.commit

    def full_disk(self: Outbox, event_type: EventType, *args: object, **kwargs: object):
        if full.is_set() and event_type is EventType.VERIFICATION_RESULT:
            raise sqlite3.OperationalError("database or disk is full")
        return commit(self, event_type, *args, **kwargs)

    monkeypatch.setattr(Outbox, "commit", full_disk)  # fault injection on a real SQLite outbox
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        assert running.wait_for(
            lambda fx: any(
                isinstance(e, ShowMessage) and e.key == "station.storage_failed" for e in fx
            )
        )
        time.sleep(0.5)
        effects = list(running.effects)
        assert verdicts(effects) == []  # no evidence row, so no label permission
        assert not any(isinstance(e, SetLight) and e.color == "green" for e in effects)
        assert running.daemon.evidence.attempts("ORD-1001", "C1") == []
        # Held, not forgotten: the carton is still open, its attempt void.
        assert running.daemon.session.state is SessionState.PACKING
        assert running.daemon.session.open_carton == ("ORD-1001", "C1")
        (raised,) = storage_faults(effects, "outbox.sqlite3")
        assert "outbox.sqlite3 cannot be written (database or disk is full)" in raised["message"]
        assert "free disk space" in raised["message"] and not raised["cleared"]

        full.clear()  # space freed: the packer closes again
        station.close()
        assert running.wait_for(lambda fx: verdicts(fx) == ["PASS"])
        assert [a["attempt"] for a in running.daemon.evidence.attempts("ORD-1001", "C1")] == [2]
        assert running.wait_for(
            lambda fx: [f["cleared"] for f in storage_faults(fx, "outbox.sqlite3")] == [False, True]
        )


def test_evidence_that_cannot_be_written_holds_the_carton_and_says_which_file(
    tmp_path: Path, broker, monkeypatch
) -> None:
    def full_disk(*_args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(EvidenceStore, "append", full_disk)
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        station.pack("7", "ORD-1001", "C1", "BOX-S")
        assert running.wait_for(lambda fx: storage_faults(fx, "evidence.sqlite3"))
        (raised,) = storage_faults(running.effects, "evidence.sqlite3")
        data_dir = running.daemon.config.station.data_dir
        assert str(data_dir / "evidence.sqlite3") in raised["message"]
        assert running.daemon.session.state is SessionState.PACKING
        assert not any(isinstance(e, SetLight) and e.color == "green" for e in running.effects)


def test_a_full_data_directory_at_start_is_said_loudly_and_the_daemon_exits(
    tmp_path: Path, broker
) -> None:
    """A real full disk: a tiny tmpfs as the data directory, filled up before the start."""
    with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
        data_dir = load_station_config(station.config_path).station.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data_dir)],
            capture_output=True,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode()}")
        try:
            with contextlib.suppress(OSError), (data_dir / "filler").open("wb", 0) as filler:
                while True:
                    filler.write(b"\0" * 4096)
            run = subprocess.run(
                [sys.executable, "-m", "station.cli", "run", str(station.config_path)],
                capture_output=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
        finally:
            subprocess.run(["umount", str(data_dir)], check=True)
    output = (run.stdout + run.stderr).decode()
    assert run.returncode == STORAGE_UNUSABLE, output
    assert "station files cannot be opened: free disk space" in output
    assert "database or disk is full" in output and str(data_dir) in output


def test_a_stored_session_this_catalog_cannot_take_back_is_set_aside_not_a_crash(
    tmp_path: Path, broker
) -> None:
    """The carton left open names a SKU the new catalog no longer has: the station starts
    logged out, moves the session file aside and publishes SESSION_LOST."""
    blocked, _ = blocked_short_one_tea()  # the session tests' catalog: MUG-1, TEA-1
    with SimulatedStation(tmp_path / "st", broker.host, broker.port) as station:
        data_dir = load_station_config(station.config_path).station.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        store = SessionStore(data_dir / "session.sqlite3")
        store.save(blocked.snapshot())
        store.close()
        with InProcessDaemon(station.config_path) as running:
            assert running.wait_for(
                lambda fx: any(f.get("code") == "session_lost" for f in faults(fx))
            )
            (lost,) = [f for f in faults(running.effects) if f.get("code") == "session_lost"]
            assert "MUG-1" in lost["message"] and "session.sqlite3" in lost["message"]
            assert running.daemon.session.state is SessionState.LOGGED_OUT
            station.pack("7", "ORD-1001", "C1", "BOX-S")  # the station works on
            assert running.wait_for(lambda fx: verdicts(fx) == ["PASS"])
        assert len(list(data_dir.glob("session.sqlite3.damaged-*"))) == 1


def messages(effects: list[Effect]) -> list[str]:
    return [e.key for e in effects if isinstance(e, ShowMessage)]


def open_and_fill(station: SimulatedStation, running: InProcessDaemon, order_id: str) -> None:
    """Log in, open the carton, put the box and every unit of its current manifest in."""
    station.scan("BADGE-7")
    station.scan(f"{order_id}/C1")
    assert running.wait_for(lambda _: running.daemon.session.state is SessionState.AWAITING_BOX)
    station.scan("BOX-S")
    station.place(station.box_weight("BOX-S") + PAPERWORK_G)
    for sku in station.units_of(station.manifest(order_id, "C1")):
        station.add_unit(sku)


def test_an_order_cancelled_mid_pack_stops_the_carton_at_close(tmp_path: Path, broker) -> None:
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        open_and_fill(station, running, "ORD-1001")
        current = station.manifest("ORD-1001", "C1")
        station.write_manifest(
            current.model_copy(update={"version": 2, "status": ManifestStatus.CANCELLED})
        )
        station.close()

        assert running.wait_for(lambda fx: "order.cancelled" in messages(fx))
        assert running.daemon.session.state is SessionState.IDLE
        assert verdicts(running.effects) == []  # no verdict on a cancelled order
        audits = [
            (e.kind, e.data.get("reason")) for e in running.effects if isinstance(e, RecordAudit)
        ]
        assert ("carton.aborted", "order_cancelled") in audits


def test_a_manifest_changed_mid_pack_is_fetched_again_and_checked_anew(
    tmp_path: Path, broker
) -> None:
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        open_and_fill(station, running, "ORD-1001")
        current = station.manifest("ORD-1001", "C1")
        added = ManifestLine(line_id="9", sku="MUG-BLUE", quantity=1)
        station.write_manifest(
            current.model_copy(update={"version": 2, "lines": (*current.lines, added)})
        )
        station.close()

        assert running.wait_for(lambda fx: "order.superseded" in messages(fx))
        assert running.wait_for(lambda _: running.daemon.session.state is SessionState.PACKING)
        assert verdicts(running.effects) == []  # the first close was void: it used old lines
        station.add_unit("MUG-BLUE")
        station.close()
        assert running.wait_for(lambda fx: verdicts(fx) == ["PASS"])
        [attempt] = [e for e in running.effects if isinstance(e, RecordAttempt)]
        assert attempt.record.manifest_version == 2
