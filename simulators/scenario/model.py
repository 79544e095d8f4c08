"""The scenario file format: what a QA engineer writes to say "this is what the packer does, this is
what the station must conclude". TOML, one or more `[[scenario]]` tables per file.

Every table is a pydantic model with extra="forbid" and bounded sizes; a file that does not fit
raises `ScenarioFileError` naming the file, the scenario and the key path (`steps[3].sku`) of the
first problem, so a typo never turns into a scenario that silently checks less than it says.
docs/scenarios.md shows a full example.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from simulators.rig import EXAMPLE_CATALOG, EXAMPLE_MANIFESTS
from station.domain import Manifest, Sku
from station.verification import Outcome

MAX_FILE_BYTES = 1_000_000
MAX_CATALOG_BYTES = 50_000_000
MAX_SCENARIOS_PER_FILE = 100
MAX_STEPS = 500
MAX_CARTONS = 50
MAX_EVENTS = 500
MAX_UNITS_PER_STEP = 100
MAX_WAIT_S = 24 * 3600.0  # station seconds: a day is the longest wait a scenario may ask for

Badge = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")]
CartonRef = Annotated[
    str, Field(min_length=3, max_length=129, pattern=r"^[A-Za-z0-9._\-]+/[A-Za-z0-9._\-]+$")
]
Count = Annotated[int, Field(ge=1, le=MAX_UNITS_PER_STEP)]
SkuCounts = Annotated[dict[Sku, Count], Field(max_length=200)]
ReasonCodes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]],
    Field(max_length=20),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(StrEnum):
    WEIGHT = "weight"
    RFID = "rfid"
    VISION = "vision"


class StationOptions(_Strict):
    mode: Literal["enforce", "shadow"] = Field(
        default="enforce", description="enforce blocks short cartons; shadow only records."
    )
    channels: list[Channel] = Field(
        default=[Channel.WEIGHT],
        min_length=1,
        max_length=3,
        description="Evidence channels wired: weight (always: the station needs its scale), "
        "rfid (an LLRP reader under the platter; tagged units carry SGTIN-96 tags) and vision "
        "(the overhead camera, rendering what goes in, counted by the shipped model).",
    )
    required_channels: list[Channel] | None = Field(
        default=None,
        max_length=3,
        description="Channels that must vouch for every carton ([policy] required_channels); "
        "default: weight only.",
    )
    backup_channels: list[Literal["vision"]] = Field(
        default=[],
        max_length=1,
        description="The camera as a backup ([policy] backup_channels): required only in "
        "cartons the scale cannot vouch for alone; needs weight required.",
    )
    rfid_second_channel: bool = Field(
        default=False,
        description="An RFID confirmation alone does not verify a SKU ([rfid] "
        "require_second_channel).",
    )
    lookalike_action: Literal["warn", "scan"] = Field(
        default="warn",
        description="Look-alikes no channel tells apart: warn the packer, or make them scan each "
        "unit ([policy] lookalike_action).",
    )
    catalog: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Catalog JSON, relative to the scenario file; default: the example catalog.",
    )
    reviewers: list[Badge] = Field(
        default=["LEAD01"],
        max_length=10,
        description="Badges that may release a held carton (each gets a PIN; the runner "
        "releases through the Station API with its token).",
    )
    seed: int = Field(
        default=7, ge=0, le=2**31, description="Seed for unit weights, tare and tag serials."
    )
    inactivity_timeout_s: float | None = Field(
        default=None,
        ge=10,
        le=86_400,
        description="Station seconds without a scan before the packer is logged out ([workflow] "
        "inactivity_timeout_s); default: the station's (15 min).",
    )

    @field_validator("channels")
    @classmethod
    def _weight_is_always_wired(cls, channels: list[Channel]) -> list[Channel]:
        if Channel.WEIGHT not in channels:
            raise ValueError("channels must include weight: every station has its scale")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    @model_validator(mode="after")
    def _required_are_wired(self) -> StationOptions:
        required = set(self.required_channels or [Channel.WEIGHT])
        unwired = (required | set(self.backup_channels)) - set(self.channels)
        if unwired:
            raise ValueError(
                f"required or backup channel(s) not wired: {', '.join(sorted(unwired))}"
            )
        if self.backup_channels and (
            Channel.WEIGHT not in required or required & set(self.backup_channels)
        ):
            raise ValueError(
                "backup_channels needs weight in required_channels and the camera not in them"
            )
        if self.rfid_second_channel and Channel.RFID not in self.channels:
            raise ValueError("rfid_second_channel needs rfid in channels")
        return self


class StrayTags(_Strict):
    sku: Sku = Field(description="Tagged SKU of the neighbour's order.")
    count: Count = Field(default=3, description="How many of its units lie near the station.")


class DeadTags(_Strict):
    sku: Sku = Field(description="Tagged SKU of this carton.")
    count: Count = Field(default=1, description="How many of its units carry a silent tag.")


class Sensors(_Strict):
    scale_noise_g: float = Field(
        default=0.0, ge=0, le=50, description="Standard deviation of the scale's reading noise."
    )
    stray_tags: list[StrayTags] = Field(
        default=[],
        max_length=20,
        description="Tags of another station's order: weak on our antenna, strong on theirs.",
    )
    dead_tags: list[DeadTags] = Field(
        default=[],
        max_length=20,
        description="Units packed here whose tag never answers (dead, or detuned by foil).",
    )


class CartonFromLibrary(_Strict):
    ref: CartonRef = Field(description="ORDER/CARTON of a manifest in config/manifests.")


class InlineCarton(Manifest):
    version: int = Field(default=1, ge=1, description="Manifest version.")


def _carton_kind(value: Any) -> str:
    return "ref" if isinstance(value, Mapping) and "ref" in value else "inline"


CartonSpec = Annotated[
    Annotated[CartonFromLibrary, Tag("ref")] | Annotated[InlineCarton, Tag("inline")],
    Discriminator(_carton_kind),
]


# -- what the packer does (and what happens to the devices) -------------------------------------


class Login(_Strict):
    do: Literal["login"]
    badge: Badge = Field(default="A1", description="The packer's badge (scanned as BADGE-<id>).")


class Logout(_Strict):
    do: Literal["logout"]


class ScanOrder(_Strict):
    do: Literal["scan_order"]
    carton: CartonRef = Field(description="ORDER/CARTON label scanned (the manifest is fetched).")


class ScanBox(_Strict):
    do: Literal["scan_box"]
    box: str = Field(
        min_length=1, max_length=64, description="Box code; the box goes on the scale."
    )
    paperwork: bool = Field(default=True, description="The packing slip goes in with the box.")


class Pack(_Strict):
    do: Literal["pack"]
    leave_out: list[Sku] = Field(
        default=[],
        max_length=MAX_UNITS_PER_STEP,
        description="One unit of each SKU listed is not packed (repeat a SKU for more).",
    )
    scan_units: bool = Field(default=False, description="Scan each unit's barcode as it goes in.")


class AddUnit(_Strict):
    do: Literal["add"]
    sku: Sku = Field(description="Any SKU: on the manifest, of another order, a look-alike.")
    count: Count = Field(default=1, description="How many units.")
    scan: bool = Field(default=False, description="Scan each unit's barcode as it goes in.")


class RemoveUnit(_Strict):
    do: Literal["remove"]
    sku: Sku = Field(description="A unit of this SKU comes out of the carton, out of reach.")
    count: Count = Field(default=1, description="How many units.")


class LeaveBeside(_Strict):
    do: Literal["leave_beside"]
    sku: Sku = Field(
        description="A unit lies on the table beside the box (taken out of the carton if it was "
        "in): no weight on the platter, its tag read weakly."
    )


class PutBack(_Strict):
    do: Literal["put_back"]
    sku: Sku = Field(description="The unit left beside the box goes into the carton after all.")


class Scan(_Strict):
    do: Literal["scan"]
    code: str = Field(min_length=1, max_length=128, description="Any raw scan.")


class Wait(_Strict):
    do: Literal["wait"]
    seconds: float = Field(
        gt=0, le=MAX_WAIT_S, description="Station seconds (real seconds = seconds / speed)."
    )


class Close(_Strict):
    do: Literal["close"]
    expect: Outcome = Field(description="The verdict this close must get: PASS, BLOCK, REVIEW.")
    missing: SkuCounts | None = Field(
        default=None, description="Exactly these missing SKUs and counts (unchecked if absent)."
    )
    extra: SkuCounts | None = Field(
        default=None, description="Exactly these extra SKUs and counts (unchecked if absent)."
    )
    reasons: ReasonCodes = Field(
        default=[], description="Reason codes the verdict must include (e.g. channel_down)."
    )


class Override(_Strict):
    do: Literal["override"]
    reviewer: Badge = Field(description="The reviewer's badge.")
    reason: str = Field(
        default="reissue_approved",
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9_]+$",
        description="Reason code ([review] reason_codes).",
    )
    expect: Literal["released", "refused"] = Field(
        default="released", description="released: the carton is let go; refused: it stays held."
    )


class ExpectState(_Strict):
    do: Literal["expect_state"]
    state: Literal[
        "logged_out", "idle", "loading", "awaiting_box", "packing", "verifying", "blocked"
    ] = Field(description="The session state the station must reach (within 15 real seconds).")


class Ship(_Strict):
    do: Literal["ship"]


class UnplugScale(_Strict):
    do: Literal["unplug_scale"]


class PlugScale(_Strict):
    do: Literal["plug_scale"]


class ScaleDrift(_Strict):
    do: Literal["scale_drift"]
    grams: float = Field(
        ge=-1000, le=1000, description="The scale's zero moves by this much (reads heavier)."
    )


class ScaleNoise(_Strict):
    do: Literal["scale_noise"]
    sigma_g: float = Field(ge=0, le=50, description="Reading noise from now on.")


class RfidDown(_Strict):
    do: Literal["rfid_down"]


class UnplugCamera(_Strict):
    do: Literal["unplug_camera"]


class PlugCamera(_Strict):
    do: Literal["plug_camera"]


class HandOver(_Strict):
    do: Literal["hand_over"]
    present: bool = Field(
        default=True,
        description="The packer's hand stays over the carton (true) or is gone again (false), "
        "as the camera sees it.",
    )


class AddStrayTags(_Strict):
    do: Literal["stray_tags"]
    sku: Sku = Field(description="Tagged SKU of the neighbour's order.")
    count: Count = Field(default=3, description="How many tags appear near the station.")


# -- what must come out --------------------------------------------------------------------------


class EventName(StrEnum):
    VERIFICATION_RESULT = "verification.result"
    MISSING_DETECTED = "missing_item.detected"
    MISSING_RESOLVED = "missing_item.resolved"
    MISSING_SHIPPED_SHORT = "missing_item.shipped_short"
    MISSING_CANCELLED = "missing_item.cancelled"
    STATION_FAULT = "station.fault"
    RFID_EPCS_SHIPPED = "rfid.epcs_shipped"

    @property
    def cloudevents_type(self) -> str:
        return f"com.packstation.{self.value}.v1"


CARTON_EVENTS = frozenset(
    {
        EventName.VERIFICATION_RESULT,
        EventName.MISSING_DETECTED,
        EventName.MISSING_RESOLVED,
        EventName.MISSING_SHIPPED_SHORT,
        EventName.MISSING_CANCELLED,
    }
)
# Which expectation keys make sense for which event: a key the event never carries would make
# the expectation unmatchable (or, worse, silently ignored).
EVENT_KEYS: dict[EventName, frozenset[str]] = {
    EventName.VERIFICATION_RESULT: frozenset(
        {"carton", "attempt", "mode", "outcome", "missing", "extra", "reasons"}
    ),
    EventName.MISSING_DETECTED: frozenset(
        {"carton", "attempt", "mode", "outcome", "missing", "reasons"}
    ),
    EventName.MISSING_RESOLVED: frozenset({"carton", "attempt", "resolved"}),
    EventName.MISSING_SHIPPED_SHORT: frozenset({"carton", "attempt", "missing", "reviewer"}),
    EventName.MISSING_CANCELLED: frozenset({"carton", "attempt", "missing"}),
    EventName.STATION_FAULT: frozenset({"component", "state"}),
    EventName.RFID_EPCS_SHIPPED: frozenset({"carton"}),
}


class ExpectedEvent(_Strict):
    type: EventName = Field(description="Event type without prefix and version.")
    carton: CartonRef | None = Field(
        default=None, description="ORDER/CARTON (the event's order_id and carton_id)."
    )
    attempt: int | None = Field(default=None, ge=1, le=1000, description="Close attempt number.")
    mode: Literal["enforce", "shadow"] | None = Field(default=None, description="Station mode.")
    outcome: Outcome | None = Field(default=None, description="PASS, BLOCK or REVIEW.")
    missing: SkuCounts | None = Field(default=None, description="Exactly these missing lines.")
    extra: SkuCounts | None = Field(default=None, description="Exactly these extra lines.")
    resolved: SkuCounts | None = Field(default=None, description="Exactly these resolved lines.")
    reasons: ReasonCodes = Field(default=[], description="Reason codes that must be included.")
    reviewer: Badge | None = Field(default=None, description="Reviewer who released the carton.")
    component: str | None = Field(
        default=None, max_length=64, description="Faulty device, e.g. scale or rfid platter."
    )
    state: Literal["raised", "cleared"] | None = Field(default=None, description="Fault state.")

    @model_validator(mode="after")
    def _keys_fit_the_type(self) -> ExpectedEvent:
        given = {name for name in self.model_fields_set if name != "type"}
        wrong = sorted(given - EVENT_KEYS[self.type])
        if wrong:
            allowed = ", ".join(sorted(EVENT_KEYS[self.type]))
            raise ValueError(
                f"{self.type.value} events carry no {', '.join(wrong)} (allowed: {allowed})"
            )
        return self


class AwaitEvent(_Strict):
    do: Literal["await"]
    event: ExpectedEvent = Field(
        description="Wait (up to 15 real seconds) until the sink has received an event like this, "
        "e.g. the fault a drifting scale raises, before the next step."
    )


Step = Annotated[
    Login
    | Logout
    | ScanOrder
    | ScanBox
    | Pack
    | AddUnit
    | RemoveUnit
    | LeaveBeside
    | PutBack
    | Scan
    | Wait
    | Close
    | Override
    | Ship
    | UnplugScale
    | PlugScale
    | ScaleDrift
    | ScaleNoise
    | RfidDown
    | UnplugCamera
    | PlugCamera
    | HandOver
    | AddStrayTags
    | AwaitEvent
    | ExpectState,
    Field(discriminator="do"),
]


class Expectations(_Strict):
    events: list[ExpectedEvent] | None = Field(
        default=None,
        max_length=MAX_EVENTS,
        description="Events the sink must receive, in this order (other events may come in "
        "between, except of the exhaustive types). Absent: events are not checked.",
    )
    exhaustive: list[EventName] = Field(
        default=sorted(CARTON_EVENTS),
        max_length=len(EventName),
        description="Every received event of these types must be expected (default: the "
        "verdict and missing-item events), so an unexpected BLOCK or detection fails.",
    )


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=120, description="Shown in reports and JUnit.")
    description: str = Field(default="", max_length=2000, description="What the case is about.")
    seed_case: str = Field(
        default="", max_length=200, description="The seed document's case this covers."
    )
    station: StationOptions = Field(default_factory=StationOptions)
    sensors: Sensors = Field(default_factory=Sensors)
    cartons: list[CartonSpec] = Field(
        min_length=1, max_length=MAX_CARTONS, description="Manifests the WMS holds."
    )
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS, description="The packer's day.")
    expect: Expectations = Field(default_factory=Expectations)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if not any(isinstance(step, Close) for step in self.steps):
            raise ValueError("steps: a scenario needs at least one close with its expected outcome")
        rfid_steps = [s.do for s in self.steps if isinstance(s, RfidDown | AddStrayTags)]
        tags = self.sensors.stray_tags or self.sensors.dead_tags
        if (rfid_steps or tags) and Channel.RFID not in self.station.channels:
            raise ValueError("RFID steps, stray and dead tags need rfid in station.channels")
        camera_steps = [
            s for s in self.steps if isinstance(s, UnplugCamera | PlugCamera | HandOver)
        ]
        if camera_steps and Channel.VISION not in self.station.channels:
            raise ValueError(f"{camera_steps[0].do} needs vision in station.channels")
        return self


class ScenarioFile(_Strict):
    scenario: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_SCENARIOS_PER_FILE, description="The scenarios."
    )


class ScenarioFileError(ValueError):
    """A scenario file that cannot be used; `str()` names file, scenario, key path and problem."""


class LoadedScenario(BaseModel):
    """A validated scenario with everything it refers to resolved and checked."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    source: Path
    catalog_path: Path
    manifests: tuple[Manifest, ...]

    @property
    def name(self) -> str:
        return self.scenario.name


