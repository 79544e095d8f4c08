"""Events the station publishes, their CloudEvents envelope, and the one MQTT topic table.

Everything that leaves or enters the station over MQTT is declared here once: the `TOPICS` table
drives publishing (`station.mqtt`), subscribing, the reissue-backend sink and the AsyncAPI contract
(`station.contract`). Models only; no I/O.

No customer personal data: the models carry order, carton, SKU and employee badge ids, never names
or addresses, and `extra="forbid"` keeps anything else from sneaking in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from station.verification import Outcome

DEFAULT_TOPIC_PREFIX = "packstation/v1"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


class EventType(StrEnum):
    """CloudEvents `type` strings. The version suffix changes only on a breaking payload change."""

    MISSING_ITEM_DETECTED = "com.packstation.missing_item.detected.v1"
    MISSING_ITEM_RESOLVED = "com.packstation.missing_item.resolved.v1"
    MISSING_ITEM_SHIPPED_SHORT = "com.packstation.missing_item.shipped_short.v1"
    MISSING_ITEM_CANCELLED = "com.packstation.missing_item.cancelled.v1"
    VERIFICATION_RESULT = "com.packstation.verification.result.v1"
    STATION_FAULT = "com.packstation.station.fault.v1"
    RFID_EPCS_SHIPPED = "com.packstation.rfid.epcs_shipped.v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Payload building blocks


class Mode(StrEnum):
    SHADOW = "shadow"
    ENFORCE = "enforce"


class MissingLine(_Model):
    sku: str = Field(description="Stock keeping unit of the missing item.")
    name: str = Field(description="Product name from the catalog (never a customer name).")
    quantity_missing: int = Field(ge=1, description="Units of this line not found in the carton.")
    line_id: str = Field(description="Manifest line id the units belong to.")
    epcs: list[str] = Field(
        default=[],
        description="EPC-level evidence (upper-case hex) when RFID decided the line: the SKU's "
        "tags read near the carton but not counted as in it (beside the box, in the hand). Empty "
        "when there is none (an untagged SKU, or a tagged unit not read at all).",
    )


class ExtraLine(_Model):
    sku: str = Field(description="Stock keeping unit found in the carton but not expected.")
    quantity_extra: int = Field(ge=1, description="Units found beyond the manifest quantity.")
    epcs: list[str] = Field(
        default=[],
        description="EPC-level evidence (upper-case hex) when RFID decided the line: the SKU's "
        "tags counted in the carton (for a SKU not in the order, exactly the extra units).",
    )


class Reason(_Model):
    code: str = Field(description="Stable machine-readable reason code, e.g. WEIGHT_LOW.")
    message: str = Field(description="Human-readable explanation shown to the packer.")


class WeightCheck(_Model):
    expected_g: float = Field(description="Expected gross weight of the carton in grams.")
    measured_g: float | None = Field(
        default=None, description="Settled measured weight in grams; null when no reading."
    )
    tolerance_g: float = Field(ge=0, description="Accepted deviation either side, in grams.")


class ResponsibleStage(_Model):
    """Who and what picked the carton, as far as the manifest says; used to route root causes."""

    picker_id: str | None = Field(default=None, description="Badge id of the picker.")
    tote_id: str | None = Field(default=None, description="Tote the items arrived in.")
    wave_id: str | None = Field(default=None, description="Pick wave of the order.")


class DegradedMode(_Model):
    """A reviewer's authorisation to scan units in place of a channel whose device is down."""

    fallback: str = Field(description="e.g. scan_for_weight: unit scans replace the weight check.")
    authorised_by: str = Field(description="Badge id of the reviewer who authorised it.")
    reason_code: str = Field(description="The reviewer's reason code.")
    started_at: AwareDatetime = Field(description="When it started (UTC).")
    ends_at: AwareDatetime = Field(description="When it lapses (UTC) unless ended earlier.")


