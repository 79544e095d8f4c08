"""Which channel must vouch for which SKU of one carton. Pure: no I/O.

The station's policy (config) says which channels it has and requires, and per-SKU rules add or
drop channels for some SKUs (a high-value SKU is scanned unit by unit; the camera is ignored for a
polybag it cannot count). When an order starts, the plan for its carton says, SKU by SKU, which
channels would notice one unit missing ("detectability"): the total weight only for units heavier
than its tolerance, RFID for tagged units, the camera for visible ones, a unit scan for units the
packer must scan. A SKU no independent channel covers gets the configured action: a unit scan, or
REVIEW at close. The plan is made again at close, so a degraded mode authorised meanwhile counts.

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
from station.verification import VerificationPolicy

UncoveredAction = Literal["scan", "review"]
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


@dataclass(frozen=True, slots=True)
class StationPolicy:
    """The station's decision policy, from config; `plan` makes one carton's."""

    channels: frozenset[str] = frozenset({"weight"})  # what this station has (scan: always)
    required_channels: frozenset[str] = frozenset({"weight"})
    min_confidence: float = 0.9
    corroborate: frozenset[str] = frozenset()  # channels that may not vouch alone
    advisory: frozenset[str] = frozenset()  # channels on trial: recorded, decide nothing
    rules: tuple[SkuRule, ...] = ()
    scan_serial_controlled: bool = False
    uncovered_action: UncoveredAction = "review"

    def plan(
        self,
        expected: Mapping[str, int],
        catalog: Catalog,
        weight_power: Mapping[str, float],
        degraded: DegradedMode | None = None,
    ) -> CartonPlan:
        """The plan for a carton expecting `expected` (verifiable SKUs -> units)."""
        replaced = degraded.fallback.replaces if degraded else None
        channels = self.channels - self.advisory - {replaced}
        required = self.required_channels - {replaced}
        sku_required: dict[str, frozenset[str]] = {}
        sku_ignored: dict[str, frozenset[str]] = {}
        coverage = []
        for sku in sorted(expected):
            require, ignore = self._rules_for(sku)
            power = weight_power.get(sku, 0.0)
            covering = self._covering(catalog, sku, power, channels - ignore)
            lost = replaced is not None and (
                replaced in self.required_channels
                or replaced in self._covering(catalog, sku, power, frozenset({replaced}))
            )
            alone = [c for c in covering if c not in self.corroborate and c not in _COUNTS_ONLY]
            must_scan = (
                SCAN in require
                or lost
                or (self.scan_serial_controlled and catalog.items[sku].serial_controlled)
                or (not alone and self.uncovered_action == "scan")
            )
            if must_scan:
                require |= {SCAN}
                covering.append(SCAN)
            if require:
                sku_required[sku] = frozenset(require)
            if ignore:
                sku_ignored[sku] = frozenset(ignore)
            coverage.append(Coverage(sku, power, tuple(covering), must_scan, not alone))
        policy = VerificationPolicy(
            required_channels=required,
            min_confidence=self.min_confidence,
            corroborate=self.corroborate,
            advisory=self.advisory,
            sku_required=sku_required,
            sku_ignored=sku_ignored,
        )
        return CartonPlan(policy, tuple(coverage), degraded)

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
