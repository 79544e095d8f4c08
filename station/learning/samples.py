"""Which verified cartons teach the station a unit weight, and what one of them says. Pure.

A carton is a sample for SKU X when (1) it holds units of X and nothing else except catalog
inserts, (2) the scale gave a settled weight for it, and (3) something other than the weight
itself confirms its count: a PASS, a reviewer's release naming nothing missing, another channel
(RFID) counting exactly the expected units, or the packer's item scans counting exactly them.
Without (3) a carton short of a unit would teach the station that the unit is lighter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from station.carton_policy import Coverage
from station.domain import BoxType, Catalog, ItemKind
from station.insertion_check import SCANNED_WEIGHT_MISMATCH
from station.learning.estimator import SampleSource, WeightSample
from station.verification import ChannelReport, ChannelState, FindingStatus, Verdict
from station.weight_check import CHANNEL as WEIGHT_CHANNEL
from station.weight_check import PackingMaterial


@dataclass(frozen=True, slots=True)
class CartonSample:
    sku: str
    sample: WeightSample
    confirmed_by: str


def single_sku(expected_units: Mapping[str, int], catalog: Catalog) -> tuple[str, int] | None:
    """The one product SKU (and its count) of a carton whose other units are all inserts."""
    products = [
        (sku, n)
        for sku, n in expected_units.items()
        if n > 0 and (sku not in catalog.items or catalog.items[sku].kind is ItemKind.PRODUCT)
    ]
    if len(products) != 1:
        return None
    sku, units = products[0]
    item = catalog.items.get(sku)
    if item is None or item.variable_weight:
        return None
    return sku, units


def count_confirmation(
    sku: str,
    units: int,
    verdict: Verdict,
    scanned_units: Mapping[str, int],
    learn_from_unit_scans: bool,
    coverage: Sequence[Coverage] = (),
) -> str | None:
    """Who vouches that the carton held exactly `units` of `sku` and nothing else, or None.

    A non-weight channel that saw something extra or missing rules the carton out: its weight
    holds whatever else was in it. Only a channel the carton's plan (`coverage`) counts on for
    `sku` vouches: one on trial (advisory) or ignored for that SKU decides nothing, so it
    teaches nothing either.
    """
    if verdict.passed:
        return "pass"
    others = [r for r in verdict.reports if r.channel != WEIGHT_CHANNEL]
    if verdict.extra or _any_doubt(others):
        return None
    planned = next((c for c in coverage if c.sku == sku), None)
    for report in others:
        if planned is not None and report.channel not in planned.channels:
            continue
        finding = report.finding_for(sku)
        if (
            report.state is ChannelState.OK
            and finding is not None
            and finding.status is FindingStatus.CONFIRMED
            and finding.observed == units
        ):
            return report.channel
    if learn_from_unit_scans and dict(scanned_units) == {sku: units}:
        return "unit_scan"
    return None


def _any_doubt(reports: Iterable[ChannelReport]) -> bool:
    """Whether a channel saw something extra or missing, or holds something for a person. A
    scanned unit whose step weighed other than its catalog weight is no doubt about the count:
    it is what a wrong catalog weight looks like, which is what learning is for."""
    return any(
        any(reason.code != SCANNED_WEIGHT_MISMATCH for reason in r.review)
        or any(f.status in (FindingStatus.MISSING, FindingStatus.EXTRA) for f in r.findings)
        for r in reports
    )


def settled_gross_g(verdict: Verdict) -> tuple[float, float] | None:
    """(gross grams, scale error) from the weight channel's report, when it measured the carton
    with its box on the scale (a box tared away leaves nothing to subtract it from)."""
    report = next((r for r in verdict.reports if r.channel == WEIGHT_CHANNEL), None)
    if report is None or report.state is not ChannelState.OK:
        return None
    if report.measurements.get("box_on_scale", 1.0) < 0.5:
        return None
    measured = report.measurements.get("measured_g")
    if measured is None or not math.isfinite(measured):
        return None
    return measured, report.measurements.get("scale_error_g", 0.0)


def carton_unit_sample(
    sku: str,
    units: int,
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType,
    gross_g: float,
    scale_error_g: float,
    materials: Iterable[PackingMaterial],
) -> WeightSample | None:
    """One unit's weight as this carton tells it: (gross - box - inserts - materials) / units.

    Everything subtracted keeps its spread, divided by the units, in `noise_g`; a carton whose
    inserts have no catalog weight cannot be reduced and gives no sample.
    """
    rest_mean = box.tare_g
    rest_var = box.tare_spread_g**2 + (scale_error_g / math.sqrt(3)) ** 2
    for other, n in expected_units.items():
        if other == sku or n <= 0:
            continue
        item = catalog.items.get(other)
        if item is None or item.unit_weight_g is None:
            return None
        rest_mean += n * item.unit_weight_g
        rest_var += n * item.weight_spread_g**2
    for material in materials:
        rest_mean += material.mean_g
        rest_var += material.spread_g**2
    per_unit = (gross_g - rest_mean) / units
    if per_unit <= 0:
        return None
    return WeightSample(
        per_unit,
        units,
        math.sqrt(rest_var) / units,
        SampleSource.SINGLE_SKU_CARTON,
        box=box.code,
        tare_g=box.tare_g,
    )
