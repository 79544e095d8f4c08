"""Snapshot and restore: a session rebuilt from a snapshot (through the stored JSON form) behaves
exactly like the one it was taken of, whatever came before; `recover` carries an open carton
across a restart with its attempt numbers and published shortage."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from station.carton_policy import Fallback
from station.clock import ManualClock
from station.codes import BadgeCode, BoxCode, CloseCode, ItemCode, OrderCartonCode
from station.session import (
    DEGRADED_RESAVE_S,
    MISSING_DETECTED,
    MISSING_RESOLVED,
    STATION_FAULT,
    VERIFICATION_RESULT,
    CollectEvidence,
    DegradedModeEnded,
    DegradedModeRequested,
    DeviceFault,
    EvidenceReady,
    FetchManifest,
    FinalWeight,
    LabelGranted,
    ManifestChanged,
    ManifestLoaded,
    PublishEvent,
    Scanned,
    Session,
    SessionState,
    SetLight,
    Tick,
    WeightCaptured,
    WorkflowConfig,
)
from station.session_store import FORMAT, SessionStore, SessionUnreadable

from .drive import ORDER, manifest, new_session, weight_report
from .test_session_stateful import CODES, ORDERS, REPORTS


def through_the_store(session: Session, tmp: Path) -> Session:
    """A fresh session (same config and clock) restored from `session`'s stored snapshot."""
    store = SessionStore(tmp)
    try:
        store.save(session.snapshot())
        loaded = store.load()
    finally:
        store.close()
    assert loaded is not None
    twin = Session(
        session._config, session._catalog, session._policy, session._clock, session._weight_power
    )
    twin.restore(loaded)
    return twin


class TwinSessions(RuleBasedStateMachine):
    """Feeds every input to the original and to a copy restored from a snapshot at random
    points; their effects and snapshots must never differ."""

    def __init__(self) -> None:
        super().__init__()
        self._dir = Path(tempfile.mkdtemp(prefix="session-snapshot-"))
        self._saves = 0

    def teardown(self) -> None:
        # Hypothesis builds one machine per example: without this, every run left 80 folders.
        shutil.rmtree(self._dir, ignore_errors=True)

    @initialize(mode=st.sampled_from(["shadow", "enforce"]))
    def start(self, mode):
        self.original, self.clock = new_session(mode, "either", timeout_s=600)
        self.copy = self._restored()

    def _restored(self) -> Session:
        self._saves += 1
        return through_the_store(self.original, self._dir / f"s{self._saves}.sqlite3")

    def _both(self, event):
        expected = self.original.handle(event)
        assert self.copy.handle(event) == expected, event

    @rule()
    def snapshot_and_restore(self):
        self.copy = self._restored()

    @rule(code=CODES)
    def scan(self, code):
        self._both(Scanned(code))

    @rule()
    def manifest_for_the_open_carton(self):
        if self.original.open_carton:
            self._both(ManifestLoaded(manifest(OrderCartonCode(*self.original.open_carton))))

    @rule(reports=REPORTS)
    def evidence_for_the_current_attempt(self, reports):
        carton = self.original.snapshot().carton
        self._both(EvidenceReady(carton.attempts if carton else 1, reports))

    @rule(order=ORDERS, kind=st.sampled_from(["cancelled", "superseded"]))
    def manifest_changed(self, order, kind):
        self._both(ManifestChanged(order.order_id, order.carton_id, kind))

    @rule(seconds=st.sampled_from([0.5, 1.0, 300.0, 700.0]))
    def time_passes(self, seconds):
        self.clock.advance(seconds)
        self._both(Tick(self.clock.monotonic()))

    @rule(reviewer=st.sampled_from(["P1", "R9"]), minutes=st.sampled_from([1, 20]))
    def degraded_mode(self, reviewer, minutes):
        self._both(
            DegradedModeRequested(Fallback.SCAN_FOR_WEIGHT, reviewer, "scale_down", minutes * 60)
        )

    @rule()
    def degraded_mode_ended(self):
        self._both(DegradedModeEnded("R9"))

    @rule()
    def device_fault(self):
        self._both(DeviceFault("scale", "timeout"))

    @rule(grams=st.sampled_from([None, 0.5, 350.0]))
    def weight_captured(self, grams):
        latest = self.original.snapshot().weigh_requests
        self._both(WeightCaptured(latest, grams, problem="" if grams else "unstable"))

    @rule(grams=st.sampled_from([None, 10.0, 900.0]))
    def final_weight(self, grams):
        if self.original.awaiting_label:
            self._both(FinalWeight(*self.original.awaiting_label, grams))

    @rule(label=st.sampled_from(["1Z999AA10123456784", "1Z999AA10123456999"]))
    def label_granted(self, label):
        if self.original.awaiting_label:
            self._both(LabelGranted(*self.original.awaiting_label, label))

    @invariant()
    def same_session(self):
        if hasattr(self, "copy"):
            assert self.copy.snapshot() == self.original.snapshot()
            assert self.copy.carton_view() == self.original.carton_view()


