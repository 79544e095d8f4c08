"""The station's configuration: one TOML file per station, validated at start.

Every section is a pydantic model with `extra="forbid"` owned by the module that uses it; this file
only assembles them. `packstation config-schema` prints the JSON Schema of `StationConfig`, and
`packstation check-config FILE` validates a file (see `station.config_loader` for env overrides).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scale.config import ScaleConfig
from station.actuators.config import ActuatorConfig, check_roles, default_actuators
from station.api.config import ApiSection, ReviewerEntry, ReviewSection
from station.carton_policy import NEVER_ALONE, SkuRule, StationPolicy
from station.clock_offset import ClockCheckConfig
from station.evidence_retention import EvidenceRetentionConfig
from station.learning.estimator import LearningConfig
from station.manifests import ManifestSourceConfig
from station.mqtt import MqttConfig
from station.rfid_check import RfidCheckConfig
from station.scanner import ScannerConfig
from station.session import WorkflowConfig
from station.weight_check import WeightCheckConfig
from vision.config import VisionConfig

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationSection(Strict):
    id: Identifier = Field(description="Station id, unique in the site; part of MQTT topics.")
    site: Identifier = Field(description="Site (warehouse) id; part of MQTT topics.")
    data_dir: Path = Field(
        default=Path("/var/lib/packstation"),
        description="Where the outbox, manifest cache and evidence live. Relative to the config.",
    )
    locale: Literal["en", "zh-CN"] = Field(default="en", description="Packer screen language.")


class CatalogSection(Strict):
    path: Path = Field(description="Catalog JSON file (items and box types). Relative to config.")
    pictures_dir: Path | None = Field(
        default=None,
        description="Folder of product pictures the daemon serves to the packer's screen (no "
        "network needed): <SKU>.jpg/.png/.webp/.gif, or the file an item's image_url names. "
        "Relative to the config; read at start.",
    )


class ManifestsSection(Strict):
    source: ManifestSourceConfig = Field(description="Where manifests come from.")
    max_bytes: int = Field(
        default=1_000_000, ge=1_000, le=50_000_000, description="Larger manifests are refused."
    )


SensorChannel = Literal["weight", "rfid", "vision"]
AnyChannel = Literal["weight", "rfid", "vision", "scan"]


class SkuRuleSection(Strict):
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1,
        description="SKUs this rule applies to; shell-style patterns allowed (HEADPHONES-*).",
    )
    require: list[AnyChannel] = Field(
        default=[],
        description="Channels that must each confirm these SKUs (scan: the packer scans every "
        "unit, e.g. for high-value items).",
    )
    ignore: list[SensorChannel] = Field(
        default=[], description="Channels whose findings on these SKUs are disregarded."
    )


class PolicySection(Strict):
    required_channels: list[SensorChannel] = Field(
        default=["weight"],
        description="Channels that must vouch for every carton; a required channel that is down, "
        "stale or unsure sends the carton to REVIEW.",
    )
    advisory_channels: list[Literal["rfid", "vision"]] = Field(
        default=[],
        description="Channels on trial: their reports and evidence are recorded with every "
        "verdict but decide nothing (neither block nor confirm). Never also required.",
    )
    backup_channels: list[Literal["vision"]] = Field(
        default=[],
        description="The camera required only where the scale cannot vouch for a carton on its "
        "own: in a carton whose every unit the total weight would notice missing 99.9% surely, "
        "a camera that is down, stale or unsure does not hold the carton if the weight at close "
        "confirms every SKU 99.9% surely (a unit of a SKU not ordered that its codes read still "
        "counts). Elsewhere "
        "it is required: down, stale or unsure it holds the carton for REVIEW, unless the other "
        "channels name lines surely missing or extra (BLOCK for those, as with the camera up). "
        "Needs weight in required_channels; never also required or advisory. "
        "What it gives up: a unit swapped for another of the same weight that only the camera "
        "would have read (docs/decision-policy.md).",
    )
    min_confidence: float = Field(
        default=0.9, gt=0.5, le=1.0, description="Findings less sure than this are not acted on."
    )
    uncovered_action: Literal["scan", "review"] = Field(
        default="review",
        description="For a SKU whose absence no sensor would notice (lighter than the weight "
        "tolerance, untagged, unseen): scan = the packer must scan each unit; review = the "
        "carton goes to REVIEW at close. The packer is told when the order starts.",
    )
    lookalike_action: Literal["warn", "scan"] = Field(
        default="warn",
        description="For a SKU with catalog look-alikes (`lookalike_group`) that no channel "
        "tells apart (weight difference within tolerance, untagged, not scanned): warn = the "
        "packer is told to check size and colour; scan = the packer must scan each unit.",
    )
    scan_mismatch_action: Literal["recount", "block"] = Field(
        default="recount",
        description="A must-scan SKU scanned more or fewer times than ordered while no other "
        "channel sees anything wrong (a shortfall only where a sensor vouches the units are "
        "there): recount = the carton is held and the packer scans every unit of it again "
        "(counted afresh; a second mismatch BLOCKs); block = BLOCK at once.",
    )
    scan_serial_controlled: bool = Field(
        default=False,
        description="Serial-controlled SKUs must be scanned unit by unit (each serial once).",
    )
    sku_rules: list[SkuRuleSection] = Field(
        default=[], description="Per-SKU channel requirements, applied in order (all that match)."
    )
    degraded_max_minutes: float = Field(
        default=60.0,
        gt=0,
        le=24 * 60,
        description="Longest a reviewer may authorise a degraded mode (unit scans in place of a "
        "channel whose device is down) in one go.",
    )


class VerdictSection(Strict):
    settle_timeout_s: float = Field(
        default=8.0,
        gt=0,
        le=120,
        description="How long a close waits for the scale to settle before the weight counts as "
        "unsure (the carton then goes to REVIEW).",
    )
    manifest_check_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="At close the manifest is fetched again to catch a cancelled or changed "
        "order; a WMS slower than this does not hold the verdict (the loaded version counts).",
    )


class LoggingSection(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    json_lines: bool = Field(
        default=True, description="One JSON object per line (for journald/Loki)."
    )


class StationConfig(Strict):
    station: StationSection = Field(description="Who this station is and how it acts.")
    catalog: CatalogSection = Field(description="Master data.")
    manifests: ManifestsSection = Field(description="Order manifests.")
    scale: ScaleConfig = Field(description="The platter scale.")
    scanners: list[ScannerConfig] = Field(
        min_length=1, description="Barcode scanners (badge, order, box, close, items)."
    )
    mqtt: MqttConfig = Field(description="The broker events are published to.")
    workflow: WorkflowConfig = Field(
        default_factory=WorkflowConfig, description="The packer's workflow."
    )
    weight: WeightCheckConfig = Field(
        default_factory=WeightCheckConfig, description="Weight verification tolerances."
    )
    policy: PolicySection = Field(default_factory=PolicySection, description="Decision policy.")
    learning: LearningConfig = Field(
        default_factory=LearningConfig,
        description="Learned unit and box weights: from confirmed cartons and the "
        "weigh-one-unit flow, reported, and used by the weight check when confident.",
    )
    verdict: VerdictSection = Field(default_factory=VerdictSection, description="Verdict timing.")
    logging: LoggingSection = Field(default_factory=LoggingSection, description="Logging.")
    api: ApiSection = Field(
        default_factory=ApiSection, description="The packer's screen and the local Station API."
    )
    review: ReviewSection = Field(
        default_factory=ReviewSection, description="How held cartons are released by a reviewer."
    )
    reviewers: list[ReviewerEntry] = Field(
        default_factory=list,
        description="Who may release a held carton at this station (badge and PIN hash).",
    )
    rfid: RfidCheckConfig | None = Field(
        default=None,
        description="RFID readers and the decisive read window; absent: no RFID channel.",
    )
    vision: VisionConfig | None = Field(
        default=None,
        description="The overhead camera: item count and codes per insertion; absent: no vision "
        "channel (and no camera or inference stack is loaded).",
    )
    evidence: EvidenceRetentionConfig = Field(
        default_factory=EvidenceRetentionConfig,
        description="How long evidence records and images are kept (docs/evidence.md).",
    )
    clock: ClockCheckConfig = Field(
        default_factory=ClockCheckConfig,
        description="Wall-clock offset monitoring, so evidence lines up with CCTV.",
    )
    actuators: list[ActuatorConfig] = Field(
        default_factory=default_actuators,
        description="Output devices: stack light (green, amber, red, buzzer) and the diverter to "
        "the exception lane; absent: one simulated device drives them all "
        "(docs/hardware/actuators.md).",
    )

    @model_validator(mode="after")
    def _actuator_roles(self) -> StationConfig:
        check_roles(self.actuators)
        return self

    @model_validator(mode="after")
    def _unique_reviewers(self) -> StationConfig:
        badges = [r.badge for r in self.reviewers]
        dupes = {b for b in badges if badges.count(b) > 1}
        if dupes:
            raise ValueError(f"reviewer badge listed twice: {', '.join(sorted(dupes))}")
        return self

    @model_validator(mode="after")
    def _distinct_devices(self) -> StationConfig:
        """Scanners are told apart by name (their health, their scans in the logs), and one
        port serves one device: two drivers on it would read each other's bytes."""
        names = [s.name for s in self.scanners]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"scanner name used twice: {', '.join(dupes)}; give each [[scanners]] entry "
                "its own name (faults and scans are told apart by it)"
            )
        users: dict[str, list[str]] = {}
        for key, port in self._ports():
            users.setdefault(port, []).append(key)
        shared = [f"{port} ({' and '.join(keys)})" for port, keys in users.items() if len(keys) > 1]
        if shared:
            raise ValueError(f"one port, two devices: {'; '.join(shared)}")
        return self

    def _ports(self) -> list[tuple[str, str]]:
        """(config key, port or URL) of every device on a serial port or socket."""
        ports = [("scale.port", self.scale.port)]
        for n, scanner in enumerate(self.scanners):
            port = getattr(scanner, "port", None) or getattr(scanner, "device", None)
            ports += [(f"scanners.{n}", str(port))] if port else []
        for n, reader in enumerate(self.rfid.readers if self.rfid else ()):
            ports.append((f"rfid.readers.{n}", reader.url))
        # Modbus RTU units share their RS-485 bus by design; a relay board's port is its own.
        for n, actuator in enumerate(self.actuators):
            port = getattr(actuator, "url", None) if actuator.type == "serial_relay" else None
            ports += [(f"actuators.{n}", str(port))] if port else []
        return ports

    @model_validator(mode="after")
    def _policy_channels_configured(self) -> StationConfig:
        policy = self.policy
        configured = {"rfid": self.rfid is not None, "vision": self.vision is not None}
        for key, channels in (
            ("required_channels", policy.required_channels),
            ("advisory_channels", policy.advisory_channels),
            ("backup_channels", policy.backup_channels),
        ):
            for channel in channels:
                if not configured.get(channel, True):
                    raise ValueError(
                        f"policy.{key} names {channel} but there is no [{channel}] section"
                    )
        for (name, one), (other, two) in itertools.combinations(
            (
                ("required", policy.required_channels),
                ("advisory", policy.advisory_channels),
                ("backup", policy.backup_channels),
            ),
            2,
        ):
            both = set(one) & set(two)
            if both:
                raise ValueError(f"policy: {', '.join(sorted(both))} both {name} and {other}")
        if policy.backup_channels and "weight" not in policy.required_channels:
            raise ValueError(
                "policy.backup_channels needs weight in required_channels: the scale is what "
                "stands in for a backup"
            )
        return self

    @model_validator(mode="after")
    def _rule_channels_configured(self) -> StationConfig:
        present = {"weight", "scan"} | set(_configured_sensors(self))
        for n, rule in enumerate(self.policy.sku_rules):
            missing = set(rule.require) - present
            if missing:
                raise ValueError(
                    f"policy.sku_rules[{n}] requires {', '.join(sorted(missing))}, "
                    "which this station does not have"
                )
        return self

    def resolve_paths(self, base: Path) -> StationConfig:
        """Make relative paths relative to the config file's folder."""
        station = self.station.model_copy(update={"data_dir": base / self.station.data_dir})
        pictures = self.catalog.pictures_dir
        catalog = self.catalog.model_copy(
            update={
                "path": base / self.catalog.path,
                "pictures_dir": None if pictures is None else base / pictures,
            }
        )
        source = self.manifests.source
        for field in ("path", "token_file"):
            value = getattr(source, field, None)
            if value is not None:
                source = source.model_copy(update={field: base / value})
        manifests = self.manifests.model_copy(update={"source": source})
        api = self.api
        if api.token_file is not None:
            api = api.model_copy(update={"token_file": base / api.token_file})
        update = {
            "station": station,
            "catalog": catalog,
            "manifests": manifests,
            "api": api,
            "mqtt": _resolved_mqtt(self.mqtt, base),
        }
        if self.rfid is not None:
            update["rfid"] = self.rfid.resolve_paths(base)
        if self.vision is not None:
            update["vision"] = self.vision.resolve_paths(base)
        return self.model_copy(update=update)


