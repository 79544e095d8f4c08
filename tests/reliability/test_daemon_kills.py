"""Scenario 2: the daemon is SIGKILLed at several points and restarted with the same config.

Kill points: (a) right after the close scan, before the verdict; (b) after the verdict is
committed while the broker is down, so its events are still in the outbox; (c) while the outbox
drains after a broker outage. Afterwards: no event lost (the sink holds every committed station
sequence number), no PASS without its attempt in the evidence store, the outbox is empty.

The open session is recovered on restart from `session.sqlite3` (docs/reliability.md): after (a)
the carton is open again with attempt 1 void (its verdict never came) and the packer closes it
again as attempt 2; after (b) it is still BLOCKED at attempt 1, and the PASS after the fix is
attempt 2 and publishes `missing_item.resolved`. Each recovery publishes a SESSION_RECOVERED fault.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import DETECTED, RESOLVED, VERIFICATION, wait_until
from tests.reliability.conftest import (
    Scenario,
    carton_stream,
    pass_without_attempt,
    timed_drain,
    verify_carton,
)

pytestmark = pytest.mark.e2e

SEED = 7001


def test_daemon_sigkill_loses_no_event_and_passes_nothing_unverified(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()
    stream = carton_stream(harness, 10, SEED)
    faults = Counter[str]()
    recovery: list[float] = []

    # (a) SIGKILL right after the daemon took the close scan: the verdict waits for the scale to
    # settle (motion + stability + settle windows, ~0.75 s), so it cannot have been taken yet.
    order_a, _ = stream[0]
    harness.pack(order_a)
    assert wait_until(
        lambda: any(m.get("msg") == "close.verifying" for m in harness.daemon.log_messages()),
        timeout=5,
        poll=0.005,
    )
    harness.daemon.kill()
    faults["daemon SIGKILL before verdict"] += 1
    time.sleep(1.0)  # longer than the verdict would have taken
    assert harness.attempts(order_a) == []
    harness.ship()
    harness.start_daemon()
    # The carton is recovered with attempt 1 void: packed again (the scans of an open carton
    # are harmless), the close is attempt 2 and it is verified afresh.
    harness.pack(order_a)
    assert harness.wait_for_attempts(order_a, timeout=15) == [(2, "PASS")]
    harness.ship()

    # (b) SIGKILL after the verdict was committed, with the broker down: events in the outbox.
    order_b, missing_b = next((o, m) for o, m in stream[1:] if m is not None)
    harness.wait_for_outbox_empty()
    harness.broker.stop()
    faults["broker stop"] += 1
    harness.pack(order_b, leave_out=(missing_b,))
    assert harness.wait_for_attempts(order_b) == [(1, "BLOCK")]
    assert harness.wait_for_outbox_types({VERIFICATION, DETECTED})
    harness.daemon.kill()
    faults["daemon SIGKILL verdict in outbox"] += 1
    harness.broker.start()
    harness.start_daemon()
    recovery.append(timed_drain(harness))
    # Still blocked after the restart: the packer adds the unit and closes (attempt 2); the
    # shortage published before the kill is resolved.
    harness.add_and_close(missing_b)
    attempts_b = harness.wait_for_attempts(order_b, count=2)
    assert attempts_b == [(1, "BLOCK"), (2, "PASS")]
    harness.wait_for_event(RESOLVED, lambda e: e["data"]["order_id"] == order_b)
    harness.ship()

    # (c) SIGKILL while the outbox drains after an outage.
    rest = [(o, m) for o, m in stream[1:] if o != order_b]
    harness.broker.stop()
    faults["broker stop"] += 1
    for order_id, missing in rest[:4]:
        verify_carton(harness, order_id, missing)
    queued = harness.outbox_depth()
    assert queued > 0
    harness.broker.start()
    wait_until(lambda: harness.outbox_depth() < queued, timeout=10, poll=0.005)
    harness.daemon.kill()
    faults["daemon SIGKILL during drain"] += 1
    left_at_kill = harness.outbox_depth()
    harness.start_daemon()
    recovery.append(timed_drain(harness))
    for order_id, missing in rest[4:]:
        verify_carton(harness, order_id, missing)

    delivered = harness.wait_for_all_delivered(timeout=30)
    harness.wait_for_outbox_empty()
    committed = harness.station_seq()
    assert harness.sink is not None
    gaps = harness.sink_gaps()
    wrongly_passed = pass_without_attempt(harness)
    figures.update(
        cartons=len(stream),
        short_cartons=sum(1 for _, missing in stream if missing),
        faults=dict(faults),
        events_produced=committed,
        events_delivered=len(delivered),
        duplicates_removed=len(harness.sink.duplicates),
        gaps=len(gaps),
        wrongly_passed=wrongly_passed,
        recovery_s=recovery,
        outbox_at_drain_kill={"queued": queued, "left": left_at_kill},
        blocked_then_restarted={
            "attempts": attempts_b,
            "resolved_events": len(
                [e for e in harness.events(RESOLVED) if e["data"]["order_id"] == order_b]
            ),
        },
    )

    assert sorted(e["stationseq"] for e in delivered) == list(range(1, committed + 1))
    assert gaps == []
    assert harness.outbox_depth() == 0
    assert wrongly_passed == 0
    for order_id, missing in stream:
        outcomes = [v["data"]["outcome"] for v in harness.verdicts(order_id)]
        assert outcomes[-1] == "PASS" and outcomes.count("PASS") == 1, (order_id, outcomes)
        if missing is not None:
            assert outcomes[0] == "BLOCK", (order_id, outcomes)
