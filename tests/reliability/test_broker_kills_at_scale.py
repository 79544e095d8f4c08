"""Scenario 6: issue 7's long broker run. mosquitto (persistence on, saved after every change) is
SIGKILLed again and again at seeded random points while a long stream of cartons is verified
(`PACKSTATION_BROKER_KILL_CARTONS`, default `CI_CARTONS`; 1,000 on demand), and the sink (the
reissue backend, a persistent session) is offline for stretches. Kills land

- at a random moment after a carton's close (before its verdict, while its events are committed
  or published, or after), and the broker stays down for a few cartons;
- while the outbox drains the backlog of an outage, right after the broker is back.

Afterwards the sink holds exactly one copy of every event the station committed after
de-duplication, with no sequence gap; the outbox is empty; every carton passed exactly once (a
short one after being blocked) and no PASS was published without its recorded attempt.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.e2e.conftest import DETECTED, RESOLVED, VERIFICATION, wait_until
from tests.reliability.conftest import (
    Scenario,
    assert_delivered_exactly_once,
    pass_without_attempt,
    query,
    sigkill_broker,
    timed_drain,
)
from tests.reliability.fast_packer import brisk_station, delivery_figures

pytestmark = pytest.mark.e2e

CI_CARTONS = 1000
CARTONS = int(os.environ.get("PACKSTATION_BROKER_KILL_CARTONS", CI_CARTONS))
SEED = 20261127
KILL_EVERY = 40  # cartons between broker kills, on average
DOWN_FOR = (1, 10)  # cartons verified while the broker is down
VERDICT_WINDOW_S = 0.35  # a kill this long after the close lands before, in or after the verdict
SINK_AWAY_EVERY = (60, 200)  # cartons between sink outages
SINK_AWAY_FOR = (10, 60)  # cartons verified while the sink is away


def test_broker_killed_at_random_points_through_a_long_run_loses_nothing(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    rng = random.Random(SEED)
    harness, stream, packer = brisk_station(
        make_harness, CARTONS, SEED, broker_saves_every_change=True
    )

    faults = Counter[str]()
    recovery: list[float] = []
    drain_kills: list[dict[str, int]] = []
    next_kill = rng.randint(1, 2 * KILL_EVERY)
    restart_at: int | None = None
    sink_back_at: int | None = None
    sink_away_at = rng.randint(*SINK_AWAY_EVERY)
    started = time.monotonic()

    def restart_broker(i: int) -> None:
        """Restart the broker; every other time, SIGKILL it again while the backlog drains."""
        nonlocal restart_at, next_kill
        queued = harness.outbox_depth()
        harness.broker.start()
        if queued > 1 and rng.random() < 0.5:
            wait_until(lambda: harness.outbox_depth() < queued, timeout=15, poll=0.001)
            sigkill_broker(harness.broker)
            faults["broker SIGKILL while the outbox drains"] += 1
            drain_kills.append({"queued": queued, "left": harness.outbox_depth()})
            restart_at = i + rng.randint(*DOWN_FOR)
            return
        recovery.append(timed_drain(harness))
        restart_at = None
        next_kill = i + rng.randint(1, 2 * KILL_EVERY)

    for i, (order_id, missing) in enumerate(stream):
        if i == sink_away_at:
            harness.stop_sink()
            faults["sink offline"] += 1
            sink_back_at = i + rng.randint(*SINK_AWAY_FOR)
        if i == sink_back_at:
            harness.start_sink()
            sink_back_at, sink_away_at = None, i + rng.randint(*SINK_AWAY_EVERY)
        if i == restart_at:
            restart_broker(i)

        packer.open_and_close(order_id, missing)
        if i >= next_kill and restart_at is None:
            time.sleep(rng.uniform(0.0, VERDICT_WINDOW_S))
            sigkill_broker(harness.broker)
            faults["broker SIGKILL after a close"] += 1
            restart_at = i + rng.randint(*DOWN_FOR)
        first = packer.verdict()
        if missing is None:
            assert first == "verdict.pass", (order_id, first)
        else:
            assert first == "verdict.block", (order_id, first)
            packer.add_and_close(missing)
            assert packer.verdict() == "verdict.pass", order_id
        packer.ship()

    run_s = time.monotonic() - started
    if restart_at is not None:
        harness.broker.start()
        recovery.append(timed_drain(harness))
    if harness.sink is None:
        harness.start_sink()
    delivered = harness.wait_for_all_delivered(timeout=60)
    harness.wait_for_outbox_empty()
    wrongly_passed = pass_without_attempt(harness)

    outcomes: dict[str, list[str]] = defaultdict(list)
    for event in sorted(delivered, key=lambda e: e["stationseq"]):  # arrival order: resends
        if event["type"] == VERIFICATION:
            outcomes[event["data"]["order_id"]].append(event["data"]["outcome"])
    recorded: dict[str, list[str]] = defaultdict(list)
    for order_id, outcome in query(
        harness.data_dir / "evidence.sqlite3", "SELECT order_id, outcome FROM attempts ORDER BY id"
    ):
        recorded[order_id].append(outcome)
    shortages = Counter(e["data"]["order_id"] for e in delivered if e["type"] == DETECTED)
    resolutions = Counter(e["data"]["order_id"] for e in delivered if e["type"] == RESOLVED)

    figures.update(
        cartons=CARTONS,
        short_cartons=sum(1 for _, missing in stream if missing),
        faults=dict(faults),
        **delivery_figures(harness, delivered),
        wrongly_passed=wrongly_passed,
        recovery_s=recovery,
        outbox_at_drain_kills=drain_kills,
        carton_loop_s=round(run_s, 1),
    )

    assert_delivered_exactly_once(harness, delivered)
    assert wrongly_passed == 0
    for order_id, missing in stream:
        expected = ["PASS"] if missing is None else ["BLOCK", "PASS"]
        assert outcomes[order_id] == recorded[order_id] == expected, order_id
        assert shortages[order_id] == resolutions[order_id] == (missing is not None), order_id
