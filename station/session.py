"""The packing session: one packer, at most one open carton, a small explicit state machine.

Pure: `Session.handle(input)` returns the effects to carry out (fetch a manifest, collect evidence,
show a message, set the light, publish an event, record an attempt or an audit entry) and never does
I/O itself. The daemon classifies scans, feeds inputs in order on one loop and executes effects.
docs/packing-workflow.md has the full state x input table; the rules that are choices, not
necessities, are:

- Nobody logged in, nothing opens. A second badge hands the station (and any open carton) over.
- Logout and the inactivity timeout abort an open carton with a recorded reason. A missing-item
  detection already published stands unresolved: the carton was short when last measured.
- A new order while a carton is open replaces it only while no close was attempted; after that the
  packer must pass it, or it is aborted by logout or by the order's cancellation.
- Shadow mode decides, records and publishes `verification.result` exactly as enforce mode does,
  but every carton ends after its first attempt, the light is never red, and no missing-item
  events are published (nothing acts on them while the station is on trial).
- A reviewer (never the carton's own packer) may release a BLOCKED carton; released with items
  missing, it publishes `missing_item.shipped_short` so the backend reissues them.
- Stale responses (a manifest for an order no longer open, evidence for an earlier attempt) are
  dropped silently: they belong to a carton the packer has already moved on from.
- The diverter sends every carton to the exception lane unless it passed (or a reviewer released
  it); in shadow mode it never diverts. While an output (light or diverter) is faulty no carton
  passes: a PASS becomes REVIEW.
- A PASS stands until the shipping label is on and checked: after a PASS (enforce mode) the label
  scan ties the label to the carton and asks for a final weight; a weight that dropped beyond the
  verdict's tolerance, no weight at all, a label other than the ones the shipping software was
  allowed to print for it, or an output fault before then withdraws the PASS: the carton is held
  again (REVIEW) and the label permission with it. The next order ends the wait.
- After a restart the session is recovered from its last snapshot (`recover`): the open carton
  keeps its attempt numbers and published shortage; an attempt whose verdict was in flight is
  void (the packer closes again) and a manifest being fetched is fetched again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from station.carton_policy import CartonPlan, Coverage, DegradedMode, Fallback, StationPolicy
from station.clock import Clock
from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    CodeClassifier,
    CodePatternsConfig,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    RemoveUnitCode,
    ScannedCode,
    ShippingLabelCode,
    UnknownCode,
    WeighUnitCode,
)
from station.domain import (
    BoxType,
    Catalog,
    ItemKind,
    Manifest,
    ManifestStatus,
    expected_units,
    unknown_skus,
)
from station.scan_check import UnitScan, evaluate_scans
from station.verification import (
    SCAN_RECOUNT,
    ChannelReport,
    LineDelta,
    Outcome,
    Reason,
    Verdict,
)


class SessionState(StrEnum):
    LOGGED_OUT = "logged_out"
    IDLE = "idle"  # a packer is logged in, no carton is open
    LOADING = "loading"  # the open carton's manifest is being fetched
    AWAITING_BOX = "awaiting_box"
    PACKING = "packing"
    VERIFYING = "verifying"  # a close was requested; waiting for the evidence of this attempt
    BLOCKED = "blocked"  # the last attempt was BLOCK or REVIEW; the carton stays open
    WEIGHING = "weighing"  # weigh-one-unit mode: scans capture weights for master data


Mode = Literal["shadow", "enforce"]
CloseTrigger = Literal["code", "label"]


class WorkflowConfig(BaseModel):
    """How the packing workflow runs at this station."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(
        default="enforce",
        description=(
            "enforce: a BLOCK or REVIEW keeps the carton open and shows red. shadow: verdicts are "
            "decided, recorded and published, but the packer is never stopped."
        ),
    )
    close_by: Literal["code", "label", "either"] = Field(
        default="either",
        description="What closes a carton: the close code, a shipping label scan, or either.",
    )
    inactivity_timeout_s: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="Seconds without a scan after which the packer is logged out.",
    )
    final_weight_check: bool = Field(
        default=True,
        description="After a PASS, the shipping label scan weighs the carton again and withdraws "
        "the PASS if it got lighter. Needs the label put on while the carton is on the scale; "
        "false where labels go on elsewhere (the label scan then only ties the label).",
    )
    codes: CodePatternsConfig = Field(
        default_factory=CodePatternsConfig,
        description="Patterns that recognise badges, order labels and control codes.",
    )


# ---------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Scanned:
    code: ScannedCode


@dataclass(frozen=True, slots=True)
class ManifestLoaded:
    manifest: Manifest
    from_cache: bool = False
    # Attempts the evidence store holds for this carton (opened again after it left the station
    # or was replaced): its attempts are numbered on from there.
    earlier_attempts: int = 0


@dataclass(frozen=True, slots=True)
class ManifestRefused:
    order_id: str
    carton_id: str
    code: str  # machine code from the manifest source, e.g. "not_found", "invalid", "timeout"
    message: str


@dataclass(frozen=True, slots=True)
class WeightInfo:
    """What the weight channel measured, for the packer's screen and the events."""

    measured_g: float | None = None
    expected_g: float | None = None
    tolerance_g: float | None = None


@dataclass(frozen=True, slots=True)
class EvidenceReady:
    attempt: int
    reports: tuple[ChannelReport, ...]
    weight: WeightInfo | None = None


@dataclass(frozen=True, slots=True)
class ManifestChanged:
    order_id: str
    carton_id: str
    kind: Literal["cancelled", "superseded"]
    message: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    now: float  # Clock.monotonic()


@dataclass(frozen=True, slots=True)
class DeviceFault:
    device: str
    message: str
    output: bool = False  # the light or the diverter: while it is down no carton passes


@dataclass(frozen=True, slots=True)
class DeviceRecovered:
    device: str


@dataclass(frozen=True, slots=True)
class FinalWeight:
    """The settled weight after the label scan (None: the scale could not give one in time)."""

    order_id: str
    carton_id: str
    measured_g: float | None


@dataclass(frozen=True, slots=True)
class LabelGranted:
    """The shipping software was allowed to print `label` (its tracking number) for the carton:
    the label scan must then read one of the labels granted."""

    order_id: str
    carton_id: str
    label: str


@dataclass(frozen=True, slots=True)
class ReviewerOverride:
    """A reviewer releases the blocked carton; the caller has already checked who they are."""

    reviewer_badge: str
    reason_code: str


@dataclass(frozen=True, slots=True)
class DegradedModeRequested:
    """A reviewer authorises a fallback for `duration_s`; the caller has checked who they are."""

    fallback: Fallback
    reviewer_badge: str
    reason_code: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class DegradedModeEnded:
    """A reviewer ends the fallback before it lapses."""

    reviewer_badge: str


@dataclass(frozen=True, slots=True)
class WeighSubject:
    """What is on the platter in weigh-one-unit mode: `units` of a SKU, an empty box, or an
    item whose barcode the catalog does not know (`key` is then the barcode)."""

    kind: Literal["unit", "box", "unknown"]
    key: str
    units: int = 1
    name: str = ""


@dataclass(frozen=True, slots=True)
class WeightCaptured:
    """The settled weight for a `CaptureWeight` request, or why there is none (`problem`)."""

    request: int
    grams: float | None
    scale_error_g: float = 0.0
    # A ScaleState value ("unstable", "stale", "down"...), "empty_platter", or
    # "platter_not_emptied" (not cleared since the last capture).
    problem: str = ""


SessionInput = (
    Scanned
    | ManifestLoaded
    | ManifestRefused
    | EvidenceReady
    | ManifestChanged
    | Tick
    | DeviceFault
    | DeviceRecovered
    | ReviewerOverride
    | DegradedModeRequested
    | DegradedModeEnded
    | WeightCaptured
    | FinalWeight
    | LabelGranted
)

# Before anything is packed: SKU -> chance the carton's weight reveals one missing unit (or one
# unit replaced by its nearest look-alike), for the expected units and box (None: the box is not
# known yet). See weight_check.absence_detection and lookalike_detection.
WeightPower = Callable[[Mapping[str, int], BoxType | None], Mapping[str, float]]

# --------------------------------------------------------------------------------------- effects

VERIFICATION_RESULT = "verification.result"
MISSING_DETECTED = "missing_item.detected"
MISSING_RESOLVED = "missing_item.resolved"
MISSING_CANCELLED = "missing_item.cancelled"
MISSING_SHIPPED_SHORT = "missing_item.shipped_short"
STATION_FAULT = "station.fault"
# A PASS withdrawn at the final weight: the carton lost something (or could not be weighed).
_FINAL_WEIGHT_DROPS = frozenset({"final_weight_low", "final_weight_unknown"})
# Audit: a passed carton's label wait ended without its label scan and final weight (the packer
# moved on or left); the label interlock then wants a reviewer's release for it.
CARTON_UNSEALED = "carton.unsealed"