class _CartonEventData(_Model):
    station_id: str = Field(description="Packing station that produced the event.")
    site_id: str = Field(description="Warehouse site of the station.")
    order_id: str = Field(description="Order the carton belongs to.")
    carton_id: str = Field(description="Carton (shipping unit) id; also the CloudEvents subject.")
    manifest_version: int = Field(
        ge=1, description="Manifest version the carton was checked against."
    )
    attempt: int = Field(ge=1, description="Verification attempt number for this carton, from 1.")
    mode: Mode = Field(description="shadow: verdicts are recorded only; enforce: BLOCK stops it.")
    packer_id: str | None = Field(default=None, description="Badge id of the packer.")
    responsible: ResponsibleStage = Field(
        default_factory=ResponsibleStage, description="Upstream stage (picker, tote, wave)."
    )
    degraded: DegradedMode | None = Field(
        default=None, description="Set while a degraded mode was in force: treat with care."
    )


class MissingItemDetected(_CartonEventData):
    """Carton blocked at the station because items are missing. Informational for the backend."""

    outcome: Outcome = Field(description="Verdict that blocked the carton (BLOCK or REVIEW).")
    missing_lines: list[MissingLine] = Field(description="Lines with units not in the carton.")
    extra_lines: list[ExtraLine] = Field(default_factory=list, description="Unexpected units.")
    weight: WeightCheck | None = Field(default=None, description="Weight channel figures.")
    reasons: list[Reason] = Field(default_factory=list, description="Why the verdict was reached.")


class MissingItemResolved(_CartonEventData):
    """The missing items were found and packed at the station; nothing to reissue."""

    resolved_lines: list[MissingLine] = Field(description="Lines that were completed.")
    reviewer_id: str | None = Field(default=None, description="Badge id of the approving lead.")


class MissingItemShippedShort(_CartonEventData):
    """Carton released with items missing: the reissue backend creates a follow-up shipment."""

    missing_lines: list[MissingLine] = Field(description="Lines shipped short; to be reissued.")
    reviewer_id: str | None = Field(default=None, description="Badge id of who approved release.")
    reasons: list[Reason] = Field(default_factory=list, description="Why it was released short.")


class MissingItemCancelled(_CartonEventData):
    """The carton was cancelled or taken off the line; an earlier detection needs no action."""

    reviewer_id: str | None = Field(default=None, description="Badge id of who cancelled.")
    reasons: list[Reason] = Field(default_factory=list, description="Why it was cancelled.")


_SHA256_HEX = r"^[0-9a-f]{64}$"


class EvidenceRef(_Model):
    """Where the verdict's evidence record sits in the station's hash chain (docs/evidence.md).
    Kept by the backend, it anchors the chain off the station: a record later changed or deleted
    at the station no longer matches what was published."""

    record_id: int = Field(ge=1, description="The record's position in the station's chain.")
    sha256: str = Field(
        pattern=_SHA256_HEX,
        description="The record's hash; it covers every earlier record of the chain too.",
    )
    chain: str = Field(
        pattern=_SHA256_HEX, description="The chain's genesis hash: which station chain it is."
    )


class VerificationResult(_CartonEventData):
    """Every verdict the station reaches, PASS included."""

    outcome: Outcome = Field(description="The verdict.")
    missing_lines: list[MissingLine] = Field(default_factory=list, description="Missing units.")
    extra_lines: list[ExtraLine] = Field(default_factory=list, description="Unexpected units.")
    weight: WeightCheck | None = Field(default=None, description="Weight channel figures.")
    reasons: list[Reason] = Field(default_factory=list, description="Why the verdict was reached.")
    reviewer_id: str | None = Field(default=None, description="Badge id of a reviewer, if any.")
    evidence: EvidenceRef | None = Field(
        default=None, description="The verdict's evidence record and chain hash at the station."
    )


