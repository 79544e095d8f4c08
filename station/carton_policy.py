"""Which channel must vouch for which SKU of one carton. Pure: no I/O.

The station's policy (config) says which channels it has and requires, and per-SKU rules add or
drop channels for some SKUs (a high-value SKU is scanned unit by unit; the camera is ignored for a
polybag it cannot count). When an order starts, the plan for its carton says, SKU by SKU, which
channels would notice one unit missing ("detectability"): the total weight only for units heavier
than its tolerance, RFID for tagged units, the camera for visible ones, a unit scan for units the
packer must scan. A SKU no independent channel covers gets the configured action: a unit scan, or
REVIEW at close. The plan is made again at close, so a degraded mode authorised meanwhile counts.

Look-alikes: a SKU whose catalog look-alike group has other members (sizes, colours) may be
swapped for one of them, which leaves the count unchanged. The plan says which channels would
notice (the weight when the difference is beyond its tolerance, RFID, a unit scan); where none
would, the packer is warned, or must scan each unit (`lookalike_action`).

Degraded mode: a reviewer may authorise, for a limited time, per-unit scanning in place of a
channel whose device is down (`scan_for_weight` while the scale is down). The replaced channel is
no longer required, every SKU it covered must be scanned instead, and every event in that time
carries the authorisation.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from station.domain import Catalog
from station.scan_check import CHANNEL as SCAN
from station.verification import OVERRULE_CONFIDENCE, VerificationPolicy

UncoveredAction = Literal["scan", "review"]
LookalikeAction = Literal["warn", "scan"]
# Channels that notice a unit missing but confirm no SKU by themselves (a class-agnostic count
# proves no identity): they cover a SKU's absence, yet a SKU only they cover is still unproven
# for PASS and gets the uncovered action.
_COUNTS_ONLY = frozenset({"vision"})
# Channels that may name a unit missing but never vouch alone, at every station: the insertion
# channel's steps can explain a light unit that is not there (it went in "together with" a
# heavier one; measured by the accuracy benchmark, docs/accuracy.md).
NEVER_ALONE = frozenset({"insertion"})


class Fallback(StrEnum):
    """Per-unit scanning in place of one channel."""

    SCAN_FOR_WEIGHT = "scan_for_weight"
    SCAN_FOR_RFID = "scan_for_rfid"
    SCAN_FOR_VISION = "scan_for_vision"

    @property
    def replaces(self) -> str:
        return self.value.removeprefix("scan_for_")


@dataclass(frozen=True, slots=True)
class DegradedMode:
    fallback: Fallback
    authorised_by: str  # reviewer badge
    reason_code: str
    started_at: datetime  # UTC, for events
    ends_at: datetime  # UTC, for events
    ends_monotonic: float  # when it lapses, on the station's monotonic clock

    def flag(self) -> dict[str, str]:
        """What every event published under this mode carries."""
        return {
            "fallback": self.fallback.value,
            "authorised_by": self.authorised_by,
            "reason_code": self.reason_code,
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SkuRule:
    """Channels required or ignored for the SKUs matching any of `patterns` (shell-style)."""

    patterns: tuple[str, ...]
    require: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()

    def matches(self, sku: str) -> bool:
        return any(fnmatch.fnmatchcase(sku, pattern) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class Coverage:
    """How one SKU's absence would be noticed in this carton."""

    sku: str
    weight_power: float  # chance the total weight reveals one missing unit
    channels: tuple[str, ...]  # channels that would notice one unit missing, scan included
    must_scan: bool
    # True when no channel that may vouch alone covers the SKU (RFID that needs a second channel
    # and vision's counts do not count): without a unit scan such a carton cannot PASS.
    uncovered: bool
    # Channels that would notice a unit replaced by one of its catalog look-alikes (a size or
    # colour packed instead): the weight when the difference is beyond its tolerance, RFID when
    # the SKU and all its look-alikes are tagged (the EPC names the SKU), a unit scan. Empty for
    # a SKU without look-alikes.
    lookalikes_told_by: tuple[str, ...] = ()
    # True when the SKU has look-alikes and no channel tells them apart: a variant packed in its
    # place would PASS. The station warns the packer, or makes them scan it (`lookalike_action`).
    lookalikes_unproven: bool = False

    @property
    def detectability(self) -> str:
        """The class the accuracy report groups by: the strongest channel that covers it."""
        for channel in ("weight", "rfid", "vision", SCAN):
            if channel in self.channels:
                return channel
        return "none"


