"""What the session waits for outside an open carton survives a daemon SIGKILL: a carton that
passed and waits for its shipping label (the final weight check is still made after the restart,
and still catches a unit taken out), a final weight being read (read again), and a weigh-one-unit
capture being read (read again, recorded once). Same config and data dir on every restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import FAULT, VERIFICATION, Harness, query, wait_until
from tests.reliability.conftest import Scenario, pass_without_attempt

pytestmark = pytest.mark.e2e

MUG = "MUG-BLUE"
LABEL = "1Z999AA10123456784"
RECOVERED = "SESSION_RECOVERED"


def stored_session(harness: Harness) -> dict[str, Any]:
    rows = query(harness.data_dir / "session.sqlite3", "SELECT snapshot FROM session")
    return json.loads(rows[0][0]) if rows else {}


def awaiting_label(harness: Harness) -> dict[str, Any] | None:
    waiting: dict[str, Any] | None = stored_session(harness).get("awaiting_label")
    return waiting


def audits(harness: Harness, order_id: str, kind: str) -> list[dict[str, Any]]:
    rows = query(
        harness.data_dir / "evidence.sqlite3",
        "SELECT body FROM records WHERE kind = ? AND order_id = ? ORDER BY seq",
        (kind, order_id),
    )
    return [json.loads(body) for (body,) in rows]


def passed_carton(make_harness: Scenario, order_id: str) -> Harness:
    """A station (sink and daemon running) whose packer has just packed `order_id`: it passed."""
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()
    harness.pack(order_id)
    assert harness.wait_for_attempts(order_id) == [(1, "PASS")]
    return harness


def kill_and_restart(harness: Harness, while_down: Callable[[], object] = lambda: None) -> float:
    """SIGKILL, `while_down`, start again; returns the monotonic time of the restart."""
    harness.daemon.kill()
    while_down()
    restarted_at = time.monotonic()
    harness.start_daemon()
    return restarted_at


def recovered_fault(harness: Harness, subject: str) -> dict[str, Any]:
    return harness.wait_for_event(
        FAULT,
        lambda e: e["data"]["code"] == RECOVERED and e.get("subject") == subject,
        timeout=15,
    )


def wait_for_outcomes(harness: Harness, order_id: str, expected: list[tuple[int, str]]) -> None:
    """The carton's attempt records are `expected` (a withdrawn PASS is not one of the verdict
    messages `Harness.wait_for_attempts` counts, so it waits on the records themselves)."""
    assert wait_until(lambda: harness.attempts(order_id) == expected), (
        f"{harness.attempts(order_id)}\n{harness.daemon.log_tail()}"
    )


def delivered_figures(harness: Harness) -> dict[str, Any]:
    delivered = harness.wait_for_all_delivered(timeout=30)
    assert sorted(e["stationseq"] for e in delivered) == list(range(1, harness.station_seq() + 1))
    assert harness.sink_gaps() == []
    return {
        "events_produced": harness.station_seq(),
        "events_delivered": len(delivered),
        "duplicates_removed": len(harness.sink.duplicates) if harness.sink else 0,
        "gaps": len(harness.sink_gaps()),
        "wrongly_passed": pass_without_attempt(harness),
    }


def test_a_carton_waiting_for_its_label_is_still_weighed_after_a_sigkill(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    """Before the fix the label scan after a restart found no carton ("close.no_order"): the
    final weight check was skipped, and a unit taken out while the station was down went out."""
    order = "ORD-1001"
    harness = passed_carton(make_harness, order)
    assert wait_until(lambda: awaiting_label(harness) is not None), stored_session(harness)

    # A mug is taken out while the daemon is down.
    restarted_at = kill_and_restart(
        harness, lambda: harness.station.place(-harness.station.unit_weight(MUG))
    )
    fault = recovered_fault(harness, f"{order}/C1")
    recovery_s = round(time.monotonic() - restarted_at, 3)
    assert "awaiting_label" in fault["data"]["message"]

    harness.wait_for_settled()
    harness.station.scan(LABEL)  # the final weight: a mug lighter than at the verdict
    wait_for_outcomes(harness, order, [(1, "PASS"), (1, "REVIEW")])
    withdrawn = harness.wait_for_event(
        VERIFICATION, lambda e: e["data"]["outcome"] == "REVIEW", timeout=15
    )
    assert withdrawn["data"]["reasons"][0]["code"] == "final_weight_low"

    # The packer puts the mug back and closes again; this time the label seals the PASS.
    harness.add_and_close(MUG)
    wait_for_outcomes(harness, order, [(1, "PASS"), (1, "REVIEW"), (2, "PASS")])
    harness.wait_for_settled()
    harness.station.scan(LABEL)
    assert wait_until(lambda: audits(harness, order, "carton.sealed") != [])
    (sealed,) = audits(harness, order, "carton.sealed")
    assert sealed["attempt"] == 2 and sealed["label"] == LABEL
    figures.update(
        cartons=1,
        faults={"daemon SIGKILL while a passed carton waits for its label": 1},
        session_recovery_s=recovery_s,
        attempts=harness.attempts(order),
        **delivered_figures(harness),
    )


def test_a_final_weight_being_read_at_a_sigkill_is_read_again(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    order = "ORD-1002"
    harness = passed_carton(make_harness, order)
    # The table is bumped as the label goes on: the final weight waits for the scale to settle.
    harness.station.jostle(4.0)
    harness.station.scan(LABEL)
    pending = lambda: (awaiting_label(harness) or {}).get("final_weight_pending") is True  # noqa: E731
    assert wait_until(pending, timeout=3), stored_session(harness)

    restarted_at = kill_and_restart(harness)
    fault = recovered_fault(harness, f"{order}/C1")
    recovery_s = round(time.monotonic() - restarted_at, 3)
    assert "final weight is read again" in fault["data"]["message"]
    assert wait_until(lambda: audits(harness, order, "carton.sealed") != [], timeout=15)
    (sealed,) = audits(harness, order, "carton.sealed")
    assert sealed["attempt"] == 1 and sealed["label"] == LABEL
    assert abs(sealed["final_g"] - sealed["verdict_g"]) < 15
    assert harness.attempts(order) == [(1, "PASS")]  # the PASS stands; nothing withdrawn
    # The session row is saved after the audit record is written: wait for it, not race it
    # (CI under load once read the row in between).
    assert wait_until(lambda: awaiting_label(harness) is None), stored_session(harness)
    figures.update(
        cartons=1,
        faults={"daemon SIGKILL while the final weight is read": 1},
        session_recovery_s=recovery_s,
        **delivered_figures(harness),
    )


def test_a_weigh_one_unit_capture_being_read_at_a_sigkill_is_read_again(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()
    station = harness.station
    station.scan("BADGE-A1")
    station.scan("WEIGH-UNIT")
    grams = station.unit_weight(MUG)
    station.place(grams)
    harness.wait_for_settled()
    station.jostle(4.0)  # the capture waits for the scale to settle again
    station.scan(station.catalog.items[MUG].barcodes[0].code)
    assert wait_until(lambda: stored_session(harness).get("weighing") is not None, timeout=3)

    kill_and_restart(harness)
    samples = lambda: query(  # noqa: E731
        harness.data_dir / "learned_weights.sqlite",
        "SELECT key, grams_per_unit FROM samples WHERE source = 'unit_weighed'",
    )
    assert wait_until(lambda: samples() != [], timeout=15), harness.daemon.log_tail()
    time.sleep(1.0)  # a second capture of the same unit would be recorded by now
    ((key, recorded),) = samples()
    assert key == MUG and abs(recorded - grams) < 3
    messages = [m.get("msg") for m in harness.daemon.log_messages()]
    assert "session.resumed" in messages and "weigh.captured_unit" in messages
    assert stored_session(harness)["state"] == "weighing"
    assert stored_session(harness)["weighing"] is None
    # Master data, not a carton: the restart publishes nothing.
    assert [e for e in harness.events(FAULT) if e["data"]["code"] == RECOVERED] == []
    assert harness.events(VERIFICATION) == []
    figures.update(faults={"daemon SIGKILL while a unit is weighed": 1}, samples_recorded=1)