def load_scenarios(path: Path) -> list[LoadedScenario]:
    """Parse, validate and resolve every scenario in `path`; raises ScenarioFileError."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ScenarioFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if len(raw_bytes) > MAX_FILE_BYTES:
        raise ScenarioFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes; split it")
    return parse_scenarios(raw_bytes, path)


def parse_scenarios(raw_bytes: bytes, path: Path) -> list[LoadedScenario]:
    """Like `load_scenarios` for a file's content; `path` names it and anchors relative paths."""
    try:
        document = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScenarioFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioFileError(f"{path}: not valid TOML: {exc}") from exc
    return scenarios_from_document(document, path)


def scenarios_from_document(document: Any, path: Path) -> list[LoadedScenario]:
    """Validate and resolve a parsed scenario file (`path` names it, anchors relative paths)."""
    try:
        tables = ScenarioFile.model_validate(document).scenario
    except ValidationError as exc:
        raise ScenarioFileError(f"{path}: {_first_problem(exc, document)}") from None
    loaded = []
    names: set[str] = set()
    for index, table in enumerate(tables):
        label = _label(table, index)
        try:
            scenario = Scenario.model_validate(table)
        except ValidationError as exc:
            raise ScenarioFileError(f"{path}: {label}: {_first_problem(exc, table)}") from None
        if scenario.name in names:
            raise ScenarioFileError(f"{path}: {label}: name used twice in this file")
        names.add(scenario.name)
        try:
            loaded.append(_resolve(scenario, path))
        except ValueError as exc:
            raise ScenarioFileError(f"{path}: {label}: {exc}") from None
    return loaded