def station_policy(config: StationConfig) -> StationPolicy:
    """The decision policy this config describes (see station.carton_policy)."""
    section = config.policy
    second = config.rfid is not None and config.rfid.require_second_channel
    return StationPolicy(
        channels=frozenset({"weight", *_configured_sensors(config)}),
        required_channels=frozenset(section.required_channels),
        advisory=frozenset(section.advisory_channels),
        backup=frozenset(section.backup_channels),
        min_confidence=section.min_confidence,
        corroborate=NEVER_ALONE | frozenset({"rfid"} if second else ()),
        rules=tuple(
            SkuRule(tuple(r.skus), frozenset(r.require), frozenset(r.ignore))
            for r in section.sku_rules
        ),
        scan_serial_controlled=section.scan_serial_controlled,
        uncovered_action=section.uncovered_action,
        lookalike_action=section.lookalike_action,
        recount_scan_slips=section.scan_mismatch_action == "recount",
    )


def _configured_sensors(config: StationConfig) -> list[str]:
    return [name for name in ("rfid", "vision") if getattr(config, name) is not None]


def _resolved_mqtt(mqtt: MqttConfig, base: Path) -> MqttConfig:
    """The broker password file and TLS files relative to the config file's folder (a service
    runs from /, where a relative path would find nothing)."""
    update: dict[str, object] = {}
    if mqtt.password_file is not None:
        update["password_file"] = base / mqtt.password_file
    if mqtt.tls is not None:
        files = {
            name: base / value
            for name in ("ca_file", "cert_file", "key_file")
            if (value := getattr(mqtt.tls, name)) is not None
        }
        update["tls"] = mqtt.tls.model_copy(update=files)
    return mqtt.model_copy(update=update)
