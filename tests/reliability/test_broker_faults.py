"""Scenario 1: the broker is SIGKILLed and restarted several times while a stream of cartons is
verified, and the sink (the reissue backend) is offline part of the time. Afterwards the sink
holds exactly one copy of every event the station committed, with no sequence gap, and the
station's outbox is empty."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import VERIFICATION
from tests.reliability.conftest import (
    Scenario,
    assert_delivered_exactly_once,
    carton_stream,
    pass_without_attempt,
    save_on_every_change,
    sigkill_broker,
    timed_drain,
    verify_carton,
)

pytestmark = pytest.mark.e2e

CARTONS = 30
SEED = 20261126
BROKER_KILLED_AT = (4, 11, 18, 25)  # before these cartons; two cartons verified while it is down
CARTONS_WHILE_DOWN = 2
SINK_OFFLINE = (range(8, 16), range(22, CARTONS))  # cartons verified while the sink is away


def test_broker_sigkill_and_offline_sink_lose_nothing(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    harness = make_harness()
    save_on_every_change(harness)
    harness.start_sink()  # the sink's persistent session exists from here on
    harness.start_daemon()
    stream = carton_stream(harness, CARTONS, SEED)
    offline_from = {r.start for r in SINK_OFFLINE}
    online_from = {r.stop for r in SINK_OFFLINE}
    recovery: list[float] = []
    faults = Counter[str]()
    down_until = -1

    for i, (order_id, missing) in enumerate(stream):
        if i in online_from and harness.sink is None:
            harness.start_sink()
        if i in offline_from:
            harness.stop_sink()
            faults["sink offline"] += 1
        if i in BROKER_KILLED_AT:
            # Quiescent point: everything committed so far was acknowledged by the broker.
            harness.wait_for_outbox_empty()
            sigkill_broker(harness.broker)
            faults["broker SIGKILL"] += 1
            down_until = i + CARTONS_WHILE_DOWN
        if i == down_until:
            assert harness.outbox_depth() > 0
            harness.broker.start()
            recovery.append(timed_drain(harness))
        verify_carton(harness, order_id, missing)

    if harness.sink is None:
        harness.start_sink()
    delivered = harness.wait_for_all_delivered(timeout=30)
    harness.wait_for_outbox_empty()
    committed = harness.station_seq()
    assert harness.sink is not None
    duplicates = len(harness.sink.duplicates)
    gaps = harness.sink_gaps()
    wrongly_passed = pass_without_attempt(harness)
    figures.update(
        cartons=CARTONS,
        short_cartons=sum(1 for _, missing in stream if missing),
        faults=dict(faults),
        events_produced=committed,
        events_delivered=len(delivered),
        duplicates_removed=duplicates,
        gaps=len(gaps),
        wrongly_passed=wrongly_passed,
        recovery_s=recovery,
    )

    assert_delivered_exactly_once(harness, delivered)
    assert wrongly_passed == 0
    # Every carton passed exactly once; every short one was blocked first.
    for order_id, missing in stream:
        outcomes = [v["data"]["outcome"] for v in harness.verdicts(order_id)]
        assert outcomes == (["PASS"] if missing is None else ["BLOCK", "PASS"]), order_id
    assert len(harness.events(VERIFICATION)) == CARTONS + sum(1 for _, m in stream if m)