class FaultState(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class StationFault(_Model):
    """A station fault was raised or cleared (scale down, broker refusing publishes, ...)."""

    station_id: str = Field(description="Packing station that produced the event.")
    site_id: str = Field(description="Warehouse site of the station.")
    code: str = Field(description="Stable fault code, e.g. SCALE_DOWN or PUBLISH_REJECTED.")
    state: FaultState = Field(description="raised when the fault starts, cleared when it ends.")
    component: str = Field(description="Part of the station at fault, e.g. scale, mqtt.")
    message: str = Field(description="Human-readable detail.")
    degraded: DegradedMode | None = Field(
        default=None, description="The degraded mode in force, or the one this fault is about."
    )


_EPC_HEX = r"^(?:[0-9A-F]{2})+$"


class EpcsShipped(_Model):
    """A carton passed or was released: its EPCs are shipped. Every station of the site keeps
    them in its shipped-EPC ledger; such a tag in a later carton sends it to REVIEW."""

    station_id: str = Field(description="Packing station that shipped the carton.")
    site_id: str = Field(description="Warehouse site of the station.")
    order_id: str = Field(description="Order the carton belongs to.")
    carton_id: str = Field(description="Carton that shipped; also the CloudEvents subject.")
    epcs: list[str] = Field(
        min_length=1,
        description="EPCs (upper-case hex) counted in the carton at its decisive read.",
    )
    degraded: DegradedMode | None = Field(
        default=None,
        description="Set when the carton passed or was released while a degraded mode was in "
        "force; absent otherwise.",
    )

    @model_serializer(mode="wrap")
    def _absent_when_not_degraded(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Stations from before this field validate with extra="forbid": a null here would make
        # them drop every shipped-EPC message during a rolling upgrade.
        document = handler(self)
        if isinstance(document, dict) and document.get("degraded") is None:
            document.pop("degraded", None)
        return document

    @field_validator("epcs")
    @classmethod
    def _hex(cls, epcs: list[str]) -> list[str]:
        return _valid_epcs(epcs)


def _valid_epcs(epcs: list[str]) -> list[str]:
    normalised = [epc.strip().upper() for epc in epcs]
    bad = [epc for epc in normalised if not re.fullmatch(_EPC_HEX, epc)]
    if bad:
        raise ValueError(f"not EPC hex: {', '.join(bad[:3])}")
    return normalised


PAYLOAD_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.MISSING_ITEM_DETECTED: MissingItemDetected,
    EventType.MISSING_ITEM_RESOLVED: MissingItemResolved,
    EventType.MISSING_ITEM_SHIPPED_SHORT: MissingItemShippedShort,
    EventType.MISSING_ITEM_CANCELLED: MissingItemCancelled,
    EventType.VERIFICATION_RESULT: VerificationResult,
    EventType.STATION_FAULT: StationFault,
    EventType.RFID_EPCS_SHIPPED: EpcsShipped,
}

# ---------------------------------------------------------------------------------------------
# CloudEvents 1.0 envelope (structured JSON mode)

DataT = TypeVar("DataT")


class CloudEvent(_Model, Generic[DataT]):
    """A CloudEvents 1.0 structured-mode event with the packstation extension attributes."""

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents spec version.")
    id: str = Field(
        min_length=1,
        description="Unique per logical event; a redelivery or retry keeps the id (de-dup key).",
    )
    source: str = Field(description="packstation/<site>/<station>.")
    type: EventType = Field(description="Event type, versioned.")
    time: AwareDatetime = Field(description="When the station committed the event (UTC).")
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Content type of `data`."
    )
    subject: str | None = Field(default=None, description="Carton id for carton events.")
    stationseq: int = Field(
        ge=1,
        description="Per-station sequence number, +1 per event, persisted; gaps mean loss.",
    )
    cartonversion: int | None = Field(
        default=None, ge=1, description="Per-carton event counter; orders events of one carton."
    )
    data: DataT = Field(description="Event payload; its model depends on `type`.")

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        """Compact JSON; optional envelope attributes that are unset are left out, as CloudEvents
        JSON format asks (a null inside `data` stays: it carries meaning there)."""
        document = self.model_dump(mode="json")
        for name in _OPTIONAL_ATTRIBUTES:
            if document[name] is None:
                del document[name]
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


_OPTIONAL_ATTRIBUTES = ("subject", "cartonversion")


def event_source(site_id: str, station_id: str) -> str:
    return f"packstation/{site_id}/{station_id}"


def parse_event(raw: bytes | str) -> CloudEvent[Any]:
    """Parse a structured CloudEvent, validating `data` against the model for its `type`."""
    envelope = CloudEvent[dict[str, Any]].model_validate_json(raw)
    payload_model = PAYLOAD_MODELS[envelope.type]
    return CloudEvent[payload_model].model_validate_json(raw)  # type: ignore[valid-type]


# ---------------------------------------------------------------------------------------------
# Non-event payloads


class AvailabilityState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Availability(_Model):
    """Retained station availability; "offline" is also the last will."""

    state: AvailabilityState = Field(description="online after connect; offline by will/shutdown.")
    session: int = Field(
        ge=1,
        description=(
            "Publisher session number (like Sparkplug bdSeq), +1 per publisher start and persisted;"
            " an offline with a lower session than the last online is stale."
        ),
    )
    client_id: str = Field(description="MQTT client id of the station publisher.")