@dataclass(frozen=True, slots=True)
class FetchManifest:
    order_id: str
    carton_id: str


@dataclass(frozen=True, slots=True)
class CollectEvidence:
    attempt: int
    box: BoxType
    manifest: Manifest
    # Every unit scan while the carton was packed, with its time (for the per-insertion channel
    # to pair each weight step with the unit scanned just before it).
    unit_scans: tuple[UnitScan, ...] = ()


@dataclass(frozen=True, slots=True)
class ShowMessage:
    level: Literal["info", "warning", "error"]
    key: str  # a translation key; docs/packing-workflow.md lists them
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetLight:
    color: Literal["green", "amber", "red", "off"]
    buzzer: bool = False


Route = Literal["straight", "exception"]


@dataclass(frozen=True, slots=True)
class SetDiverter:
    route: Route  # straight: on to shipping; exception: to the exception lane


@dataclass(frozen=True, slots=True)
class WeighFinal:
    """Weigh the labelled carton once more; answered with `FinalWeight`."""

    order_id: str
    carton_id: str


@dataclass(frozen=True, slots=True)
class PublishEvent:
    kind: str
    data: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One close attempt, as kept for evidence (disputes, audits)."""

    order_id: str
    carton_id: str
    manifest_version: int
    attempt: int
    packer_badge: str
    box_code: str
    closed_by: CloseTrigger
    shipping_label: str | None
    mode: Mode
    verdict: Verdict
    scanned_units: Mapping[str, int]
    weight: WeightInfo | None
    decided_at: datetime
    coverage: tuple[Coverage, ...] = ()  # how each SKU's absence would have been noticed
    degraded: Mapping[str, str] | None = None  # the fallback in force, if any


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    record: AttemptRecord


@dataclass(frozen=True, slots=True)
class RecordAudit:
    """Who did what outside an attempt: login, logout, hand-over, carton aborted or replaced."""

    kind: str
    data: Mapping[str, object]
    at: datetime


@dataclass(frozen=True, slots=True)
class CaptureWeight:
    """Read the settled weight on the platter for weigh-one-unit mode (→ `WeightCaptured`)."""

    request: int
    subject: WeighSubject


@dataclass(frozen=True, slots=True)
class RecordWeightSample:
    """Keep a weighed unit, box or unknown item for the learned master data."""

    subject: WeighSubject
    grams: float  # the whole platter: `units` units, or the box, or the unknown item
    scale_error_g: float
    packer_badge: str | None
    at: datetime


Effect = (
    FetchManifest
    | CollectEvidence
    | ShowMessage
    | SetLight
    | SetDiverter
    | WeighFinal
    | PublishEvent
    | RecordAttempt
    | RecordAudit
    | CaptureWeight
    | RecordWeightSample
)

# What the packer should do next, shown when a scan does not fit the current state.
NEXT_STEP: Mapping[SessionState, str] = {
    SessionState.LOGGED_OUT: "scan_badge",
    SessionState.IDLE: "scan_order",
    SessionState.LOADING: "wait_for_manifest",
    SessionState.AWAITING_BOX: "scan_box",
    SessionState.PACKING: "pack_and_close",
    SessionState.VERIFYING: "wait_for_verification",
    SessionState.BLOCKED: "fix_and_close",
    SessionState.WEIGHING: "weigh_unit",
}
# How many granted labels the session remembers the carton of (a label scanned at another carton
# is refused): many times the labels printed while one carton is being packed.
LABELS_REMEMBERED = 64
# While a degraded mode is in force the session is saved at least this often (seconds), so a
# restart gives the mode back at most this much of the time it ran (see `worth_saving_over`).
DEGRADED_RESAVE_S = 10.0

# A next step outside NEXT_STEP: a recovered carton that passed waits for its label scan.
SCAN_LABEL = "scan_label"
OTHER_NEXT_STEPS = (SCAN_LABEL,)
_OPEN_FOR_ITEMS = frozenset({SessionState.PACKING, SessionState.BLOCKED})
_BOX_STATES = frozenset({SessionState.LOADING, SessionState.AWAITING_BOX, *_OPEN_FOR_ITEMS})


@dataclass(frozen=True, slots=True)
class CartonView:
    """The open carton as the screen and the API see it (a copy; changing it changes nothing)."""

    order_id: str
    carton_id: str
    manifest: Manifest | None
    box: BoxType | None
    attempts: int
    scanned_units: Mapping[str, int]
    expected_units: Mapping[str, int]  # kits expanded, ship-later lines left out
    last_verdict: Verdict | None
    coverage: tuple[Coverage, ...] = ()  # once the box is known
    recount_asked: frozenset[str] = frozenset()  # SKUs whose asked recount has not started
    unit_scans: tuple[UnitScan, ...] = ()  # the scans so far, in order, timed


@dataclass
class _Carton:
    order_id: str
    carton_id: str
    manifest: Manifest | None = None
    box: BoxType | None = None
    attempts: int = 0
    # Attempts made before this carton was opened again (the evidence store's): numbering goes
    # on from them, and until it is closed again the carton can still be replaced by another.
    earlier_attempts: int = 0
    scanned_units: Counter[str] = field(default_factory=Counter)
    unit_scans: list[UnitScan] = field(default_factory=list)  # the same scans, in order, timed
    closed_by: CloseTrigger = "code"
    shipping_label: str | None = None
    last_outcome: Outcome | None = None
    last_verdict: Verdict | None = None
    last_weight: WeightInfo | None = None
    granted_labels: set[str] = field(default_factory=set)  # tracking numbers allowed to print
    final_weight_pending: bool = False  # the label was scanned; its final weight is being read
    published_missing: tuple[LineDelta, ...] = ()  # last missing_item.detected, () if none
    serials: dict[str, set[str]] = field(default_factory=dict)  # SKU -> serials scanned
    plan: CartonPlan | None = None  # made when packing starts, made again at each close
    # Everyone who packed it (hand-overs included): none of them may release it as reviewer.
    packers: set[str] = field(default_factory=set)
    # REMOVE was scanned: the next item scan takes a unit's scan back. Any other scan disarms it;
    # a restart forgets it (the packer scans REMOVE again).
    removing: bool = False
    # SKUs a verdict asked the packer to recount (`scan_recount`), until the first scan of one
    # starts its recount; then recounted: its scans counted afresh from there, and a second
    # mismatch stands. A close before any recount scan asks again (nothing is lost).
    recount_asked: set[str] = field(default_factory=set)
    recounted: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str]:
        return (self.order_id, self.carton_id)


@dataclass(frozen=True, slots=True)
class CartonSnapshot:
    """The open carton as plain data (see `SessionSnapshot`)."""

    order_id: str
    carton_id: str
    manifest: Manifest | None
    box: BoxType | None  # the box as it was scanned, tare included (the catalog may change)
    attempts: int
    scanned_units: Mapping[str, int]
    closed_by: CloseTrigger
    shipping_label: str | None
    last_outcome: Outcome | None
    last_verdict: Verdict | None
    published_missing: tuple[LineDelta, ...]
    serials: Mapping[str, tuple[str, ...]]  # SKU -> serials scanned, sorted
    planned: bool  # a plan was made (it is made again from the fields here and below)
    plan_degraded: DegradedMode | None  # the degraded mode the plan was made under
    packers: tuple[str, ...]  # sorted
    # Defaults: a row written before these fields existed (format 1) reads as "none".
    last_weight: WeightInfo | None = None  # the verdict's weight (the final weight's reference)
    granted_labels: tuple[str, ...] = ()  # sorted
    final_weight_pending: bool = False
    unit_scans: tuple[UnitScan, ...] = ()  # times on the monotonic clock as of `taken_at`
    recount_asked: tuple[str, ...] = ()  # sorted
    recounted: tuple[str, ...] = ()  # sorted
    earlier_attempts: int = 0


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """Everything the session knows, as plain data: `Session.restore` rebuilds the same session.

    Times are on the station's monotonic clock as of `taken_at` (its own reading then):
    `Session.recover` shifts them onto a new process's clock, so the time the station was down
    counts neither towards the inactivity timeout nor against a degraded mode (whose end is also
    capped by its UTC `ends_at`).
    """

    state: SessionState
    packer: str | None
    carton: CartonSnapshot | None
    degraded: DegradedMode | None
    last_scan_at: float
    taken_at: float
    # The carton that passed and waits for its label scan and final weight (enforce mode).
    awaiting_label: CartonSnapshot | None = None
    # Weigh-one-unit mode: what is being weighed (a capture in flight), and how many captures
    # this session has asked for (an answer to an older one is stale).
    weighing: WeighSubject | None = None
    weigh_requests: int = 0
    # Labels the shipping software was allowed to print lately, oldest first: (tracking number,
    # order, carton), so a label scanned at another carton is recognised as not its own.
    label_owners: tuple[tuple[str, str, str], ...] = ()

    def same_state(self, other: SessionSnapshot | None) -> bool:
        """True when `other` holds the same session (the moment it was taken aside)."""
        return other is not None and replace(other, taken_at=self.taken_at) == self

    def worth_saving_over(self, saved: SessionSnapshot | None) -> bool:
        """This snapshot should replace `saved`: the session changed, or a degraded mode is in
        force and `saved` is DEGRADED_RESAVE_S old. A restart counts the mode's time left from
        the snapshot's `taken_at`, so an old one would give it back the time since."""
        if not self.same_state(saved):
            return True
        assert saved is not None
        return self.degraded is not None and self.taken_at - saved.taken_at >= DEGRADED_RESAVE_S