@dataclass(frozen=True, slots=True)
class CartonPlan:
    policy: VerificationPolicy
    coverage: tuple[Coverage, ...]
    degraded: DegradedMode | None = None

    @property
    def must_scan(self) -> frozenset[str]:
        return frozenset(c.sku for c in self.coverage if c.must_scan)

    @property
    def uncovered(self) -> tuple[str, ...]:
        return tuple(c.sku for c in self.coverage if c.uncovered)

    @property
    def lookalikes_unproven(self) -> tuple[str, ...]:
        return tuple(c.sku for c in self.coverage if c.lookalikes_unproven)


@dataclass(frozen=True, slots=True)
class StationPolicy:
    """The station's decision policy, from config; `plan` makes one carton's."""

    channels: frozenset[str] = frozenset({"weight"})  # what this station has (scan: always)
    required_channels: frozenset[str] = frozenset({"weight"})
    min_confidence: float = 0.9
    corroborate: frozenset[str] = frozenset()  # channels that may not vouch alone
    advisory: frozenset[str] = frozenset()  # channels on trial: recorded, decide nothing
    # Count channels required only where the scale cannot vouch for the carton on its own: see
    # `VerificationPolicy.backup` for the close, `_weighed` for the plan.
    backup: frozenset[str] = frozenset()
    rules: tuple[SkuRule, ...] = ()
    scan_serial_controlled: bool = False
    uncovered_action: UncoveredAction = "review"
    lookalike_action: LookalikeAction = "warn"
    recount_scan_slips: bool = False  # VerificationPolicy.recount_scan_slips

    def __post_init__(self) -> None:
        if not self.backup <= _COUNTS_ONLY:
            raise ValueError(f"only {', '.join(sorted(_COUNTS_ONLY))} can be a backup channel")
        both = self.backup & (self.required_channels | self.advisory)
        if both:
            raise ValueError(
                f"a backup channel cannot also be required or advisory: {sorted(both)}"
            )

    def plan(
        self,
        expected: Mapping[str, int],
        catalog: Catalog,
        weight_power: Mapping[str, float],
        degraded: DegradedMode | None = None,
        lookalike_power: Mapping[str, float] | None = None,
    ) -> CartonPlan:
        """The plan for a carton expecting `expected` (verifiable SKUs -> units).

        `weight_power`: per SKU, how surely the total reveals one unit missing;
        `lookalike_power`: how surely it reveals one unit replaced by its nearest look-alike
        (`weight_check.lookalike_detection`; absent: the weight tells no look-alike apart)."""
        replaced = degraded.fallback.replaces if degraded else None
        channels = self.channels - self.advisory - {replaced}
        required = self.required_channels - {replaced}
        sku_required: dict[str, frozenset[str]] = {}
        sku_ignored: dict[str, frozenset[str]] = {}
        weighed = self._weighed(expected, required, weight_power)
        spared = weighed and replaced in self.backup  # a backup this carton does not need
        coverage = []
        for sku in sorted(expected):
            require, ignore = self._rules_for(sku)
            covered = self._cover(
                catalog,
                sku,
                weight_power.get(sku, 0.0),
                (lookalike_power or {}).get(sku, 0.0),
                channels - ignore,
                None if spared else replaced,
                scan_required=SCAN in require,
            )
            if covered.must_scan:
                require |= {SCAN}
            if require:
                sku_required[sku] = frozenset(require)
            if ignore:
                sku_ignored[sku] = frozenset(ignore)
            coverage.append(covered)
        # A camera spared by a degraded mode stays a backup: the close still asks the weight to
        # vouch for every SKU 0.999 surely, as it would with the camera down and no mode.
        backup = ((self.backup & channels) | ({replaced} if spared else set())) - required
        needed = frozenset() if weighed else backup
        policy = VerificationPolicy(
            required_channels=required | needed,
            min_confidence=self.min_confidence,
            corroborate=self.corroborate,
            advisory=self.advisory,
            backup=backup - needed,
            sku_required=sku_required,
            sku_ignored=sku_ignored,
            recount_scan_slips=self.recount_scan_slips,
        )
        return CartonPlan(policy, tuple(coverage), degraded)

    def _weighed(
        self,
        expected: Mapping[str, int],
        required: frozenset[str],
        weight_power: Mapping[str, float],
    ) -> bool:
        """The scale is required and would notice any one unit missing `OVERRULE_CONFIDENCE`
        surely, no rule ignoring it for a SKU: the carton needs none of its backup channels as
        required ones (the close still asks the weight to vouch, `VerificationPolicy.backup`)."""
        return "weight" in required and all(
            weight_power.get(sku, 0.0) >= OVERRULE_CONFIDENCE
            and "weight" not in self._rules_for(sku)[1]
            for sku in expected
        )

    def _cover(
        self,
        catalog: Catalog,
        sku: str,
        power: float,
        lookalike_power: float,
        channels: frozenset[str],
        replaced: str | None,
        scan_required: bool,
    ) -> Coverage:
        """How one SKU's absence, and a look-alike in its place, would be noticed."""
        covering = self._covering(catalog, sku, power, channels)
        lost = replaced is not None and (
            replaced in self.required_channels
            or replaced in self._covering(catalog, sku, power, frozenset({replaced}))
        )
        alone = [c for c in covering if c not in self.corroborate and c not in _COUNTS_ONLY]
        must_scan = (
            scan_required
            or lost
            or (self.scan_serial_controlled and catalog.items[sku].serial_controlled)
            or (not alone and self.uncovered_action == "scan")
        )
        told_by = self._telling_lookalikes(catalog, sku, lookalike_power, channels, must_scan)
        unproven = bool(catalog.lookalikes(sku)) and not told_by
        if unproven and self.lookalike_action == "scan":
            must_scan, told_by = True, [SCAN]
        if must_scan:
            covering.append(SCAN)
        return Coverage(
            sku,
            power,
            tuple(covering),
            must_scan,
            uncovered=not alone,
            lookalikes_told_by=tuple(told_by),
            lookalikes_unproven=unproven and not must_scan,
        )

    def _telling_lookalikes(
        self,
        catalog: Catalog,
        sku: str,
        lookalike_power: float,
        channels: frozenset[str],
        scanned: bool,
    ) -> list[str]:
        """Channels that would notice a look-alike packed in the SKU's place (none without
        look-alikes). The camera's counts cannot: a look-alike is one item as well."""
        lookalikes = catalog.lookalikes(sku)
        if not lookalikes:
            return []
        told_by = []
        if "weight" in channels and lookalike_power >= self.min_confidence:
            told_by.append("weight")
        # Only when every look-alike is tagged too: an untagged one in the SKU's place reads as
        # the SKU's tag not answering, which the scale (same weight) and a scan settle.
        tagged = [catalog.items[s].rfid_tagged for s in (sku, *lookalikes)]
        if "rfid" in channels and all(tagged):
            told_by.append("rfid")
        if scanned:
            told_by.append(SCAN)
        return told_by

    def _rules_for(self, sku: str) -> tuple[set[str], frozenset[str]]:
        require: set[str] = set()
        ignore: set[str] = set()
        for rule in self.rules:
            if rule.matches(sku):
                require |= rule.require
                ignore |= rule.ignore
        return require, frozenset(ignore - require)

    def _covering(
        self, catalog: Catalog, sku: str, weight_power: float, channels: frozenset[str]
    ) -> list[str]:
        item = catalog.items[sku]
        covering = []
        if "weight" in channels and weight_power >= self.min_confidence:
            covering.append("weight")
        if "rfid" in channels and item.rfid_tagged:
            covering.append("rfid")
        if "vision" in channels and item.vision_visible:
            covering.append("vision")
        return covering