class ManifestRequest(_Model):
    """Station asks the WMS for a carton manifest (request/response over the station's link).

    MQTT 5: sent with Response Topic = this station's manifest/response topic and Correlation Data
    = request_id. MQTT 3.1.1 has neither: the WMS answers on the station's fixed response topic
    (the request topic with request -> response) and request_id correlates.
    """

    request_id: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per request; echoed in the response, also sent as correlation data.",
    )
    order_id: str = Field(description="Order the carton belongs to.")
    carton_id: str = Field(description="Carton whose manifest is wanted.")
    station_id: str = Field(description="Requesting station.")


class ManifestResponse(_Model):
    """WMS answer to a ManifestRequest. The manifest body is validated by station.manifests."""

    request_id: str = Field(description="request_id of the ManifestRequest answered.")
    carton_id: str = Field(description="Carton the manifest is for.")
    found: bool = Field(
        description="True with `manifest` set; false when the WMS knows no such order/carton, "
        "or when it could not answer (then `error` says why)."
    )
    manifest: dict[str, Any] | None = Field(
        default=None,
        description="Manifest document (docs/master-data.md) when found; null otherwise.",
    )
    error: str | None = Field(
        default=None,
        max_length=500,
        description="Set when the WMS could not answer (e.g. its database is down): the station "
        "treats the WMS as unavailable and may use its cached copy. Null on a real answer.",
    )


class EpcsOpen(_Model):
    """The EPCs counted in a station's open carton (its last decisive read), announced so the
    other stations deny them (`open_elsewhere`, REVIEW). Each announcement replaces the station's
    earlier one; an empty list clears it (the carton shipped or was aborted). Not an event: sent
    only while the link is up, never queued."""

    station_id: str = Field(description="Packing station with the open carton.")
    order_id: str | None = Field(default=None, description="Order of the open carton.")
    carton_id: str | None = Field(default=None, description="The open carton; null when cleared.")
    epcs: list[str] = Field(description="EPCs (upper-case hex) in it; [] clears the station's.")
    ttl_s: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="Receivers forget the announcement after this long (a station that died "
        "with a carton open).",
    )

    @field_validator("epcs")
    @classmethod
    def _hex(cls, epcs: list[str]) -> list[str]:
        return _valid_epcs(epcs)


class EpcsReturned(_Model):
    """The WMS received returned units: their EPCs may ship again (every station's ledger
    forgets them)."""

    return_id: str | None = Field(default=None, description="The WMS's return (RMA) id.")
    epcs: list[str] = Field(min_length=1, description="EPCs (hex) of the returned units.")

    @field_validator("epcs")
    @classmethod
    def _hex(cls, epcs: list[str]) -> list[str]:
        return _valid_epcs(epcs)


LabelPurpose = Literal["print", "reprint"]
LabelReason = Literal[
    "not_verified",
    "passed",
    "released",
    "held",
    "not_passed",
    "outputs_pending",
    "reopened",
    "left_unsealed",
    "evidence_unavailable",
]


class LabelPermissionRequest(_Model):
    """The shipping software asks before it prints (or reprints) a carton's label.

    Answered on this station's label/permission/response topic (never on a Response Topic the
    requester names: the station publishes only under its own topics), with the MQTT 5
    Correlation Data echoed and `request_id` in the payload for MQTT 3.1.1 clients.
    """

    request_id: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per request; echoed in the response.",
    )
    order_id: str = Field(min_length=1, max_length=64, description="Order of the carton.")
    carton_id: str = Field(min_length=1, max_length=64, description="Carton to be labelled.")
    purpose: LabelPurpose = Field(
        default="print",
        description="print: the first label; reprint: another one (always audited).",
    )
    requested_by: str | None = Field(
        default=None,
        max_length=64,
        description="Who or what asks (printer, user id); recorded in the audit.",
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Tracking number of the label about to be printed. When given, the station's "
        "label scan must read one of the labels granted for the carton; any other withdraws the "
        "PASS (label_mismatch).",
    )