class Session:
    def __init__(
        self,
        config: WorkflowConfig,
        catalog: Catalog,
        policy: StationPolicy,
        clock: Clock,
        weight_power: WeightPower | None = None,
        lookalike_power: WeightPower | None = None,
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._policy = policy
        self._clock = clock
        self._weight_power = weight_power or (lambda expected, box: {})
        self._lookalike_power = lookalike_power or (lambda expected, box: {})
        self._degraded: DegradedMode | None = None
        self._classifier = CodeClassifier(config.codes, catalog)
        self._state = SessionState.LOGGED_OUT
        self._packer: str | None = None
        self._carton: _Carton | None = None
        # The carton that passed last, until its label is on and its final weight agrees.
        self._unlabelled: _Carton | None = None
        self._output_faults: dict[str, str] = {}  # output device -> why it is down
        self._last_scan_at = clock.monotonic()
        self._weigh_requests = 0  # CaptureWeight requests issued; the latest is the awaited one
        self._weigh_pending: WeighSubject | None = None
        # Tracking number -> (order, carton) it was granted for, the latest LABELS_REMEMBERED.
        self._label_owners: dict[str, tuple[str, str]] = {}

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def packer(self) -> str | None:
        return self._packer

    @property
    def open_carton(self) -> tuple[str, str] | None:
        return self._carton.key if self._carton else None

    @property
    def mode(self) -> Mode:
        return self._config.mode

    @property
    def degraded(self) -> DegradedMode | None:
        return self._degraded

    @property
    def awaiting_label(self) -> tuple[str, str] | None:
        """The carton that passed and waits for its label scan and final weight, if any."""
        return self._unlabelled.key if self._unlabelled else None

    def carton_view(self) -> CartonView | None:
        """A read-only copy of the open carton, for the packer's screen and the API."""
        carton = self._carton
        if carton is None:
            return None
        return CartonView(
            order_id=carton.order_id,
            carton_id=carton.carton_id,
            manifest=carton.manifest,
            box=carton.box,
            attempts=carton.attempts,
            scanned_units=dict(carton.scanned_units),
            expected_units=self._expected(carton),
            last_verdict=carton.last_verdict,
            coverage=carton.plan.coverage if carton.plan else (),
            recount_asked=frozenset(carton.recount_asked),
            unit_scans=tuple(carton.unit_scans),
        )

    def snapshot(self) -> SessionSnapshot:
        """The whole session as plain data, for the daemon to persist after each step."""
        carton = self._carton
        return SessionSnapshot(
            state=self._state,
            packer=self._packer,
            carton=_carton_snapshot(carton) if carton else None,
            degraded=self._degraded,
            last_scan_at=self._last_scan_at,
            taken_at=self._clock.monotonic(),
            awaiting_label=_carton_snapshot(self._unlabelled) if self._unlabelled else None,
            weighing=self._weigh_pending,
            weigh_requests=self._weigh_requests,
            label_owners=tuple((label, *key) for label, key in self._label_owners.items()),
        )

    def restore(self, snapshot: SessionSnapshot) -> None:
        """Become exactly the session `snapshot` was taken of (same clock, same process)."""
        self._state = snapshot.state
        self._packer = snapshot.packer
        self._degraded = snapshot.degraded
        self._last_scan_at = snapshot.last_scan_at
        self._weigh_pending = snapshot.weighing
        # Never backwards: an answer to a capture asked for after the snapshot stays stale.
        self._weigh_requests = max(self._weigh_requests, snapshot.weigh_requests)
        self._carton = self._restored(snapshot.carton) if snapshot.carton else None
        unlabelled = snapshot.awaiting_label
        self._unlabelled = self._restored(unlabelled) if unlabelled else None
        self._label_owners = {label: (order, box) for label, order, box in snapshot.label_owners}

    def _restored(self, saved: CartonSnapshot) -> _Carton:
        carton = _Carton(
            order_id=saved.order_id,
            carton_id=saved.carton_id,
            manifest=saved.manifest,
            box=saved.box,
            attempts=saved.attempts,
            scanned_units=Counter(saved.scanned_units),
            closed_by=saved.closed_by,
            shipping_label=saved.shipping_label,
            last_outcome=saved.last_outcome,
            last_verdict=saved.last_verdict,
            published_missing=saved.published_missing,
            serials={sku: set(serials) for sku, serials in saved.serials.items()},
            packers=set(saved.packers),
            last_weight=saved.last_weight,
            granted_labels=set(saved.granted_labels),
            final_weight_pending=saved.final_weight_pending,
            unit_scans=list(saved.unit_scans),
            recount_asked=set(saved.recount_asked),
            recounted=set(saved.recounted),
            earlier_attempts=saved.earlier_attempts,
        )
        if saved.planned:
            carton.plan = self._plan(carton, saved.plan_degraded)
        return carton

    def recover(self, snapshot: SessionSnapshot) -> list[Effect]:
        """Carry on after a restart from the last snapshot the previous process persisted.

        Whatever was in flight died with that process: a manifest being fetched is fetched
        again; an attempt waiting for its evidence is void and the carton goes back to where it
        was before that close (the packer closes again; the attempt number is not reused, since
        its verdict may have been committed just before the crash). An open carton keeps its
        attempts and its published shortage, so a later PASS publishes `missing_item.resolved`.
        A carton that passed keeps waiting for its label scan, and a final weight that was being
        read is read again; a weigh-one-unit capture that was being read is read again.
        """
        shift = self._clock.monotonic() - snapshot.taken_at
        carton = snapshot.carton
        if carton is not None:
            shifted = tuple(replace(scan, at=scan.at + shift) for scan in carton.unit_scans)
            carton = replace(carton, unit_scans=shifted)
        self.restore(
            replace(
                snapshot,
                carton=carton,
                last_scan_at=snapshot.last_scan_at + shift,
                degraded=self._rebased(snapshot.degraded, shift),
            )
        )
        effects: list[Effect] = []
        if self._carton is not None:
            effects += self._recover_open_carton(self._carton)
        if self._unlabelled is not None:
            effects += self._recover_awaiting_label(self._unlabelled)
        if self._weigh_pending is not None:
            effects += self._recover_capture(self._weigh_pending)
        if not effects and self._packer is not None:
            effects.append(ShowMessage("info", "session.resumed", {"next": NEXT_STEP[self._state]}))
        return effects

    def _recover_open_carton(self, carton: _Carton) -> list[Effect]:
        effects: list[Effect] = []
        interrupted = self._void_attempt_in_flight()
        if self._state is SessionState.LOADING:
            effects.append(FetchManifest(carton.order_id, carton.carton_id))
        interrupted_text = (
            f"; attempt {carton.attempts} was interrupted and is void" if interrupted else ""
        )
        light = "red" if self._state is SessionState.BLOCKED else "off"
        return self._recovered(
            carton,
            self._state.value,
            NEXT_STEP[self._state],
            interrupted_text,
            [*effects, SetLight(light)],
            interrupted_attempt=carton.attempts if interrupted else None,
        )

    def _recover_awaiting_label(self, carton: _Carton) -> list[Effect]:
        """The PASS stands (its record still grants the label): its light and route are set
        again, since the outputs started afresh; a final weight being read is read again on
        what is on the platter now (a carton taken off meanwhile weighs too little: withdrawn)."""
        pending = carton.final_weight_pending
        again: list[Effect] = [WeighFinal(carton.order_id, carton.carton_id)] if pending else []
        text = "; its final weight is read again" if pending else ""
        return self._recovered(
            carton,
            "awaiting_label",
            "wait_for_verification" if pending else SCAN_LABEL,
            text,
            [SetLight("green"), SetDiverter("straight"), *again],
        )

    def _recovered(
        self,
        carton: _Carton,
        state: str,
        next_step: str,
        detail: str,
        effects: list[Effect],
        interrupted_attempt: int | None = None,
    ) -> list[Effect]:
        """The restart told about `carton`: a cleared SESSION_RECOVERED fault, an audit entry,
        `effects`, and the packer's message."""
        params = {
            **_key_params(carton),
            "attempts": carton.attempts,
            "interrupted_attempt": interrupted_attempt,
            "state": state,
            "next": next_step,
        }
        message = (
            f"Station restarted; carton {carton.order_id}/{carton.carton_id} recovered "
            f"({state}, {carton.attempts} attempt(s){detail})."
        )
        return [
            self._event(
                STATION_FAULT,
                carton,
                fault="session_recovered",
                code="session_recovered",
                message=message,
                cleared=True,
            ),
            self._audit("session.recovered", params),
            *effects,
            ShowMessage("warning", "session.recovered", params),
        ]

    def _recover_capture(self, subject: WeighSubject) -> list[Effect]:
        """The unit (box, unknown item) is still on the platter: weigh it again. Nothing is
        published: a capture is master data, not a carton."""
        self._weigh_pending = None
        resumed = ShowMessage("info", "session.resumed", {"next": NEXT_STEP[self._state]})
        return [resumed, *self._capture(subject)]

    def roll_back(self, snapshot: SessionSnapshot) -> None:
        """Undo a step the daemon could not record (an event or evidence not written): back to
        `snapshot`. An attempt waiting for its verdict is void, since the verdict that could not
        be recorded was its answer: the carton is held and the packer closes it again once the
        station can record."""
        self.restore(snapshot)
        self._void_attempt_in_flight()

    def _void_attempt_in_flight(self) -> bool:
        """Back to where the close found the carton (the attempt number stays used); True if an
        attempt was in flight."""
        carton = self._carton
        if self._state is not SessionState.VERIFYING or carton is None:
            return False
        # BLOCKED needs the verdict it was blocked by; a first close came from PACKING.
        blocked = carton.last_verdict is not None
        self._state = SessionState.BLOCKED if blocked else SessionState.PACKING
        return True

    def _rebased(self, degraded: DegradedMode | None, shift: float) -> DegradedMode | None:
        """A degraded mode's end on this process's clock: the monotonic end moved by `shift`,
        but never later than its UTC end says (the station may have been down a long time)."""
        if degraded is None:
            return None
        by_wall_clock = (degraded.ends_at - self._clock.now_utc()).total_seconds()
        ends = min(degraded.ends_monotonic + shift, self._clock.monotonic() + by_wall_clock)
        return replace(degraded, ends_monotonic=ends)

    def override_refusal(self, reviewer_badge: str) -> str | None:
        """Why `reviewer_badge` cannot release the open carton now (a message key), or None.

        Only a carton the station holds (BLOCKED) can be released, and never by its own packer:
        the point of a second pair of eyes is that it is a second person.
        """
        if self._state is not SessionState.BLOCKED:
            return "override.nothing_blocked"
        carton = self._carton
        if self._packs(reviewer_badge):
            return "override.own_carton"
        verdict = carton.last_verdict if carton else None
        if verdict and any(r.code == SCAN_RECOUNT for r in verdict.reasons):
            # The hold names no missing line: released now, a real shortfall would ship with no
            # shipped-short event. The packer recounts and closes first.
            return "override.recount_pending"
        if verdict and any(r.code in _FINAL_WEIGHT_DROPS for r in verdict.reasons):
            # The PASS was withdrawn because something left the labelled carton: which unit is
            # not known until it is verified again, so a release would ship short unannounced.
            return "override.close_again"
        return None

    def classify(self, raw: str) -> ScannedCode:
        """The scan as this session's patterns and catalog read it (for `Scanned`)."""
        return self._classifier.classify(raw)

    def handle(self, event: SessionInput) -> list[Effect]:
        # A degraded mode past its end lapses before anything else is handled: a verdict
        # reached between its end and the next tick must not use it.
        degraded = self._degraded
        if degraded is not None and self._clock.monotonic() >= degraded.ends_monotonic:
            return self._end_degraded("lapsed") + self._dispatch(event)
        return self._dispatch(event)

    def _dispatch(self, event: SessionInput) -> list[Effect]:
        match event:
            case Scanned(code):
                return self._on_scan(code)
            case ManifestLoaded():
                return self._on_manifest_loaded(event)
            case ManifestRefused():
                return self._on_manifest_refused(event)
            case EvidenceReady():
                return self._on_evidence(event)
            case ManifestChanged():
                return self._on_manifest_changed(event)
            case Tick(now):
                return self._on_tick(now)
            case DeviceFault(device, message, output):
                return self._on_device_fault(device, message, output=output)
            case DeviceRecovered(device):
                return self._on_device_fault(device, "recovered", cleared=True)
            case ReviewerOverride():
                return self._on_override(event)
            case DegradedModeRequested():
                return self._on_degraded_requested(event)
            case DegradedModeEnded(reviewer_badge):
                return self._end_degraded(f"ended by {reviewer_badge}")
            case WeightCaptured():
                return self._on_weight_captured(event)
            case FinalWeight():
                return self._on_final_weight(event)
            case LabelGranted(order_id, carton_id, label):
                self._remember_owner(label, (order_id, carton_id))
                if self._unlabelled is not None and self._unlabelled.key == (order_id, carton_id):
                    self._unlabelled.granted_labels.add(label)
                return []
        raise TypeError(f"not a session input: {event!r}")

    # ------------------------------------------------------------------------------ scans

    def _on_scan(self, code: ScannedCode) -> list[Effect]:
        if self._carton is not None and not isinstance(code, ItemCode | RemoveUnitCode):
            self._carton.removing = False  # any other scan, a misread too, disarms REMOVE
        if self._state is SessionState.WEIGHING:
            self._last_scan_at = self._clock.monotonic()
            return self._on_weigh_scan(code)
        if isinstance(code, UnknownCode):
            return [ShowMessage("warning", "scan.unknown", {"code": code.raw[:64]})]
        if self._state is SessionState.LOGGED_OUT:
            if isinstance(code, BadgeCode):
                return self._login(code.badge_id)
            return self._not_now(code)
        self._last_scan_at = self._clock.monotonic()
        match code:
            case BadgeCode():
                return self._on_badge(code)
            case LogoutCode():
                return self._logout("logout")
            case OrderCartonCode():
                return self._on_order(code)
            case ShippingLabelCode() if self._carton is None and self._unlabelled is not None:
                return self._on_label_applied(self._unlabelled, code.value)
            case BoxCode():
                return self._on_box(code)
            case ItemCode():
                return self._on_item(code)
            case CloseCode() | ShippingLabelCode():
                return self._on_close(code)
            case WeighUnitCode():
                return self._enter_weighing(code)
            case RemoveUnitCode():
                return self._arm_removal(code)
        raise TypeError(f"not a scanned code: {code!r}")

    def _not_now(self, code: ScannedCode) -> list[Effect]:
        return [
            ShowMessage(
                "warning",
                "scan.not_now",
                {"code": type(code).__name__, "next": NEXT_STEP[self._state]},
            )
        ]

    def _login(self, badge: str) -> list[Effect]:
        self._packer = badge
        self._state = SessionState.IDLE
        self._last_scan_at = self._clock.monotonic()
        return [
            self._audit("packer.login", {"packer_badge": badge}),
            ShowMessage("info", "login.welcome", {"packer_badge": badge}),
            *self._reviewer_packing(badge),
        ]

    def _on_badge(self, code: BadgeCode) -> list[Effect]:
        if code.badge_id == self._packer:
            return [ShowMessage("info", "login.already", {"packer_badge": code.badge_id})]
        previous, self._packer = self._packer, code.badge_id
        if self._carton is not None:
            self._carton.packers.add(code.badge_id)
        return [
            self._audit(
                "packer.handover",
                {"from": previous, "to": code.badge_id, "carton": self.open_carton},
            ),
            ShowMessage("info", "login.handover", {"from": previous, "to": code.badge_id}),
            *self._reviewer_packing(code.badge_id),
        ]

    def _logout(self, reason: Literal["logout", "inactivity"]) -> list[Effect]:
        effects = self._abort_carton(reason) if self._carton else []
        effects += self._left_unsealed(reason)
        effects += [
            self._audit("packer.logout", {"packer_badge": self._packer, "reason": reason}),
            SetLight("off"),
            ShowMessage("info", f"logout.{reason}", {"packer_badge": self._packer}),
        ]
        self._packer = None
        self._state = SessionState.LOGGED_OUT
        self._weigh_pending = None
        return effects

    def _on_order(self, code: OrderCartonCode) -> list[Effect]:
        carton = self._carton
        if carton is None:
            return self._open_carton(code)
        if carton.key == (code.order_id, code.carton_id):
            return [ShowMessage("info", "order.already_open", _key_params(carton))]
        if carton.attempts == carton.earlier_attempts:  # not closed since it was opened
            by = {"order_id": code.order_id, "carton_id": code.carton_id}
            replaced = [self._audit("carton.replaced", {**_key_params(carton), "by": by})]
            return replaced + self._open_carton(code)
        return [ShowMessage("warning", "order.close_open_first", _key_params(carton))]

    def _open_carton(self, code: OrderCartonCode) -> list[Effect]:
        unsealed = self._left_unsealed("next_order")  # the packer moved on: it left the station
        self._carton = _Carton(code.order_id, code.carton_id)
        if self._packer is not None:
            self._carton.packers.add(self._packer)
        self._state = SessionState.LOADING
        return [
            *unsealed,
            FetchManifest(code.order_id, code.carton_id),
            SetLight("off"),
            SetDiverter("straight" if self._config.mode == "shadow" else "exception"),
            ShowMessage("info", "order.loading", _key_params(self._carton)),
        ]

    def _on_box(self, code: BoxCode) -> list[Effect]:
        carton = self._carton
        if carton is None or self._state not in _BOX_STATES:
            return self._not_now(code)
        # A box scanned while the manifest is still loading is kept: packers scan fast.
        carton.box = self._catalog.boxes[code.box_code]
        suggested = carton.manifest.box_code if carton.manifest else None
        accepted = ShowMessage(
            "info", "box.accepted", {"box": code.box_code, "suggested": suggested}
        )
        if self._state is SessionState.LOADING:
            return [accepted]  # packing starts once the manifest is in
        if self._state is SessionState.AWAITING_BOX:
            self._state = SessionState.PACKING
        return [accepted, *self._start_plan(carton)]  # another box changes the tolerance

    def _on_item(self, code: ItemCode) -> list[Effect]:
        carton = self._carton
        if carton is None or self._state not in _OPEN_FOR_ITEMS:
            return self._not_now(code)
        params: dict[str, object] = {"sku": code.sku, "name": self._catalog.items[code.sku].name}
        if carton.removing:
            carton.removing = False
            return self._take_back(carton, code, params)
        recount = self._start_recount(carton, code.sku)
        if code.serial is not None:
            seen = carton.serials.setdefault(code.sku, set())
            if code.serial in seen:
                return [
                    *recount,
                    ShowMessage("warning", "item.double_scan", {**params, "serial": code.serial}),
                ]
            seen.add(code.serial)
        carton.scanned_units[code.sku] += code.units
        if self._state is SessionState.PACKING:
            # Only while packing is a scan a unit in hand for the insertion steps: after a
            # verdict the packer scans units already in the carton as often as new ones (the
            # station asked for a scan of units whose tag did not answer), and the steps are
            # explained without pairing.
            carton.unit_scans.append(UnitScan(code.sku, code.units, self._last_scan_at))
        expected = self._expected(carton)
        params |= {
            "units": code.units,
            "total": carton.scanned_units[code.sku],
            "expected": expected.get(code.sku, 0),
        }
        if code.sku not in expected:
            return [*recount, ShowMessage("warning", "item.not_on_order", params)]
        if carton.scanned_units[code.sku] > expected[code.sku]:
            return [*recount, ShowMessage("warning", "item.too_many", params)]
        return [*recount, ShowMessage("info", "item.recorded", params)]

    def _start_recount(self, carton: _Carton, sku: str) -> list[Effect]:
        """The first scan of a SKU the verdict asked to recount: its earlier scans are set aside
        (recorded) and the recount is its count from here."""
        if sku not in carton.recount_asked:
            return []
        carton.recount_asked.discard(sku)
        carton.recounted.add(sku)
        set_aside = carton.scanned_units[sku]
        carton.scanned_units[sku] = 0
        carton.serials.pop(sku, None)
        data = {**_key_params(carton), "sku": sku, "scans_set_aside": set_aside}
        return [self._audit("carton.recount", data)]

    def _arm_removal(self, code: RemoveUnitCode) -> list[Effect]:
        carton = self._carton
        if carton is None or self._state not in _OPEN_FOR_ITEMS:
            return self._not_now(code)
        carton.removing = True
        return [ShowMessage("info", "item.remove_armed", {})]

    def _take_back(
        self, carton: _Carton, code: ItemCode, params: dict[str, object]
    ) -> list[Effect]:
        """REMOVE then an item: the packer took a unit they had scanned out of the carton (a
        wrong variant, a unit scanned twice). Its scan no longer counts."""
        serials = carton.serials.get(code.sku, set())
        if serials and code.serial is None:
            # Serials were scanned for it: only the unit's own serial says which one came out.
            return [ShowMessage("warning", "item.remove_serial", params)]
        if carton.scanned_units[code.sku] < code.units or (
            code.serial is not None and code.serial not in serials
        ):
            return [ShowMessage("warning", "item.remove_unscanned", params)]
        carton.scanned_units[code.sku] -= code.units
        if code.serial is not None:
            serials.discard(code.serial)
        if self._state is SessionState.PACKING:
            # Only scans made while packing pair with the insertion steps: take back as many
            # units from the latest of them.
            _drop_latest_scans(carton.unit_scans, code.sku, code.units)
        expected = self._expected(carton).get(code.sku, 0)
        params |= {"total": carton.scanned_units[code.sku], "expected": expected}
        return [ShowMessage("info", "item.removed", params)]

    def _on_close(self, code: CloseCode | ShippingLabelCode) -> list[Effect]:
        carton = self._carton
        if carton is None:
            return [ShowMessage("warning", "close.no_order")]
        if self._state not in _OPEN_FOR_ITEMS:
            return self._not_now(code)
        trigger: CloseTrigger = "label" if isinstance(code, ShippingLabelCode) else "code"
        label = code.value if isinstance(code, ShippingLabelCode) else None
        if self._config.close_by not in (trigger, "either"):
            return [ShowMessage("warning", f"close.use_{self._config.close_by}")]
        effects: list[Effect] = []
        if label is not None and (owner := self._other_owner(label, carton)) is not None:
            # Another carton's label (one the shipping software was allowed to print): it must
            # not close this carton and tie its tracking number to it. Audited either way, since
            # that label is now on this carton; a station in shadow mode stops nothing.
            params = {**_key_params(carton), "label": label, "printed_for": list(owner)}
            effects.append(self._audit("label.other_carton", params))
            if self._config.mode == "enforce":
                shown = ShowMessage("warning", "label.other_carton", _owner_params(label, owner))
                return [*effects, shown]
        return [*effects, *self._start_attempt(carton, trigger, label)]

    def _start_attempt(
        self, carton: _Carton, trigger: CloseTrigger, label: str | None
    ) -> list[Effect]:
        assert carton.box is not None and carton.manifest is not None  # PACKING/BLOCKED have both
        carton.attempts += 1
        carton.closed_by, carton.shipping_label = trigger, label
        self._state = SessionState.VERIFYING
        return [
            CollectEvidence(carton.attempts, carton.box, carton.manifest, tuple(carton.unit_scans)),
            ShowMessage("info", "close.verifying", {"attempt": carton.attempts}),
        ]

    # -------------------------------------------------------------------- manifest source

    def _awaited(self, order_id: str, carton_id: str) -> _Carton | None:
        """The open carton if the response is for it and it is waiting for one."""
        carton = self._carton
        if self._state is SessionState.LOADING and carton and carton.key == (order_id, carton_id):
            return carton
        return None

    def _on_manifest_loaded(self, event: ManifestLoaded) -> list[Effect]:
        manifest = event.manifest
        carton = self._awaited(*manifest.key)
        if carton is None:
            return []
        if manifest.status is ManifestStatus.CANCELLED:
            return self._cancel(carton, "the manifest says the order is cancelled")
        unknown = unknown_skus(manifest, self._catalog)
        if unknown:
            return self._refuse(carton, "unknown_sku", f"SKUs not in the catalog: {unknown}")
        superseded = carton.manifest is not None
        carton.manifest = manifest
        if event.earlier_attempts > carton.attempts:
            carton.attempts = carton.earlier_attempts = event.earlier_attempts
        if carton.box is None:
            self._state = SessionState.AWAITING_BOX
            return [
                ShowMessage(
                    "info",
                    "box.scan",
                    {"suggested": manifest.box_code, "from_cache": event.from_cache},
                )
            ]
        self._state = SessionState.PACKING  # the box came first, or stays after a supersede
        key = "order.updated" if superseded else "order.loaded"
        loaded = ShowMessage("info", key, {"version": manifest.version, "box": carton.box.code})
        return [loaded, *self._start_plan(carton)]

    def _on_manifest_refused(self, event: ManifestRefused) -> list[Effect]:
        carton = self._awaited(event.order_id, event.carton_id)
        if carton is None:
            return []
        return self._refuse(carton, event.code, event.message)

    def _refuse(self, carton: _Carton, code: str, message: str) -> list[Effect]:
        return [
            self._event(
                STATION_FAULT, carton, fault="manifest_refused", code=code, message=message
            ),
            *self._abort_carton("manifest_refused"),
            SetLight("amber"),
            ShowMessage("error", "order.refused", {"code": code, "message": message}),
        ]

    def _on_manifest_changed(self, event: ManifestChanged) -> list[Effect]:
        carton = self._carton
        if carton is None or carton.key != (event.order_id, event.carton_id):
            return []
        if event.kind == "cancelled":
            return self._cancel(carton, event.message)
        self._state = SessionState.LOADING  # an attempt in flight is void: it used the old lines
        return [
            FetchManifest(carton.order_id, carton.carton_id),
            ShowMessage("warning", "order.superseded", {"message": event.message}),
        ]

    def _cancel(self, carton: _Carton, message: str) -> list[Effect]:
        effects: list[Effect] = []
        if carton.published_missing:
            effects.append(
                self._event(
                    MISSING_CANCELLED, carton, missing=self._lines(carton, carton.published_missing)
                )
            )
        return [
            *effects,
            *self._abort_carton("order_cancelled"),
            SetLight("amber", buzzer=True),
            ShowMessage("warning", "order.cancelled", {"message": message}),
        ]

    def _abort_carton(self, reason: str) -> list[Effect]:
        carton = self._carton
        assert carton is not None
        self._carton = None
        self._state = SessionState.IDLE
        return [self._audit("carton.aborted", {**_key_params(carton), "reason": reason})]

    # ----------------------------------------------------------------------------- verdict

    def _on_evidence(self, event: EvidenceReady) -> list[Effect]:
        carton = self._carton
        if (
            self._state is not SessionState.VERIFYING
            or carton is None
            or event.attempt != carton.attempts
        ):
            return []
        plan = carton.plan = self._plan(carton, self._degraded)
        expected = self._verifiable(carton)
        scans = evaluate_scans(expected, carton.scanned_units, plan.must_scan)
        reports = event.reports if scans is None else (*event.reports, scans)
        policy = replace(plan.policy, recounted=frozenset(carton.recounted))
        verdict = policy.decide(expected, reports)
        if verdict.passed and self._output_faults and self._config.mode == "enforce":
            faults = "; ".join(f"{d}: {m}" for d, m in sorted(self._output_faults.items()))
            message = f"The light or the diverter cannot be set ({faults})."
            verdict = _review(verdict, Reason("output_fault", message))
        carton.last_outcome = verdict.outcome
        carton.last_verdict = verdict
        carton.last_weight = event.weight
        # The event first: if it cannot be committed the daemon applies nothing after it, so no
        # evidence row (and so no label permission) exists for a verdict nobody was told about.
        effects: list[Effect] = [
            self._verdict_event(VERIFICATION_RESULT, carton, verdict, event.weight),
            RecordAttempt(self._attempt_record(carton, verdict, event.weight)),
        ]
        if verdict.passed:
            return effects + self._passed(carton, verdict, event.weight)
        if self._config.mode == "shadow":
            return effects + self._shadow_done(carton)
        return effects + self._blocked(carton, verdict, event.weight)

    def _passed(self, carton: _Carton, verdict: Verdict, weight: WeightInfo | None) -> list[Effect]:
        effects: list[Effect] = []
        if carton.published_missing:
            effects.append(
                self._verdict_event(
                    MISSING_RESOLVED, carton, verdict, weight, carton.published_missing
                )
            )
        self._carton = None
        self._state = SessionState.IDLE
        if self._config.mode == "enforce":
            self._unlabelled = carton
        return [
            *effects,
            SetLight("green"),
            SetDiverter("straight"),
            ShowMessage("info", "verdict.pass", _key_params(carton)),
        ]

    def _shadow_done(self, carton: _Carton) -> list[Effect]:
        self._carton = None
        self._state = SessionState.IDLE
        return [SetLight("off"), ShowMessage("info", "carton.done", _key_params(carton))]

    def _blocked(
        self, carton: _Carton, verdict: Verdict, weight: WeightInfo | None
    ) -> list[Effect]:
        self._state = SessionState.BLOCKED
        effects: list[Effect] = []
        # The same shortage with other evidence (another tag read beside the box) is no news.
        if verdict.missing and _shortage(verdict.missing) != _shortage(carton.published_missing):
            carton.published_missing = verdict.missing
            effects.append(self._verdict_event(MISSING_DETECTED, carton, verdict, weight))
        asked = {r.sku for r in verdict.reasons if r.code == SCAN_RECOUNT and r.sku}
        carton.recount_asked = asked  # what the latest verdict asks; recounts started stay
        key = "verdict.block" if verdict.outcome is Outcome.BLOCK else "verdict.review"
        params = {
            "missing": self._lines(carton, verdict.missing),
            "extra": self._lines(carton, verdict.extra),
            "reasons": [reason.message for reason in verdict.reasons],
        }
        return [*effects, SetLight("red", buzzer=True), ShowMessage("error", key, params)]

    def _on_override(self, event: ReviewerOverride) -> list[Effect]:
        refusal = self.override_refusal(event.reviewer_badge)
        if refusal is not None:
            return [ShowMessage("warning", refusal, {"reviewer_badge": event.reviewer_badge})]
        carton = self._carton
        assert carton is not None and carton.last_verdict is not None  # BLOCKED has both
        # A shortage published earlier and never resolved ships too, even if the last attempt
        # could only say REVIEW: the backend must reissue what it was told is missing.
        short = carton.last_verdict.missing or carton.published_missing
        lines = self._lines(carton, short)
        effects: list[Effect] = []
        if short:
            sentence = f"Released by reviewer {event.reviewer_badge} ({event.reason_code})."
            reasons = [{"code": event.reason_code, "message": sentence}]
            reasons += [{"code": r.code, "message": r.message} for r in carton.last_verdict.reasons]
            effects.append(
                self._event(
                    MISSING_SHIPPED_SHORT,
                    carton,
                    missing=lines,
                    reasons=reasons,
                    reviewer_badge=event.reviewer_badge,
                )
            )
        # The audit row is what grants the label: written only once the shipped-short event is in.
        effects.append(
            self._audit(
                "carton.released",
                {
                    **_key_params(carton),
                    "attempt": carton.attempts,
                    "outcome": carton.last_verdict.outcome.value,
                    "packer_badge": self._packer,
                    "reviewer_badge": event.reviewer_badge,
                    "reason_code": event.reason_code,
                    "missing": lines,
                    "degraded": self._degraded.flag() if self._degraded else None,
                },
            )
        )
        self._carton = None
        self._state = SessionState.IDLE
        params = {**_key_params(carton), "reviewer_badge": event.reviewer_badge, "missing": lines}
        return [
            *effects,
            SetLight("off"),
            SetDiverter("straight"),
            ShowMessage("info", "override.released", params),
        ]

    # ------------------------------------------------------------- label and final weight

    def _remember_owner(self, label: str, key: tuple[str, str]) -> None:
        self._label_owners.pop(label, None)  # re-granted: now the latest
        self._label_owners[label] = key
        while len(self._label_owners) > LABELS_REMEMBERED:
            del self._label_owners[next(iter(self._label_owners))]

    def _other_owner(self, label: str, carton: _Carton) -> tuple[str, str] | None:
        """The carton `label` was printed for, if it is known and not `carton` (a label granted
        to `carton` is its own, even if it was granted to another since)."""
        if label in carton.granted_labels:
            return None
        owner = self._label_owners.get(label)
        return owner if owner is not None and owner != carton.key else None

    def _on_label_applied(self, carton: _Carton, label: str) -> list[Effect]:
        carton.shipping_label = label
        granted = sorted(carton.granted_labels)
        owner = self._other_owner(label, carton)
        if owner is not None or (granted and label not in granted):
            whose = (
                f"was printed for {owner[0]} / {owner[1]}, not" if owner else "was not printed for"
            )
            also = f" ({', '.join(granted)} was)" if granted else ""
            message = (
                f"Label {label} {whose} this carton{also}: take it off and put the carton's own "
                "label on."
            )
            return self._withdraw(carton, Reason("label_mismatch", message))
        params = {**_key_params(carton), "label": label}
        labelled = self._audit("carton.labelled", {**params, "attempt": carton.attempts})
        if not self._config.final_weight_check:
            return [labelled, *self._seal(carton, final_g=None)]
        carton.final_weight_pending = True
        return [
            labelled,
            WeighFinal(carton.order_id, carton.carton_id),
            ShowMessage("info", "label.checking", params),
        ]

    def _on_final_weight(self, event: FinalWeight) -> list[Effect]:
        carton = self._unlabelled
        if carton is None or carton.key != (event.order_id, event.carton_id):
            return []
        weight = carton.last_weight
        verdict_g = weight.measured_g if weight else None
        tolerance_g = weight.tolerance_g if weight else None
        if event.measured_g is None:
            message = "The labelled carton could not be weighed again; nothing proves it is whole."
            return self._withdraw(carton, Reason("final_weight_unknown", message, "weight"))
        if (
            verdict_g is not None
            and tolerance_g is not None
            and event.measured_g < verdict_g - tolerance_g
        ):
            message = (
                f"The labelled carton weighs {event.measured_g:.0f} g, {verdict_g:.0f} g at the "
                f"verdict (tolerance {tolerance_g:.0f} g): something was taken out."
            )
            return self._withdraw(carton, Reason("final_weight_low", message, "weight"))
        return self._seal(carton, event.measured_g)

    def _left_unsealed(self, why: str) -> list[Effect]:
        """The passed carton still waiting for its label leaves the station without its label
        scan and final weight: audited, so the interlock wants it verified again for a label.
        Not where the station checks no final weight (labels go on elsewhere), nor for a carton
        closed by its label (the label was on before the verdict): nothing was skipped."""
        carton, self._unlabelled = self._unlabelled, None
        if carton is None or not self._config.final_weight_check or carton.closed_by == "label":
            return []
        return [self._audit(CARTON_UNSEALED, {**_key_params(carton), "why": why})]

    def _seal(self, carton: _Carton, final_g: float | None) -> list[Effect]:
        """The label is on and nothing was taken out: the PASS stands for good."""
        self._unlabelled = None
        carton.final_weight_pending = False
        weight = carton.last_weight
        params = {**_key_params(carton), "label": carton.shipping_label}
        sealed = {**params, "attempt": carton.attempts, "final_g": final_g}
        verdict_g = weight.measured_g if weight else None
        return [
            self._audit("carton.sealed", {**sealed, "verdict_g": verdict_g}),
            ShowMessage("info", "label.confirmed", params),
        ]

    def _withdraw(self, carton: _Carton, reason: Reason) -> list[Effect]:
        """Take back a PASS: the carton is held again (REVIEW), the light red, the diverter to
        the exception lane. The REVIEW attempt record is what takes the label permission back;
        the event goes first, as for any verdict."""
        assert carton.last_verdict is not None  # it passed
        self._unlabelled = None
        carton.final_weight_pending = False
        verdict = _review(carton.last_verdict, reason)
        carton.last_outcome, carton.last_verdict = verdict.outcome, verdict
        self._carton = carton
        self._state = SessionState.BLOCKED
        params = {**_key_params(carton), "reason": reason.message}
        return [
            self._verdict_event(VERIFICATION_RESULT, carton, verdict, carton.last_weight),
            RecordAttempt(self._attempt_record(carton, verdict, carton.last_weight)),
            self._audit(
                "carton.pass_withdrawn",
                {**_key_params(carton), "attempt": carton.attempts, "code": reason.code},
            ),
            SetLight("red", buzzer=True),
            SetDiverter("exception"),
            ShowMessage("error", "verdict.withdrawn", params),
        ]

    # ------------------------------------------------------------------- time and devices

    def _on_tick(self, now: float) -> list[Effect]:
        if self._state is SessionState.LOGGED_OUT:
            return []
        if now - self._last_scan_at < self._config.inactivity_timeout_s:
            return []
        return self._logout("inactivity")

    def _on_device_fault(
        self, device: str, message: str, cleared: bool = False, output: bool = False
    ) -> list[Effect]:
        """A device went down (or came back): a fault event raised (or cleared) and a message.
        An output going down also withdraws a PASS whose label is not on yet: the light or the
        diverter may not show it."""
        if cleared:
            self._output_faults.pop(device, None)
        elif output:
            self._output_faults[device] = message
        data = {
            "fault": "device",
            "device": device,
            "message": message,
            "mode": self._config.mode,
            "cleared": cleared,
        }
        if self._carton:
            fault = self._event(STATION_FAULT, self._carton, **data)
        else:
            degraded = self._degraded.flag() if self._degraded else None
            fault = PublishEvent(
                STATION_FAULT, {**data, "packer_badge": self._packer, "degraded": degraded}
            )
        if cleared:
            return [fault, ShowMessage("info", "device.recovered", {"device": device})]
        effects: list[Effect] = [fault, ShowMessage("warning", "device.fault", {"device": device})]
        if output and self._unlabelled is not None:
            reason = Reason("output_fault", f"The {device} failed ({message}) after the PASS.")
            effects += self._withdraw(self._unlabelled, reason)
        return effects

    # ------------------------------------------------------------ plan and degraded mode

    def _plan(self, carton: _Carton, degraded: DegradedMode | None) -> CartonPlan:
        expected = self._verifiable(carton)
        power = self._weight_power(expected, carton.box)
        lookalike_power = self._lookalike_power(expected, carton.box)
        return self._policy.plan(expected, self._catalog, power, degraded, lookalike_power)

    def _start_plan(self, carton: _Carton) -> list[Effect]:
        """Packing starts: which SKUs no sensor would miss, told to the packer and recorded."""
        plan = carton.plan = self._plan(carton, self._degraded)
        effects: list[Effect] = [
            self._audit(
                "carton.plan",
                {
                    **_key_params(carton),
                    "coverage": [asdict(c) for c in plan.coverage],
                    "degraded": plan.degraded.flag() if plan.degraded else None,
                },
            )
        ]
        must_scan = sorted(plan.must_scan)
        unproven = [sku for sku in plan.uncovered if sku not in plan.must_scan]
        if must_scan:
            effects.append(ShowMessage("warning", "order.scan_units", self._skus_params(must_scan)))
        if unproven:
            effects.append(ShowMessage("warning", "order.unproven", self._skus_params(unproven)))
        if plan.lookalikes_unproven:
            effects.append(
                ShowMessage(
                    "warning",
                    "order.check_lookalikes",
                    self._skus_params(list(plan.lookalikes_unproven)),
                )
            )
        return effects

    def _skus_params(self, skus: list[str]) -> dict[str, object]:
        names = [self._catalog.items[sku].name for sku in skus]
        return {"skus": skus, "names": ", ".join(names)}

    def _on_degraded_requested(self, event: DegradedModeRequested) -> list[Effect]:
        if self._packs(event.reviewer_badge):
            return [ShowMessage("warning", "degraded.own_station", {})]
        # One in force is ended first, on the record: every span of a mode has its end.
        replaced = (
            self._end_degraded(f"replaced by {event.reviewer_badge}") if self._degraded else []
        )
        now, now_utc = self._clock.monotonic(), self._clock.now_utc()
        self._degraded = DegradedMode(
            fallback=event.fallback,
            authorised_by=event.reviewer_badge,
            reason_code=event.reason_code,
            started_at=now_utc,
            ends_at=now_utc + timedelta(seconds=event.duration_s),
            ends_monotonic=now + event.duration_s,
        )
        return [*replaced, *self._degraded_effects(cleared=False, why=event.reason_code)]

    def _packs(self, badge: str) -> bool:
        """`badge` packs here: logged in, or a packer of the open carton."""
        return badge == self._packer or (self._carton is not None and badge in self._carton.packers)

    def _reviewer_packing(self, badge: str) -> list[Effect]:
        """The reviewer who authorised the degraded mode in force now packs under it: a second
        pair of eyes is no longer one, so the mode ends (on the record)."""
        if self._degraded is None or self._degraded.authorised_by != badge:
            return []
        return self._end_degraded(f"its reviewer {badge} is packing")

    def _end_degraded(self, why: str) -> list[Effect]:
        if self._degraded is None:
            return [ShowMessage("info", "degraded.not_active", {})]
        effects = self._degraded_effects(cleared=True, why=why)
        self._degraded = None
        return effects

    def _degraded_effects(self, cleared: bool, why: str) -> list[Effect]:
        degraded = self._degraded
        assert degraded is not None
        flag = degraded.flag()
        state = "ended" if cleared else "started"
        message = (
            f"Degraded mode {degraded.fallback.value} {state} ({why}): "
            f"units are scanned in place of {degraded.fallback.replaces}."
        )
        data = {"fault": "degraded_mode", "message": message, "cleared": cleared, "degraded": flag}
        return [
            PublishEvent(STATION_FAULT, {**data, "packer_badge": self._packer}),
            self._audit(f"degraded.{state}", {**flag, "why": why}),
            ShowMessage("warning", f"degraded.{state}", {**flag, "why": why}),
        ]

    # ----------------------------------------------------------------- weigh one unit
    # Master data capture between cartons: the packer scans WEIGH-UNIT, puts one unit (or an
    # empty box, or an item the catalog does not know) on the empty platter and scans it; the
    # daemon reads the settled weight and the session records it. WEIGH-UNIT or CLOSE again
    # ends the mode; an order label ends it and opens that carton.

    def _enter_weighing(self, code: WeighUnitCode) -> list[Effect]:
        if self._state is not SessionState.IDLE:
            return self._not_now(code)
        self._state = SessionState.WEIGHING
        self._weigh_pending = None
        return [ShowMessage("info", "weigh.started")]

    def _leave_weighing(self) -> list[Effect]:
        self._state = SessionState.IDLE
        self._weigh_pending = None
        return [ShowMessage("info", "weigh.ended")]

    def _on_weigh_scan(self, code: ScannedCode) -> list[Effect]:
        match code:
            case WeighUnitCode() | CloseCode():
                return self._leave_weighing()
            case BadgeCode():
                return self._on_badge(code)
            case LogoutCode():
                return self._logout("logout")
            case OrderCartonCode():
                self._weigh_pending = None
                return self._open_carton(code)
            case ItemCode(sku, units):
                item = self._catalog.items[sku]
                # No one unit to learn: a kit is packed (and weighed) as its components, and a
                # unit sold by weight weighs what it weighs (its stated minimum decides).
                if item.components:
                    return [ShowMessage("warning", "weigh.kit", {"name": item.name})]
                if item.variable_weight:
                    return [ShowMessage("warning", "weigh.variable_weight", {"name": item.name})]
                return self._capture(WeighSubject("unit", sku, units, item.name))
            case BoxCode(box_code):
                name = self._catalog.boxes[box_code].name
                return self._capture(WeighSubject("box", box_code, 1, name))
            case UnknownCode(raw):
                return self._capture(WeighSubject("unknown", raw.strip()[:128] or "?"))
        return self._not_now(code)

    def _capture(self, subject: WeighSubject) -> list[Effect]:
        if self._weigh_pending is not None:
            return [ShowMessage("warning", "weigh.busy", {"name": self._weigh_pending.name})]
        self._weigh_requests += 1
        self._weigh_pending = subject
        params = {"kind": subject.kind, "key": subject.key, "name": subject.name}
        return [
            CaptureWeight(self._weigh_requests, subject),
            ShowMessage("info", "weigh.reading", params),
        ]

    def _on_weight_captured(self, event: WeightCaptured) -> list[Effect]:
        subject = self._weigh_pending
        if (
            self._state is not SessionState.WEIGHING
            or subject is None
            or event.request != self._weigh_requests
        ):
            return []
        self._weigh_pending = None
        params: dict[str, object] = {"kind": subject.kind, "key": subject.key, "name": subject.name}
        if event.problem in ("empty_platter", "platter_not_emptied"):
            return [ShowMessage("warning", f"weigh.{event.problem}", params)]
        if event.grams is None or event.problem:
            return [ShowMessage("warning", "weigh.failed", {**params, "problem": event.problem})]
        params |= {"grams": round(event.grams, 1), "units": subject.units}
        record = RecordWeightSample(
            subject, event.grams, event.scale_error_g, self._packer, self._clock.now_utc()
        )
        return [record, ShowMessage("info", f"weigh.captured_{subject.kind}", params)]

    # ---------------------------------------------------------------------------- helpers

    def _expected(self, carton: _Carton) -> dict[str, int]:
        return expected_units(carton.manifest, self._catalog) if carton.manifest else {}

    def _verifiable(self, carton: _Carton) -> dict[str, int]:
        """Expected units the policy must see confirmed: products, not inserts (gift notes and
        slips count in the weight but no channel can prove a 3 g note is there)."""
        items = self._catalog.items
        return {
            sku: n
            for sku, n in self._expected(carton).items()
            if sku not in items or items[sku].kind is ItemKind.PRODUCT
        }

    def _lines(self, carton: _Carton, deltas: tuple[LineDelta, ...]) -> list[dict[str, object]]:
        return [
            {
                "sku": d.sku,
                "name": self._catalog.items[d.sku].name if d.sku in self._catalog.items else d.sku,
                "quantity": d.quantity,
                "line_id": _line_id(carton.manifest, self._catalog, d.sku),
                "epcs": list(d.evidence),
            }
            for d in deltas
        ]

    def _event(self, kind: str, carton: _Carton, **extra: object) -> PublishEvent:
        """An event about `carton`; every one carries the same identifying fields."""
        manifest = carton.manifest
        data: dict[str, object] = {
            "order_id": carton.order_id,
            "carton_id": carton.carton_id,
            "manifest_version": manifest.version if manifest else None,
            "attempt": carton.attempts,
            "picker_id": manifest.picker_id if manifest else None,
            "tote_id": manifest.tote_id if manifest else None,
            "wave_id": manifest.wave_id if manifest else None,
            "packer_badge": self._packer,
            "mode": self._config.mode,
            "outcome": carton.last_outcome.value if carton.last_outcome else None,
            "degraded": self._degraded.flag() if self._degraded else None,
        }
        return PublishEvent(kind, {**data, **extra})

    def _verdict_event(
        self,
        kind: str,
        carton: _Carton,
        verdict: Verdict,
        weight: WeightInfo | None,
        missing: tuple[LineDelta, ...] | None = None,
    ) -> PublishEvent:
        return self._event(
            kind,
            carton,
            missing=self._lines(carton, verdict.missing if missing is None else missing),
            extra=self._lines(carton, verdict.extra),
            reasons=[{"code": r.code, "message": r.message} for r in verdict.reasons],
            weights=asdict(weight) if weight else None,
            box_code=carton.box.code if carton.box else None,
        )

    def _attempt_record(
        self, carton: _Carton, verdict: Verdict, weight: WeightInfo | None
    ) -> AttemptRecord:
        assert carton.manifest is not None and carton.box is not None and self._packer
        return AttemptRecord(
            order_id=carton.order_id,
            carton_id=carton.carton_id,
            manifest_version=carton.manifest.version,
            attempt=carton.attempts,
            packer_badge=self._packer,
            box_code=carton.box.code,
            closed_by=carton.closed_by,
            shipping_label=carton.shipping_label,
            mode=self._config.mode,
            verdict=verdict,
            scanned_units={sku: n for sku, n in carton.scanned_units.items() if n},
            weight=weight,
            decided_at=self._clock.now_utc(),
            coverage=carton.plan.coverage if carton.plan else (),
            degraded=self._degraded.flag() if self._degraded else None,
        )

    def _audit(self, kind: str, data: Mapping[str, object]) -> RecordAudit:
        return RecordAudit(kind, data, self._clock.now_utc())


def _line_id(manifest: Manifest | None, catalog: Catalog, sku: str) -> str:
    """The manifest line a SKU's units belong to: its own line, or the kit line it is part of."""
    if manifest is None:
        return ""
    for line in manifest.lines:
        item = catalog.items.get(line.sku)
        components = {c.sku for c in item.components} if item else set()
        if line.sku == sku or sku in components:
            return line.line_id
    return ""


def _review(verdict: Verdict, reason: Reason) -> Verdict:
    """`verdict` made REVIEW by `reason` (findings kept: they still say what was seen)."""
    return Verdict(
        Outcome.REVIEW, (reason, *verdict.reasons), verdict.missing, verdict.extra, verdict.reports
    )


def _carton_snapshot(carton: _Carton) -> CartonSnapshot:
    plan = carton.plan
    return CartonSnapshot(
        order_id=carton.order_id,
        carton_id=carton.carton_id,
        manifest=carton.manifest,
        box=carton.box,
        attempts=carton.attempts,
        scanned_units={sku: n for sku, n in carton.scanned_units.items() if n},
        closed_by=carton.closed_by,
        shipping_label=carton.shipping_label,
        last_outcome=carton.last_outcome,
        last_verdict=carton.last_verdict,
        published_missing=carton.published_missing,
        serials={sku: tuple(sorted(serials)) for sku, serials in carton.serials.items()},
        planned=plan is not None,
        plan_degraded=plan.degraded if plan else None,
        packers=tuple(sorted(carton.packers)),
        last_weight=carton.last_weight,
        granted_labels=tuple(sorted(carton.granted_labels)),
        final_weight_pending=carton.final_weight_pending,
        unit_scans=tuple(carton.unit_scans),
        recount_asked=tuple(sorted(carton.recount_asked)),
        recounted=tuple(sorted(carton.recounted)),
        earlier_attempts=carton.earlier_attempts,
    )


def _shortage(deltas: tuple[LineDelta, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((d.sku, d.quantity) for d in deltas)


def _key_params(carton: _Carton) -> dict[str, object]:
    return {"order_id": carton.order_id, "carton_id": carton.carton_id}


def _owner_params(label: str, owner: tuple[str, str]) -> dict[str, object]:
    return {"label": label, "order_id": owner[0], "carton_id": owner[1]}


def _drop_latest_scans(scans: list[UnitScan], sku: str, units: int) -> None:
    """Take `units` of `sku` back from the latest scans of it (a pack's scan may be split)."""
    for index in range(len(scans) - 1, -1, -1):
        if units <= 0:
            return
        scan = scans[index]
        if scan.sku != sku:
            continue
        if scan.units <= units:
            units -= scan.units
            del scans[index]
        else:
            scans[index] = replace(scan, units=scan.units - units)
            units = 0
