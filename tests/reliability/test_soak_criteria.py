"""The soak's pass criteria (benchmarks/soak.py `assess`) on made-up samples: a run that is fine
passes, and each kind of trouble the soak is there to catch fails its own check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.soak import (
    QUEUE_BOUNDS,
    RSS_SLOPE_BOUND,
    Sample,
    SoakPlan,
    SoakResult,
    StationRecord,
    assess,
    slope_per_min,
)

PLAN = SoakPlan(stations=3, minutes=2.0, warmup_s=30.0, sample_s=5.0)
TIMES = [5.0 * i for i in range(31)]  # 0..150 s
QUIET = dict.fromkeys(QUEUE_BOUNDS, 0.0)


def station(sid: str, rss_per_min: float = 0.0, outbox: list[float] | None = None) -> StationRecord:
    record = StationRecord(sid, cartons=[("ORD-5001", False), ("ORD-5002", True)])
    for i, t in enumerate(TIMES):
        # A warm-up climb, then the given slope, with allocator-sized wobble.
        rss = 40.0 + min(t, 30.0) / 3 + rss_per_min * max(t - 30.0, 0.0) / 60 + 0.3 * (i % 2)
        queues = {**QUIET, "outbox": outbox[i] if outbox else float(i % 3)}
        record.samples.append(Sample(t, rss, queues))
    return record


def healthy(**changes) -> SoakResult:
    ids = ["soak-01", "soak-02", "soak-03"]
    verdicts = {(sid, "ORD-5001"): ["PASS"] for sid in ids} | {
        (sid, "ORD-5002"): ["BLOCK", "PASS"] for sid in ids
    }
    result = SoakResult(
        plan=PLAN,
        stations=[station(sid) for sid in ids],
        broker_rss=[(t, 8.0) for t in TIMES],
        committed=dict.fromkeys(ids, 4),
        delivered={sid: [1, 2, 3, 4] for sid in ids},
        duplicates=0,
        verdicts=verdicts,
        recorded=dict(verdicts),
        outbox_at_end=dict.fromkeys(ids, 0),
        daemons_cpu=10.0,
        broker_cpu=0.1,
        simulators_cpu=5.0,
        elapsed_s=150.0,
        load="1.0 1.0 1.0",
    )
    return replace(result, **changes)


def failed(result: SoakResult) -> list[str]:
    return [c.name for c in assess(result) if not c.met]


def test_a_healthy_run_passes_every_check() -> None:
    assert failed(healthy()) == []


def test_slope_is_least_squares_per_minute() -> None:
    assert slope_per_min([(0.0, 1.0), (30.0, 2.0), (60.0, 3.0)]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        slope_per_min([(1.0, 5.0)])


def test_memory_growing_in_most_daemons_fails_but_the_warm_up_does_not_count() -> None:
    leaking = [station(f"soak-0{i}", rss_per_min=2 * RSS_SLOPE_BOUND) for i in (1, 2, 3)]
    assert failed(healthy(stations=leaking)) == ["daemon RSS slope after warm-up, median (MB/min)"]
    broker = [(t, 8.0 + t / 30) for t in TIMES]  # 2 MB/min
    assert failed(healthy(broker_rss=broker)) == ["mosquitto RSS slope after warm-up (MB/min)"]


def test_an_outbox_that_grows_or_is_left_full_fails() -> None:
    growing = [station("soak-01", outbox=[float(i) for i in range(len(TIMES))])]
    growing += [station("soak-02"), station("soak-03")]
    assert failed(healthy(stations=growing)) == ["outbox depth, max over all samples"]
    left = {"soak-01": 3, "soak-02": 0, "soak-03": 0}
    assert failed(healthy(outbox_at_end=left)) == ["events left in the outboxes at the end"]


def test_a_lost_event_or_a_verdict_the_sink_did_not_get_fails() -> None:
    lost = {"soak-01": [1, 2, 4], "soak-02": [1, 2, 3, 4], "soak-03": [1, 2, 3, 4]}
    assert failed(healthy(delivered=lost)) == [
        "events committed but not delivered (after de-duplication)"
    ]
    verdicts = healthy().verdicts | {("soak-02", "ORD-5002"): ["BLOCK"]}
    assert failed(healthy(verdicts=verdicts)) == [
        "cartons whose verdicts at the sink differ from the station's records"
    ]


def test_a_short_carton_passed_at_its_first_close_fails() -> None:
    recorded = healthy().recorded | {("soak-03", "ORD-5002"): ["PASS"]}
    result = healthy(recorded=recorded, verdicts=recorded)
    assert failed(result) == ["short cartons passed at their first close"]