def _resolve(scenario: Scenario, path: Path) -> LoadedScenario:
    # Imported here: the catalog loader is only needed once a file parsed.
    from station.catalog_file import CatalogFileError, load_catalog
    from station.domain import unknown_skus

    catalog_path = (
        (path.parent / scenario.station.catalog).resolve()
        if scenario.station.catalog
        else EXAMPLE_CATALOG
    )
    if not catalog_path.is_file() or catalog_path.stat().st_size > MAX_CATALOG_BYTES:
        raise ValueError(
            f"station.catalog: {catalog_path} is not a readable catalog file (a regular file of "
            f"at most {MAX_CATALOG_BYTES} bytes)"
        )
    try:
        catalog = load_catalog(catalog_path)
    except CatalogFileError as exc:
        raise ValueError(f"station.catalog: {exc}") from None
    manifests: list[Manifest] = []
    for index, spec in enumerate(scenario.cartons):
        manifest = _manifest(spec, index)
        unknown = unknown_skus(manifest, catalog)
        if unknown:
            raise ValueError(f"cartons[{index}]: SKUs not in the catalog: {', '.join(unknown)}")
        if any(m.key == manifest.key for m in manifests):
            raise ValueError(f"cartons[{index}]: {'/'.join(manifest.key)} is listed twice")
        manifests.append(manifest)
    for index, step in enumerate(scenario.steps):
        for sku in _skus_named(step):
            if sku not in catalog.items:
                raise ValueError(f"steps[{index}]: SKU {sku} is not in the catalog")
        if isinstance(step, ScanBox) and step.box not in catalog.boxes:
            raise ValueError(f"steps[{index}]: box {step.box} is not in the catalog")
        if isinstance(step, ScanOrder) and not any(
            "/".join(m.key) == step.carton for m in manifests
        ):
            raise ValueError(f"steps[{index}]: {step.carton} is not among the cartons")
    return LoadedScenario(
        scenario=scenario, source=path, catalog_path=catalog_path, manifests=tuple(manifests)
    )


