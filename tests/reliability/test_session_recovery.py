"""Scenario 3: the daemon is SIGKILLed while a carton is BLOCKED and restarted with the same data
dir. The open carton is recovered from `session.sqlite3`: the packer adds the missing unit and
closes; the close is attempt 2, it passes, and `missing_item.resolved` closes the detection
published before the kill. The restart itself is published as a `SESSION_RECOVERED` fault."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import DETECTED, FAULT, RESOLVED, VERIFICATION
from tests.reliability.conftest import Scenario, pass_without_attempt

pytestmark = pytest.mark.e2e

ORDER, MISSING = "ORD-1001", "MUG-BLUE"


def test_a_blocked_carton_survives_a_daemon_sigkill(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()

    harness.pack(ORDER, leave_out=(MISSING,))
    assert harness.wait_for_attempts(ORDER) == [(1, "BLOCK")]
    detected = harness.wait_for_event(DETECTED, lambda e: e["data"]["order_id"] == ORDER)

    harness.daemon.kill()
    restarted_at = time.monotonic()
    harness.start_daemon()
    recovered = harness.wait_for_event(
        FAULT, lambda e: e["data"]["code"] == "SESSION_RECOVERED", timeout=15
    )
    recovery_s = round(time.monotonic() - restarted_at, 3)
    assert recovered["subject"] == f"{ORDER}/C1"
    assert "blocked" in recovered["data"]["message"]

    # No re-scan: the recovered carton is still open and blocked; the packer fixes and closes.
    harness.add_and_close(MISSING)
    assert harness.wait_for_attempts(ORDER, count=2, timeout=15) == [(1, "BLOCK"), (2, "PASS")]
    resolved = harness.wait_for_event(RESOLVED, lambda e: e["data"]["order_id"] == ORDER)
    assert resolved["data"]["attempt"] == 2
    assert [line["sku"] for line in resolved["data"]["resolved_lines"]] == [
        line["sku"] for line in detected["data"]["missing_lines"]
    ]
    outcomes = [(v["data"]["attempt"], v["data"]["outcome"]) for v in harness.verdicts(ORDER)]
    assert outcomes == [(1, "BLOCK"), (2, "PASS")]
    # The carton's events stay in order across the restart (cartonversion per order/carton).
    versions = [e["cartonversion"] for e in harness.events() if e.get("subject") == f"{ORDER}/C1"]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    harness.ship()

    delivered = harness.wait_for_all_delivered()
    wrongly_passed = pass_without_attempt(harness)
    assert wrongly_passed == 0
    assert sorted(e["stationseq"] for e in delivered) == list(range(1, harness.station_seq() + 1))
    figures.update(
        cartons=1,
        faults={"daemon SIGKILL while blocked": 1},
        events_produced=harness.station_seq(),
        events_delivered=len(delivered),
        duplicates_removed=len(harness.sink.duplicates) if harness.sink else 0,
        gaps=len(harness.sink_gaps()),
        wrongly_passed=wrongly_passed,
        session_recovery_s=recovery_s,
        attempts=harness.attempts(ORDER),
        resolved_events=len(harness.events(RESOLVED)),
        verdicts=len(harness.events(VERIFICATION)),
    )
