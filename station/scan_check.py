"""The per-unit scan channel: what the packer scanned into the carton, as a channel report. Pure.

A unit scan proves the unit was in the packer's hand at this station, which is why stations demand
it for the SKUs no sensor can prove (light, untagged, invisible) and for high-value or
serial-controlled ones. For those SKUs ("must scan") a count short of the manifest is a missing
unit and a count over it an extra one. For the others a scan is a welcome extra confirmation, but
no scan is no evidence of absence, and a scan of a SKU that is on no line of this carton (a wrong
variant, a unit of another order) is an extra unit whatever the SKU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from station.verification import ChannelReport, ChannelState, FindingStatus, SkuFinding

CHANNEL = "scan"


@dataclass(frozen=True, slots=True)
class UnitScan:
    """One accepted item scan while packing: which SKU, how many units the code stands for, and
    when (the station's monotonic clock, as the weight steps are), so the per-insertion channel
    can pair it with the step that followed."""

    sku: str
    units: int
    at: float


def units_scanned(scans: Iterable[UnitScan]) -> dict[str, int]:
    """Units scanned per SKU, as the scan channel counts them."""
    counted: dict[str, int] = {}
    for scan in scans:
        counted[scan.sku] = counted.get(scan.sku, 0) + scan.units
    return counted


def evaluate_scans(
    expected: Mapping[str, int], scanned: Mapping[str, int], must_scan: frozenset[str]
) -> ChannelReport | None:
    """The scan channel's report, or None when this carton neither needs nor has unit scans."""
    counted = {sku: n for sku, n in scanned.items() if n > 0}
    if not counted and not (must_scan & expected.keys()):
        return None
    findings = [_expected_sku(sku, n, counted.get(sku, 0), sku in must_scan)
                for sku, n in sorted(expected.items())]  # fmt: skip
    findings += [
        SkuFinding(sku, FindingStatus.EXTRA, 0, n, 1.0, f"{n} scanned, none on this carton")
        for sku, n in sorted(counted.items())
        if sku not in expected
    ]
    return ChannelReport(
        CHANNEL,
        ChannelState.OK,
        tuple(findings),
        measurements={"units_scanned": float(sum(counted.values()))},
    )


def _expected_sku(sku: str, expected: int, scanned: int, must_scan: bool) -> SkuFinding:
    detail = f"{scanned} of {expected} scanned"
    if scanned == expected:
        return SkuFinding(sku, FindingStatus.CONFIRMED, expected, scanned, 1.0, detail)
    if scanned > expected:
        # More scans than units ordered: an extra unit went in, or one unit was scanned twice
        # (serial-controlled units are counted once per serial before they get here). Only a
        # must-scan SKU's count is trusted enough to act on.
        confidence = 1.0 if must_scan else 0.5
        return SkuFinding(sku, FindingStatus.EXTRA, expected, scanned, confidence, detail)
    if must_scan:
        return SkuFinding(sku, FindingStatus.MISSING, expected, scanned, 1.0, detail)
    if scanned == 0:
        return SkuFinding(sku, FindingStatus.NOT_APPLICABLE, expected, None, 1.0, "not scanned")
    return SkuFinding(sku, FindingStatus.UNCERTAIN, expected, scanned, 0.0, detail)
