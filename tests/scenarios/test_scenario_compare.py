"""Matching expected events against what the sink received: in order, other events allowed in
between, every event of an exhaustive type accounted for."""

from __future__ import annotations

from typing import Any

from simulators.scenario.compare import compare_events, event_report
from simulators.scenario.model import EventName, ExpectedEvent

VERDICT = EventName.VERIFICATION_RESULT
DETECTED = EventName.MISSING_DETECTED
FAULT = EventName.STATION_FAULT


def event(name: EventName, seq: int, **data: Any) -> dict[str, Any]:
    return {"type": name.cloudevents_type, "stationseq": seq, "subject": "ORD-1/C1", "data": data}


def missing(sku: str) -> list[dict[str, Any]]:
    return [{"sku": sku, "quantity_missing": 1}]


RECEIVED = [
    event(FAULT, 1, component="scale", state="raised"),
    event(VERDICT, 2, outcome="BLOCK", attempt=1, missing_lines=missing("BOOK")),
    event(DETECTED, 3, outcome="BLOCK", attempt=1, missing_lines=missing("BOOK")),
    event(FAULT, 4, component="scale", state="cleared"),
]


def test_expectations_match_in_order_with_other_events_between() -> None:
    expected = [
        ExpectedEvent(type=VERDICT, outcome="BLOCK", missing={"BOOK": 1}),
        ExpectedEvent(type=FAULT, component="scale", state="cleared"),
    ]
    comparison = compare_events(expected, RECEIVED, exhaustive=[FAULT])
    assert [index for _, index in comparison.matches] == [1, 3]
    # The raised fault was not expected and faults are exhaustive here; the detection is not.
    assert comparison.unexpected == [0] and not comparison.ok


def test_order_matters_and_fields_must_match() -> None:
    expected = [
        ExpectedEvent(type=DETECTED, missing={"BOOK": 1}),
        ExpectedEvent(type=VERDICT, outcome="BLOCK"),
        ExpectedEvent(type=DETECTED, missing={"CANDLE": 1}),
    ]
    comparison = compare_events(expected, RECEIVED, exhaustive=[])
    assert [index for _, index in comparison.matches] == [2, None, None]
    report = "\n".join(event_report(comparison, RECEIVED))
    assert "NOT FOUND" in report and "seq 2 verification.result" in report


def test_reasons_are_a_subset_and_an_empty_missing_list_is_checked() -> None:
    received = [event(VERDICT, 1, outcome="REVIEW", missing_lines=[], reasons=[{"code": "a"}])]
    assert compare_events(
        [ExpectedEvent(type=VERDICT, missing={}, reasons=["a"])], received, exhaustive=[VERDICT]
    ).ok
    assert not compare_events(
        [ExpectedEvent(type=VERDICT, reasons=["a", "b"])], received, exhaustive=[]
    ).ok