TwinSessions.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestTwinSessions = TwinSessions.TestCase


# ------------------------------------------------------------------------- recover (restart)


def blocked_short_one_tea() -> tuple[Session, ManualClock]:
    session, clock = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(Scanned(ORDER))
    session.handle(ManifestLoaded(manifest()))
    session.handle(Scanned(BoxCode("BOX-S")))
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(CloseCode()))
    effects = session.handle(EvidenceReady(1, (weight_report({"TEA-1": 1}),)))
    assert [e.kind for e in effects if isinstance(e, PublishEvent)] == [
        VERIFICATION_RESULT,
        MISSING_DETECTED,
    ]
    assert session.state is SessionState.BLOCKED
    return session, clock


def restarted(session: Session, tmp_path: Path, down_s: float = 30.0) -> tuple[Session, list]:
    """The snapshot stored, a new process (its own monotonic origin, `down_s` later) recovers."""
    store = SessionStore(tmp_path / "session.sqlite3")
    store.save(session.snapshot())
    store.close()
    store = SessionStore(tmp_path / "session.sqlite3")
    snapshot = store.load()
    store.close()
    assert snapshot is not None
    old_clock = session._clock
    clock = ManualClock(
        start_monotonic=5.0, start_utc=old_clock.now_utc() + timedelta(seconds=down_s)
    )
    fresh = Session(
        WorkflowConfig(inactivity_timeout_s=600.0),
        session._catalog,
        session._policy,
        clock,
        session._weight_power,
    )
    return fresh, fresh.recover(snapshot)


def test_a_blocked_carton_recovers_and_its_pass_resolves_the_shortage(tmp_path: Path) -> None:
    session, _ = blocked_short_one_tea()
    fresh, effects = restarted(session, tmp_path)

    assert fresh.state is SessionState.BLOCKED
    assert fresh.packer == "P1" and fresh.open_carton == (ORDER.order_id, ORDER.carton_id)
    (fault,) = [e for e in effects if isinstance(e, PublishEvent)]
    assert fault.kind == STATION_FAULT and fault.data["code"] == "session_recovered"
    assert fault.data["attempt"] == 1 and fault.data["cleared"] is True
    assert SetLight("red") in effects
    # No scan before the restart counts towards the inactivity timeout on the new clock.
    assert fresh.handle(Tick(fresh._clock.monotonic() + 599)) == []

    fresh.handle(Scanned(ItemCode("TEA-1", 1)))
    (collect,) = [e for e in fresh.handle(Scanned(CloseCode())) if isinstance(e, CollectEvidence)]
    assert collect.attempt == 2
    published = fresh.handle(EvidenceReady(2, (weight_report(),)))
    kinds = [(e.kind, e.data["attempt"]) for e in published if isinstance(e, PublishEvent)]
    assert kinds == [(VERIFICATION_RESULT, 2), (MISSING_RESOLVED, 2)]
    assert fresh.state is SessionState.IDLE


