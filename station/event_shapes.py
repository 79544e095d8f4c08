"""Turn the session's `PublishEvent` effects into the published event models.

The session speaks in its own terms (kinds, badge, lines); the MQTT contract (`station.events`)
is versioned on its own. This module is the one place where the two meet, so a contract change
touches only here and `station.events`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from station.events import (
    PAYLOAD_MODELS,
    EventType,
    EvidenceRef,
    ExtraLine,
    FaultState,
    MissingLine,
    Reason,
    ResponsibleStage,
    WeightCheck,
)
from station.session import (
    MISSING_CANCELLED,
    MISSING_DETECTED,
    MISSING_RESOLVED,
    MISSING_SHIPPED_SHORT,
    STATION_FAULT,
    VERIFICATION_RESULT,
    PublishEvent,
)

EVENT_TYPES: dict[str, EventType] = {
    VERIFICATION_RESULT: EventType.VERIFICATION_RESULT,
    MISSING_DETECTED: EventType.MISSING_ITEM_DETECTED,
    MISSING_RESOLVED: EventType.MISSING_ITEM_RESOLVED,
    MISSING_CANCELLED: EventType.MISSING_ITEM_CANCELLED,
    MISSING_SHIPPED_SHORT: EventType.MISSING_ITEM_SHIPPED_SHORT,
    STATION_FAULT: EventType.STATION_FAULT,
}


def to_event(
    effect: PublishEvent, station_id: str, site_id: str, evidence: EvidenceRef | None = None
) -> tuple[EventType, BaseModel, str | None]:
    """(event type, validated payload, CloudEvents subject) for one session effect; `evidence`
    is the verdict's record in the evidence chain (verification results only)."""
    event_type = EVENT_TYPES[effect.kind]
    data = effect.data
    if event_type is EventType.STATION_FAULT:
        return event_type, _fault(data, station_id, site_id), _subject(data)
    fields = _carton_fields(data, station_id, site_id)
    model = PAYLOAD_MODELS[event_type]
    missing = _missing_lines(data.get("missing", ()))
    extra = [
        ExtraLine(
            sku=str(e["sku"]), quantity_extra=int(e["quantity"]), epcs=list(e.get("epcs", ()))
        )
        for e in data.get("extra", ())
    ]  # type: ignore[union-attr]
    candidates: dict[str, Any] = {
        "outcome": data.get("outcome"),
        "missing_lines": missing,
        "extra_lines": extra,
        "resolved_lines": missing,
        "weight": _weight(data.get("weights")),
        "reasons": _reasons(data.get("reasons", ())),
        "reviewer_id": data.get("reviewer_badge"),
        "evidence": evidence,
    }
    payload = {**fields, **{k: v for k, v in candidates.items() if k in model.model_fields}}
    return event_type, model.model_validate(payload), _subject(data)


# The events the reissue backend acts on. A step that committed one and was then undone (its
# evidence record could not be written) or lost to a stop is taken again at the same attempt:
# the same carton, attempt and lines are the same logical event, so it keeps its id and the
# backend drops the repeat instead of reissuing twice. A legitimate second one differs in its
# attempt (a carton is released, resolved or found short once per attempt) or in its lines.
_ACTED_ON = frozenset(
    {
        EventType.MISSING_ITEM_DETECTED,
        EventType.MISSING_ITEM_RESOLVED,
        EventType.MISSING_ITEM_SHIPPED_SHORT,
        EventType.MISSING_ITEM_CANCELLED,
    }
)


def logical_key(event_type: EventType, payload: BaseModel) -> str | None:
    """The key the outbox derives a stable event id from (None: a fresh id). Tag evidence and
    reviewer are left out: a retaken step may read other tags or be released by another
    reviewer, and is still the same shortage."""
    if event_type not in _ACTED_ON:
        return None
    data = payload.model_dump()
    lines = data.get("missing_lines") or data.get("resolved_lines") or []
    shortage = sorted((line["line_id"], line["sku"], line["quantity_missing"]) for line in lines)
    return json.dumps([data["order_id"], data["carton_id"], data["attempt"], shortage])


def _subject(data: Mapping[str, Any]) -> str | None:
    """The CloudEvents subject: order and carton, since carton ids repeat across orders (the
    outbox numbers `cartonversion` per subject)."""
    if data.get("carton_id") is None:
        return None
    return f"{data['order_id']}/{data['carton_id']}"


def _carton_fields(data: Mapping[str, Any], station_id: str, site_id: str) -> dict[str, Any]:
    return {
        "station_id": station_id,
        "site_id": site_id,
        "order_id": data["order_id"],
        "carton_id": data["carton_id"],
        "manifest_version": data["manifest_version"],
        "attempt": max(1, int(data["attempt"])),
        "mode": data["mode"],
        "packer_id": data.get("packer_badge"),
        "responsible": ResponsibleStage(
            picker_id=data.get("picker_id"),
            tote_id=data.get("tote_id"),
            wave_id=data.get("wave_id"),
        ),
        "degraded": data.get("degraded"),
    }


def _missing_lines(lines: Any) -> list[MissingLine]:
    return [
        MissingLine(
            sku=str(line["sku"]),
            name=str(line["name"]),
            quantity_missing=int(line["quantity"]),
            line_id=str(line["line_id"]),
            epcs=[str(epc) for epc in line.get("epcs", ())],
        )
        for line in lines
    ]


def _weight(weights: Mapping[str, Any] | None) -> WeightCheck | None:
    if not weights or weights.get("expected_g") is None:
        return None
    return WeightCheck(
        expected_g=weights["expected_g"],
        measured_g=weights.get("measured_g"),
        tolerance_g=weights.get("tolerance_g") or 0.0,
    )


def _reasons(reasons: Any) -> list[Reason]:
    return [Reason(code=str(r["code"]), message=str(r["message"])) for r in reasons]


def _fault(data: Mapping[str, Any], station_id: str, site_id: str) -> BaseModel:
    code = str(data.get("code") or data.get("fault") or "fault")
    return PAYLOAD_MODELS[EventType.STATION_FAULT].model_validate(
        {
            "station_id": station_id,
            "site_id": site_id,
            "code": code.upper(),
            "state": FaultState.CLEARED if data.get("cleared") else FaultState.RAISED,
            "component": str(data.get("device") or data.get("fault") or "station"),
            "message": str(data.get("message") or code),
            "degraded": data.get("degraded"),
        }
    )
