"""The walking skeleton end to end: real mosquitto, `packstation run` as a subprocess, the scale
and scanner simulators on ptys, and the reissue-backend sink. Everything observed from outside:
the events the sink received, the station's SQLite files and its log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.e2e.conftest import (
    DETECTED,
    FAULT,
    MISSING_ITEM_EVENTS,
    RESOLVED,
    VERIFICATION,
    Harness,
)

pytestmark = pytest.mark.e2e

BOOK = "BOOK-COOK"  # ORD-1002/C1: 1 cookbook (line 10) + 2 candles (line 11), tote T-0107


def outcome_of(event: dict) -> str:
    return event["data"]["outcome"]


def scale_fault(event: dict, state: str) -> bool:
    return event["data"]["component"] == "scale" and event["data"]["state"] == state


def test_a_complete_carton_passes_and_its_attempt_is_recorded(harness: Harness) -> None:
    harness.pack("ORD-1001")

    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1001")
    delivered = harness.wait_for_all_delivered()

    data = verdict["data"]
    assert (data["outcome"], data["attempt"], data["mode"]) == ("PASS", 1, "enforce")
    assert data["carton_id"] == "C1" and verdict["subject"] == "ORD-1001/C1"
    assert data["missing_lines"] == [] and data["extra_lines"] == []
    assert data["responsible"]["tote_id"] == "T-0042"
    weight = data["weight"]
    assert abs(weight["measured_g"] - weight["expected_g"]) <= weight["tolerance_g"]
    assert not [e for e in delivered if e["type"] in MISSING_ITEM_EVENTS]
    assert harness.wait_for_attempts("ORD-1001") == [(1, "PASS")]
    assert harness.light_colors()[-1] == "green"
    assert harness.sink_gaps() == []


def test_a_short_carton_is_blocked_once_then_resolved(harness: Harness) -> None:
    harness.pack("ORD-1002", leave_out=(BOOK,))
    detected = harness.wait_for_event(DETECTED)
    assert harness.wait_for_attempts("ORD-1002", count=1) == [(1, "BLOCK")]
    assert harness.light_colors()[-1] == "red"

    harness.add_and_close(BOOK)
    resolved = harness.wait_for_event(RESOLVED)
    delivered = harness.wait_for_all_delivered()

    assert [e["type"] for e in delivered].count(DETECTED) == 1
    data = detected["data"]
    assert data["outcome"] == "BLOCK" and data["attempt"] == 1
    [line] = data["missing_lines"]
    assert (line["sku"], line["quantity_missing"], line["line_id"]) == (BOOK, 1, "10")
    assert data["responsible"]["tote_id"] == "T-0107"
    assert (
        data["weight"]["measured_g"] < data["weight"]["expected_g"] - data["weight"]["tolerance_g"]
    )

    verdicts = harness.verdicts("ORD-1002")
    assert [(outcome_of(v), v["data"]["attempt"]) for v in verdicts] == [("BLOCK", 1), ("PASS", 2)]
    assert verdicts[0]["data"]["missing_lines"] == data["missing_lines"]
    assert [line["sku"] for line in resolved["data"]["resolved_lines"]] == [BOOK]
    assert resolved["data"]["attempt"] == 2
    assert harness.attempts("ORD-1002") == [(1, "BLOCK"), (2, "PASS")]

    # One carton's events are ordered by cartonversion: BLOCK, detected, PASS, resolved.
    carton_events = sorted(
        (e for e in delivered if e.get("subject") == "ORD-1002/C1"),
        key=lambda e: e["cartonversion"],
    )
    assert [(e["type"], e["data"].get("outcome")) for e in carton_events] == [
        (VERIFICATION, "BLOCK"),
        (DETECTED, "BLOCK"),
        (VERIFICATION, "PASS"),
        (RESOLVED, None),
    ]
    assert harness.sink_gaps() == []


def test_shadow_mode_records_a_block_but_never_stops_the_packer(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness(mode="shadow")
    harness.start_sink()
    harness.start_daemon()

    harness.pack("ORD-1002", leave_out=(BOOK,))
    block = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1002")
    assert (outcome_of(block), block["data"]["mode"]) == ("BLOCK", "shadow")
    assert [line["sku"] for line in block["data"]["missing_lines"]] == [BOOK]

    # The next carton opens at once: no fix-and-close step in between.
    harness.ship()
    harness.pack("ORD-1001")
    passed = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1001")
    delivered = harness.wait_for_all_delivered()

    assert outcome_of(passed) == "PASS"
    assert not [e for e in delivered if e["type"] in MISSING_ITEM_EVENTS]
    assert harness.wait_for_attempts("ORD-1001") == [(1, "PASS")]
    assert harness.attempts("ORD-1002") == [(1, "BLOCK")]
    assert "red" not in harness.light_colors()
    assert harness.sink_gaps() == []


def test_a_broker_restart_while_the_sink_is_offline_loses_nothing(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness()
    harness.start_sink()  # the persistent session now exists on the broker
    harness.stop_sink()
    harness.start_daemon()

    # Broker up, sink away: the broker queues these for the sink's session.
    harness.pack("ORD-1001")
    harness.wait_for_attempts("ORD-1001", count=1)
    harness.ship()
    harness.pack("ORD-1002", "C2")
    harness.wait_for_attempts("ORD-1002", "C2", count=1)
    harness.ship()
    harness.wait_for_outbox_empty()
    queued_on_broker = harness.station_seq()

    # Broker down (persisted to disk): the daemon keeps verifying, buffering in its outbox.
    harness.broker.stop()
    harness.pack("ORD-1002", leave_out=(BOOK,))
    harness.wait_for_attempts("ORD-1002", count=1)
    harness.add_and_close(BOOK)
    assert harness.wait_for_attempts("ORD-1002", count=2) == [(1, "BLOCK"), (2, "PASS")]
    assert harness.outbox_depth() == harness.station_seq() - queued_on_broker > 0

    harness.broker.start()
    harness.wait_for_outbox_empty()
    harness.start_sink()  # same client id and database: resumes the session
    delivered = harness.wait_for_all_delivered()

    assert sorted(e["stationseq"] for e in delivered) == list(range(1, harness.station_seq() + 1))
    assert len({e["id"] for e in delivered}) == len(delivered)
    assert harness.sink_gaps() == []
    assert Counter((e["type"], e["data"].get("outcome")) for e in delivered) == Counter(
        {
            (VERIFICATION, "PASS"): 3,
            (VERIFICATION, "BLOCK"): 1,
            (DETECTED, "BLOCK"): 1,
            (RESOLVED, None): 1,
        }
    )


def test_a_verdict_survives_sigkill_of_the_daemon(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()
    harness.stop_sink()
    harness.broker.stop()  # the verdict cannot leave the station

    harness.pack("ORD-1002", leave_out=(BOOK,))
    assert harness.wait_for_attempts("ORD-1002", count=1) == [(1, "BLOCK")]
    assert harness.wait_for_outbox_types({VERIFICATION, DETECTED})
    harness.daemon.kill()

    harness.broker.start()
    harness.start_daemon()  # same config, same data dir
    harness.start_sink()
    detected = harness.wait_for_event(DETECTED)
    delivered = harness.wait_for_all_delivered()
    harness.wait_for_outbox_empty()

    [verdict] = harness.verdicts("ORD-1002")
    assert (outcome_of(verdict), verdict["data"]["attempt"]) == ("BLOCK", 1)
    assert [line["sku"] for line in detected["data"]["missing_lines"]] == [BOOK]
    assert [e["type"] for e in delivered].count(DETECTED) == 1
    assert harness.sink_gaps() == []


@pytest.mark.parametrize("failure", ["silent", "disconnected"])
def test_a_scale_that_fails_at_close_time_never_passes(harness: Harness, failure: str) -> None:
    """Fail closed: the carton was complete while the scale worked; then the scale fails, an
    item is taken out and the packer closes. The verdict must not rest on the old weight."""
    scale = harness.station.scale
    harness.fill("ORD-1001")
    harness.wait_for_settled()
    if failure == "silent":
        scale.set_silent(True)
    else:
        scale.disconnect()
    harness.station.place(-harness.station.unit_weight("MUG-BLUE"))
    harness.station.close()

    assert harness.wait_for_attempts("ORD-1001", count=1) == [(1, "REVIEW")]
    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1001")
    assert outcome_of(verdict) == "REVIEW"
    assert harness.light_colors()[-1] == "red"
    raised = harness.wait_for_event(FAULT, lambda e: scale_fault(e, "raised"))

    if failure == "silent":
        scale.set_silent(False)
    else:
        scale.reconnect()
    cleared = harness.wait_for_event(FAULT, lambda e: scale_fault(e, "cleared"))
    assert cleared["data"]["code"] == raised["data"]["code"]
    assert cleared["stationseq"] > raised["stationseq"]
    assert "PASS" not in [outcome_of(v) for v in harness.verdicts("ORD-1001")]
    assert harness.sink_gaps() == []