def test_an_attempt_in_flight_at_the_crash_is_void_and_not_reused(tmp_path: Path) -> None:
    session, _ = blocked_short_one_tea()
    session.handle(Scanned(CloseCode()))  # attempt 2 in flight when the process dies
    assert session.state is SessionState.VERIFYING
    fresh, effects = restarted(session, tmp_path)

    assert fresh.state is SessionState.BLOCKED  # back where the close found it
    (fault,) = [e for e in effects if isinstance(e, PublishEvent)]
    assert "attempt 2 was interrupted" in str(fault.data["message"])
    # The evidence the dead process was waiting for never arrives; a late one is stale.
    assert fresh.handle(EvidenceReady(2, (weight_report(),))) == []
    (collect,) = [e for e in fresh.handle(Scanned(CloseCode())) if isinstance(e, CollectEvidence)]
    assert collect.attempt == 3


def test_a_first_close_in_flight_goes_back_to_packing(tmp_path: Path) -> None:
    session, _ = new_session()
    for code in (BadgeCode("P1"), ORDER):
        session.handle(Scanned(code))
    session.handle(ManifestLoaded(manifest()))
    session.handle(Scanned(BoxCode("BOX-S")))
    session.handle(Scanned(CloseCode()))
    fresh, _ = restarted(session, tmp_path)
    assert fresh.state is SessionState.PACKING
    assert fresh.carton_view().attempts == 1


def test_a_manifest_being_fetched_is_fetched_again(tmp_path: Path) -> None:
    session, _ = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(Scanned(ORDER))
    fresh, effects = restarted(session, tmp_path)
    assert fresh.state is SessionState.LOADING
    assert FetchManifest(ORDER.order_id, ORDER.carton_id) in effects


def test_nobody_logged_in_recovers_quietly(tmp_path: Path) -> None:
    session, _ = new_session()
    fresh, effects = restarted(session, tmp_path)
    assert effects == [] and fresh.state is SessionState.LOGGED_OUT


@pytest.mark.parametrize(
    ("down_s", "left_s"), [(30.0, 1170.0), (-600.0, 1200.0), (9999.0, -8799.0)]
)
def test_a_degraded_mode_ends_no_later_than_its_utc_end(
    tmp_path: Path, down_s: float, left_s: float
) -> None:
    """Time down does not count on the monotonic clock, but the UTC end caps the mode; a wall
    clock set back (-600) does not extend it."""
    session, _ = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(DegradedModeRequested(Fallback.SCAN_FOR_WEIGHT, "R9", "scale_down", 1200))
    fresh, _ = restarted(session, tmp_path, down_s=down_s)
    now = fresh._clock.monotonic()
    assert fresh.degraded is not None
    assert fresh.degraded.ends_monotonic == pytest.approx(now + left_s)
    lapsed = [e for e in fresh.handle(Tick(now)) if isinstance(e, PublishEvent)]
    assert bool(lapsed) is (left_s <= 0)


def test_while_a_degraded_mode_runs_an_unchanged_session_is_saved_again_every_few_seconds() -> None:
    """A restart counts the mode's time left from the stored snapshot: an idle station whose
    snapshot stayed old would give the mode back all the time since (then a clock set back
    lets it run on). Without a mode, an unchanged session is not written again."""
    session, clock = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    saved = session.snapshot()
    clock.advance(DEGRADED_RESAVE_S * 5)
    assert not session.snapshot().worth_saving_over(saved)
    session.handle(DegradedModeRequested(Fallback.SCAN_FOR_WEIGHT, "R9", "scale_down", 1200))
    saved = session.snapshot()
    clock.advance(DEGRADED_RESAVE_S - 1)
    assert not session.snapshot().worth_saving_over(saved)
    clock.advance(1)
    assert session.snapshot().worth_saving_over(saved)


