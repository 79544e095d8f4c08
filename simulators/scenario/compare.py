"""Expected vs actual: each close's verdict and the events the sink received. Pure: no I/O.

Events are compared as the reissue backend sees them (CloudEvents JSON from the sink), reduced to
the keys a scenario can name. Expected events must appear in order; between them other events may
arrive, except those of the `exhaustive` types, every one of which must be expected. The report
lists every expectation with the actual event it matched (or "NOT FOUND"), every unexpected
event, then the whole received stream, so a failure reads as a diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.scenario.model import Close, EventName, ExpectedEvent

Event = Mapping[str, Any]


@dataclass(frozen=True)
class ActualVerdict:
    outcome: str
    missing: dict[str, int]
    extra: dict[str, int]
    reasons: tuple[str, ...]

    def render(self) -> str:
        return _render(
            {
                "outcome": self.outcome,
                "missing": self.missing or None,
                "extra": self.extra or None,
                "reasons": list(self.reasons) or None,
            }
        )


def verdict_of(event: Event) -> ActualVerdict:
    data = event["data"]
    return ActualVerdict(
        outcome=str(data["outcome"]),
        missing=_lines(data.get("missing_lines"), "quantity_missing"),
        extra=_lines(data.get("extra_lines"), "quantity_extra"),
        reasons=tuple(str(r["code"]) for r in data.get("reasons", ())),
    )


def close_problems(expected: Close, actual: ActualVerdict | None) -> list[str]:
    """What is wrong with one close's verdict (empty: as expected)."""
    if actual is None:
        return ["no verdict arrived"]
    problems = []
    if actual.outcome != expected.expect.value:
        problems.append(f"outcome {actual.outcome}, expected {expected.expect.value}")
    if expected.missing is not None and actual.missing != expected.missing:
        problems.append(f"missing {_counts(actual.missing)}, expected {_counts(expected.missing)}")
    if expected.extra is not None and actual.extra != expected.extra:
        problems.append(f"extra {_counts(actual.extra)}, expected {_counts(expected.extra)}")
    absent = [code for code in expected.reasons if code not in actual.reasons]
    if absent:
        problems.append(f"reasons lack {', '.join(absent)} (got {', '.join(actual.reasons)})")
    return problems


def render_close(expected: Close) -> str:
    return _render(
        {
            "outcome": expected.expect.value,
            "missing": expected.missing,
            "extra": expected.extra,
            "reasons": expected.reasons or None,
        }
    )


@dataclass
class EventComparison:
    """Each expectation with the index of the actual event it matched (None: not found), and
    the actual events of exhaustive types that no expectation matched."""

    matches: list[tuple[ExpectedEvent, int | None]] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(index is not None for _, index in self.matches) and not self.unexpected


def compare_events(
    expected: Sequence[ExpectedEvent], actual: Sequence[Event], exhaustive: Iterable[EventName]
) -> EventComparison:
    """Greedy in-order matching: each expectation takes the first matching event after the one
    the previous expectation took. Expectations are specific enough in practice (type, outcome,
    lines) that greedy matching finds an order-preserving assignment whenever one exists."""
    comparison = EventComparison()
    cursor = 0
    for wanted in expected:
        found = next(
            (i for i in range(cursor, len(actual)) if event_matches(wanted, actual[i])), None
        )
        comparison.matches.append((wanted, found))
        if found is not None:
            cursor = found + 1
    matched = {index for _, index in comparison.matches if index is not None}
    types = {name.cloudevents_type for name in exhaustive}
    comparison.unexpected = [
        i for i, event in enumerate(actual) if event.get("type") in types and i not in matched
    ]
    return comparison


def event_matches(wanted: ExpectedEvent, event: Event) -> bool:
    if event.get("type") != wanted.type.cloudevents_type:
        return False
    seen = event_view(event)
    for key in wanted.model_fields_set - {"type"}:
        value = getattr(wanted, key)
        if key == "reasons":
            if not set(value) <= set(seen.get("reasons") or ()):
                return False
        elif _plain(value) != seen.get(key):
            return False
    return True


def event_view(event: Event) -> dict[str, Any]:
    """The keys a scenario can name, read from one received event."""
    data = event.get("data") or {}
    # From the data, not the subject: rfid.epcs_shipped's subject is the bare carton id.
    carton = (
        f"{data['order_id']}/{data['carton_id']}"
        if data.get("order_id") and data.get("carton_id")
        else None
    )
    view: dict[str, Any] = {
        "carton": carton,
        "attempt": data.get("attempt"),
        "mode": data.get("mode"),
        "outcome": data.get("outcome"),
        "reviewer": data.get("reviewer_id"),
        "component": data.get("component"),
        "state": data.get("state"),
    }
    if "missing_lines" in data:
        view["missing"] = _lines(data["missing_lines"], "quantity_missing")
    if "extra_lines" in data:
        view["extra"] = _lines(data["extra_lines"], "quantity_extra")
    if "resolved_lines" in data:
        view["resolved"] = _lines(data["resolved_lines"], "quantity_missing")
    if "reasons" in data:
        view["reasons"] = [str(r["code"]) for r in data["reasons"]]
    return {key: value for key, value in view.items() if value is not None}


def short_type(event: Event) -> str:
    return str(event.get("type", "?")).removeprefix("com.packstation.").removesuffix(".v1")


def render_actual(event: Event) -> str:
    view = {key: value for key, value in event_view(event).items() if value not in ({}, [])}
    return f"seq {event.get('stationseq')} {short_type(event)} {_render(view)}".rstrip()


def render_expected(wanted: ExpectedEvent) -> str:
    given = {key: getattr(wanted, key) for key in sorted(wanted.model_fields_set - {"type"})}
    return f"{wanted.type.value} {_render(given)}".rstrip()


def event_report(comparison: EventComparison, actual: Sequence[Event]) -> list[str]:
    lines = []
    for wanted, index in comparison.matches:
        mark, got = ("ok  ", render_actual(actual[index])) if index is not None else ("FAIL", "")
        lines.append(f"{mark} expected {render_expected(wanted)}")
        lines.append(f"       got {got}" if got else "       NOT FOUND (in order)")
    for index in comparison.unexpected:
        lines.append(f"FAIL unexpected {render_actual(actual[index])}")
    lines.append("received, in order:")
    lines += [f"       {render_actual(event)}" for event in actual] or ["       (nothing)"]
    return lines


def _lines(lines: Any, quantity_key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines or ():
        counts[str(line["sku"])] = counts.get(str(line["sku"]), 0) + int(line[quantity_key])
    return counts


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _counts(counts: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{sku}: {n}" for sku, n in sorted(counts.items())) + "}"


def _render(fields: Mapping[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            shown = _counts(value)
        elif isinstance(value, list | tuple):
            shown = "[" + ", ".join(str(_plain(v)) for v in value) + "]"
        else:
            shown = str(_plain(value))
        parts.append(f"{key}={shown}")
    return " ".join(parts)