class LabelPermissionResponse(_Model):
    """The station's answer: `allowed` only after a PASS (its light and diverter confirmed) or
    a reviewer's release since the last attempt; always in shadow mode, flagged `shadow`."""

    request_id: str = Field(description="request_id of the request answered.")
    station_id: str = Field(description="Station that answered.")
    order_id: str = Field(description="Order of the carton.")
    carton_id: str = Field(description="The carton.")
    purpose: LabelPurpose = Field(description="As asked.")
    allowed: bool = Field(description="May the label be printed now.")
    shadow: bool = Field(
        description="The station is (or the carton was verified) in shadow mode: allowed "
        "regardless of the verdict."
    )
    reason: LabelReason = Field(
        description="passed / released: allowed. not_verified: no attempt yet. held: the "
        "carton is held at the station (BLOCK, REVIEW or a withdrawn PASS). not_passed: its last "
        "attempt failed and it is no longer open. outputs_pending: it passed but the light or "
        "diverter has not confirmed it yet; ask again shortly. reopened: it passed (or was "
        "released) but is open at the station again, being repacked. left_unsealed: it passed "
        "(or was released) but left the station unverified since: without its label scan and "
        "final weight, or opened again and left, or the station stopped before its verdict was "
        "on the record and lost it; it is verified again (opened and closed). "
        "evidence_unavailable: the station's evidence store cannot be read or written (a full "
        "disk), so nothing on the record proves the carton and a grant could not be audited; "
        "refused (allowed only in shadow mode), earlier_grants unknown (0): ask again later."
    )
    outcome: Outcome | None = Field(default=None, description="Outcome of the last attempt.")
    attempt: int | None = Field(default=None, ge=1, description="The last attempt's number.")
    released_by: str | None = Field(default=None, description="Reviewer badge of a release.")
    earlier_grants: int = Field(
        ge=0, description="Labels already allowed for this carton (a print after one is a reprint)."
    )


# ---------------------------------------------------------------------------------------------
# The topic table