# --------------------------------------------------------------------------------- the store


def test_the_store_keeps_the_last_snapshot_only(tmp_path: Path) -> None:
    session, _ = blocked_short_one_tea()
    store = SessionStore(tmp_path / "session.sqlite3")
    assert store.load() is None
    first = session.snapshot()
    store.save(first)
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    store.save(session.snapshot())
    assert store.load() == session.snapshot() != first
    store.close()


def test_a_row_from_another_format_is_reported_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "session.sqlite3"
    store = SessionStore(path)
    store.save(new_session()[0].snapshot())
    store._db.execute("UPDATE session SET format = ?", (FORMAT + 1,))
    with pytest.raises(SessionUnreadable, match="format"):
        store.load()
    store._db.execute("UPDATE session SET format = ?, snapshot = '{\"state\": 3}'", (FORMAT,))
    with pytest.raises(SessionUnreadable, match="invalid fields"):
        store.load()
    store.close()


def test_a_file_of_garbage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "session.sqlite3"
    path.write_bytes(b"\x00garbage, not a database\xff" * 200)
    with pytest.raises(SessionUnreadable, match=str(path)):
        SessionStore(path)


def test_same_state_ignores_only_when_it_was_taken() -> None:
    session, clock = blocked_short_one_tea()
    before = session.snapshot()
    clock.advance(5)
    assert session.snapshot().same_state(before)
    assert not replace(before, packer="P2").same_state(before)
    assert not before.same_state(None)


def test_a_verdict_the_station_could_not_record_is_rolled_back_and_its_attempt_void() -> None:
    session, _ = blocked_short_one_tea()
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(CloseCode()))
    before = session.snapshot()  # VERIFYING attempt 2
    session.handle(EvidenceReady(2, (weight_report(),)))
    assert session.state is SessionState.IDLE  # the PASS, whose event could not be committed
    session.roll_back(before)

    assert session.state is SessionState.BLOCKED and session.carton_view().attempts == 2
    (collect,) = [e for e in session.handle(Scanned(CloseCode())) if isinstance(e, CollectEvidence)]
    assert collect.attempt == 3
    passed = session.handle(EvidenceReady(3, (weight_report(),)))
    # The shortage published at attempt 1 is still resolved by the PASS that is recorded.
    assert [e.kind for e in passed if isinstance(e, PublishEvent)] == [
        VERIFICATION_RESULT,
        MISSING_RESOLVED,
    ]


def test_the_timed_unit_scans_reach_the_close_and_survive_a_restart(tmp_path: Path) -> None:
    """Each accepted item scan is kept with its monotonic time and handed to the close (the
    per-insertion channel pairs them with its steps); a restart moves the times onto the new
    process's clock, as it does the other times."""
    session, clock = new_session()
    for code in (BadgeCode("P1"), ORDER):
        session.handle(Scanned(code))
    session.handle(ManifestLoaded(manifest()))
    session.handle(Scanned(BoxCode("BOX-M")))
    clock.advance(2.0)
    session.handle(Scanned(ItemCode("MUG-1", 1)))
    clock.advance(1.5)
    session.handle(Scanned(ItemCode("TEA-1", 2)))
    scanned_at = [1002.0, 1003.5]  # ManualClock starts at 1000.0
    fresh, _ = restarted(session, tmp_path)  # the new clock starts at 5.0: times move by -998.5
    (collect,) = [e for e in fresh.handle(Scanned(CloseCode())) if isinstance(e, CollectEvidence)]
    assert [(s.sku, s.units) for s in collect.unit_scans] == [("MUG-1", 1), ("TEA-1", 2)]
    assert [s.at for s in collect.unit_scans] == pytest.approx([t - 998.5 for t in scanned_at])