def _manifest(spec: CartonFromLibrary | InlineCarton, index: int) -> Manifest:
    if isinstance(spec, InlineCarton):
        return Manifest.model_validate(spec.model_dump())
    order_id, carton_id = spec.ref.split("/")
    file = EXAMPLE_MANIFESTS / order_id / f"{carton_id}.json"
    if not file.is_file():
        known = sorted(f"{p.parent.name}/{p.stem}" for p in EXAMPLE_MANIFESTS.glob("*/*.json"))
        raise ValueError(f"cartons[{index}].ref: no manifest {spec.ref} (known: {known})")
    return Manifest.model_validate_json(file.read_bytes())


def _skus_named(step: BaseModel) -> list[str]:
    skus = [getattr(step, "sku", None), *getattr(step, "leave_out", ())]
    for counts in (getattr(step, "missing", None), getattr(step, "extra", None)):
        skus += list(counts or ())
    return [sku for sku in skus if sku is not None]


def _label(table: Mapping[str, Any], index: int) -> str:
    name = table.get("name")
    shown = json.dumps(name[:80]) if isinstance(name, str) and name else "(no name)"
    return f"scenario[{index}] {shown}"


def _first_problem(exc: ValidationError, raw: Any) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key_path(error['loc'], raw)}: {message}"


def key_path(loc: Sequence[str | int], raw: Any) -> str:
    """('steps', 3, 'add', 'sku') -> 'steps[3].sku': pydantic puts the union member's tag right
    after a list index (it is not a key of the document); walking the raw document alongside
    tells the tag from a key."""
    parts: list[str] = []
    node = raw
    just_indexed = False
    for part in loc:
        if just_indexed and isinstance(node, Mapping) and part in _union_tags(node):
            just_indexed = False
            continue
        just_indexed = isinstance(part, int)
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        if (isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node)) or (
            isinstance(part, str) and isinstance(node, Mapping) and part in node
        ):
            node = node[part]
        else:
            node = None
    return "".join(parts).lstrip(".") or "<top level>"


def _union_tags(node: Mapping[str, Any]) -> set[str]:
    return {str(node.get("do")), _carton_kind(node)}