class Direction(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


class TopicKey(StrEnum):
    MISSING_ITEM_EVENTS = "missing_item_events"
    VERIFICATION_EVENTS = "verification_events"
    FAULT_EVENTS = "fault_events"
    AVAILABILITY = "availability"
    MANIFEST_REQUEST = "manifest_request"
    MANIFEST_RESPONSE = "manifest_response"
    RFID_EPCS_SHIPPED = "rfid_epcs_shipped"
    RFID_EPCS_OPEN = "rfid_epcs_open"
    RFID_RETURNS = "rfid_returns"
    LABEL_PERMISSION_REQUEST = "label_permission_request"
    LABEL_PERMISSION_RESPONSE = "label_permission_response"


@dataclass(frozen=True)
class TopicSpec:
    key: TopicKey
    pattern: str
    payload: type[BaseModel]
    qos: int
    retain: bool
    direction: Direction
    description: str
    event_types: tuple[EventType, ...] = ()
    response: TopicKey | None = None  # request topics: where the answers come back
    # Site-level publish topics every station also subscribes to (the other stations' messages;
    # a station ignores its own).
    shared: bool = False

    def topic(self, site_id: str, station_id: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
        return self.pattern.format(prefix=prefix, site=site_id, station=station_id)

    def all_stations_filter(self, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
        """Subscription filter matching this topic for every site and station."""
        return self.pattern.format(prefix=prefix, site="+", station="+")

    def station_of(self, topic: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> tuple[str, str] | None:
        """(site, station) of a concrete topic of this entry; None when it is not one."""
        head, _, tail = self.pattern.format(prefix=prefix, site="\0", station="\0").partition(
            "\0/\0"
        )
        fits = len(topic) > len(head) + len(tail)
        if not (fits and topic.startswith(head) and topic.endswith(tail)):
            return None
        site, slash, station = topic[len(head) : len(topic) - len(tail)].partition("/")
        if not (slash and site and station) or "/" in station or "+" in topic or "#" in topic:
            return None
        return site, station


_STATION = "{prefix}/{site}/{station}"
_SITE = "{prefix}/{site}"

TOPICS: dict[TopicKey, TopicSpec] = {
    spec.key: spec
    for spec in (
        TopicSpec(
            key=TopicKey.MISSING_ITEM_EVENTS,
            pattern=f"{_STATION}/events/missing_item",
            payload=CloudEvent,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="Missing-item lifecycle; the reissue backend acts on shipped_short.",
            event_types=(
                EventType.MISSING_ITEM_DETECTED,
                EventType.MISSING_ITEM_RESOLVED,
                EventType.MISSING_ITEM_SHIPPED_SHORT,
                EventType.MISSING_ITEM_CANCELLED,
            ),
        ),
        TopicSpec(
            key=TopicKey.VERIFICATION_EVENTS,
            pattern=f"{_STATION}/events/verification",
            payload=CloudEvent,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="Every verification verdict (PASS, BLOCK, REVIEW).",
            event_types=(EventType.VERIFICATION_RESULT,),
        ),
        TopicSpec(
            key=TopicKey.FAULT_EVENTS,
            pattern=f"{_STATION}/events/fault",
            payload=CloudEvent,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="Station faults raised and cleared.",
            event_types=(EventType.STATION_FAULT,),
        ),
        TopicSpec(
            key=TopicKey.AVAILABILITY,
            pattern=f"{_STATION}/availability",
            payload=Availability,
            qos=1,
            retain=True,
            direction=Direction.PUBLISH,
            description="Retained online/offline; offline is the last will.",
        ),
        TopicSpec(
            key=TopicKey.MANIFEST_REQUEST,
            pattern=f"{_STATION}/manifest/request",
            payload=ManifestRequest,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="Manifest request to the WMS (not an event: never queued, never retried)."
            " MQTT 5: Response Topic = manifest/response, Correlation Data = request_id.",
            response=TopicKey.MANIFEST_RESPONSE,
        ),
        TopicSpec(
            key=TopicKey.MANIFEST_RESPONSE,
            pattern=f"{_STATION}/manifest/response",
            payload=ManifestResponse,
            qos=1,
            retain=False,
            direction=Direction.SUBSCRIBE,
            description="WMS answers to this station's manifest requests (MQTT 3.1.1: the WMS"
            " answers here, request_id correlates).",
        ),
        TopicSpec(
            key=TopicKey.RFID_EPCS_SHIPPED,
            pattern=f"{_SITE}/rfid/epcs_shipped",
            payload=CloudEvent,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="Site-wide shipped-EPC ledger: each station publishes the EPCs of every "
            "carton it passed or released (durable, through the outbox) and subscribes to the "
            "others'.",
            event_types=(EventType.RFID_EPCS_SHIPPED,),
            shared=True,
        ),
        TopicSpec(
            key=TopicKey.RFID_EPCS_OPEN,
            pattern=f"{_SITE}/rfid/epcs_open",
            payload=EpcsOpen,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="EPCs in each station's open carton (not an event: never queued); the "
            "other stations deny them as open elsewhere.",
            shared=True,
        ),
        TopicSpec(
            key=TopicKey.RFID_RETURNS,
            pattern=f"{_SITE}/wms/rfid/returns",
            payload=EpcsReturned,
            qos=1,
            retain=False,
            direction=Direction.SUBSCRIBE,
            description="Returns from the WMS: their EPCs leave every station's shipped ledger.",
        ),
        TopicSpec(
            key=TopicKey.LABEL_PERMISSION_REQUEST,
            pattern=f"{_STATION}/label/permission/request",
            payload=LabelPermissionRequest,
            qos=1,
            retain=False,
            direction=Direction.SUBSCRIBE,
            description="The shipping software asks before printing or reprinting a carton's "
            "label (also GET /api/label-permission).",
        ),
        TopicSpec(
            key=TopicKey.LABEL_PERMISSION_RESPONSE,
            pattern=f"{_STATION}/label/permission/response",
            payload=LabelPermissionResponse,
            qos=1,
            retain=False,
            direction=Direction.PUBLISH,
            description="The station's answers to label permission requests (not events: never "
            "queued); Correlation Data and request_id match them to the requests.",
        ),
    )
}

EVENT_TOPIC: dict[EventType, TopicKey] = {
    event_type: spec.key for spec in TOPICS.values() for event_type in spec.event_types
}


def topic_for(
    key: TopicKey | EventType, site_id: str, station_id: str, prefix: str = DEFAULT_TOPIC_PREFIX
) -> str:
    """The concrete topic for a table entry, or for the entry that carries an event type."""
    topic_key = EVENT_TOPIC[key] if isinstance(key, EventType) else key
    return TOPICS[topic_key].topic(site_id, station_id, prefix)
