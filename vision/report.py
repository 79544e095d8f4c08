"""Accumulated insertions + expected units + catalog -> the vision ChannelReport. Pure: no I/O.

What vision can say about a carton:
- a class-agnostic item count, accumulated over insertions: fewer items than the visible expected
  units is a carton-level deficit (BLOCK), more is a surplus;
- which SKU a unit is, where the image proves it: a GTIN (and serial) read in the frame, or a
  site model's class that names a SKU. A class naming a look-alike group (or a SKU inside one)
  proves the group, never one member.
- SKUs the camera cannot see (catalog `vision_visible=False`, inserts) are NOT_APPLICABLE.
- An insertion it could not read confidently is counted by the next readable frame (the
  accumulator compares each readable frame with the last readable one; the close frame is the
  last). An insertion no readable frame counted (an item taken out and not put back, or
  unreadable frames up to the close) makes the whole count NOT_APPLICABLE and the channel UNSURE:
  it reports no count rather than a guess, and a required vision channel that could not count
  fails closed. Unreadable last frames only hide items, so a count that already reaches the
  expected units without them stands. A count that
  agrees but proves no identity is UNCERTAIN, not CONFIRMED: the count alone cannot tell a
  swapped item.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from station.domain import Catalog, CatalogItem, ItemKind
from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    Explanation,
    FindingStatus,
    Reason,
    SkuFinding,
)
from station.weight_check import PackingMaterial
from vision.barcodes import code_index, sku_for
from vision.observe import InsertionObservation, PutBackGuard, uncounted, vetted

CHANNEL = "vision"
# A unit's weight lies within this many standard deviations of its catalog mean.
_WEIGHT_SIGMAS = 4.0


def counted_by_camera(item: CatalogItem | None) -> bool:
    """Whether the item count includes this catalog item (a product the camera can see)."""
    return item is not None and item.vision_visible and item.kind is ItemKind.PRODUCT


def put_back_guard(
    expected: Mapping[str, int],
    catalog: Catalog,
    scale_error_g: Callable[[float], float],
    materials: Iterable[PackingMaterial] = (),
) -> PutBackGuard:
    """The guard for one carton's put-back frames: its lightest counted unit at its lightest
    (None for one of unknown weight, or of variable weight without a stated minimum, which rules
    put-backs out), every counted unit at its lightest (to bound the units a step brought), and
    the most the camera does not count that could go back in with an item together
    (`materials`: the site's paperwork and fill; the order's inserts and units the camera does
    not count, every unit; each at mean plus four spreads, one of unknown weight: any)."""
    lows: list[tuple[float, str]] = []
    uncounted = [m.mean_g + _WEIGHT_SIGMAS * m.spread_g for m in materials]
    for sku, units in sorted(expected.items()):
        item = catalog.items.get(sku)
        if units <= 0:
            continue
        if item is None:  # not in the catalog: a unit of unknown weight, counted or not
            return PutBackGuard(None, scale_error_g, sku)
        if not counted_by_camera(item):
            uncounted.append(units * _heaviest_g(item))
            continue
        low = _lightest_g(item)
        if low is None:
            return PutBackGuard(None, scale_error_g, sku)
        lows += [(low, sku)] * units
    low, sku = min(lows, default=(math.inf, ""))
    every_low = tuple(sorted(grams for grams, _ in lows))
    return PutBackGuard(low, scale_error_g, sku, sum(uncounted), every_low)


def _heaviest_g(item: CatalogItem) -> float:
    """One unit's weight at its heaviest (mean plus four spreads); unknown: any."""
    if item.unit_weight_g is None or item.variable_weight:
        return math.inf
    return item.unit_weight_g + _WEIGHT_SIGMAS * item.weight_spread_g


def _lightest_g(item: CatalogItem) -> float | None:
    """One unit's weight at its lightest (mean minus four spreads; a variable-weight unit's
    stated minimum, the nominal weight says nothing about it); None when unknown."""
    if item.variable_weight:
        return item.min_unit_weight_g
    if item.unit_weight_g is None:
        return None
    low = item.unit_weight_g - _WEIGHT_SIGMAS * item.weight_spread_g
    return low if math.isfinite(low) else None


def _group_of(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {sku: name for name, members in groups.items() for sku in members}


def barcode_units(
    observations: Sequence[InsertionObservation], catalog: Catalog
) -> tuple[dict[str, int], dict[str, int]]:
    """Units per SKU proven by codes: (known SKUs, unknown codes).

    Serialised codes count distinct serials over the whole carton; a code without a serial can't
    be told apart from another unit's, so it counts the most copies seen in any one frame. Codes
    of a frame the model could not read prove nothing: a hand over the carton may hold the very
    unit whose code was read, and set it down beside the box.
    """
    index = code_index(catalog.barcode_index())
    serials: dict[str, set[str]] = {}
    per_frame_max: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for obs in observations:
        if not obs.applicable:
            continue
        in_frame: dict[str, int] = {}
        for code in obs.codes:
            hit = sku_for(code, index)
            if hit is None:
                unknown[code.text] = max(unknown.get(code.text, 0), 1)
                continue
            sku, units = hit
            if code.serial:
                serials.setdefault(sku, set()).add(code.unit_key)
            else:
                in_frame[sku] = in_frame.get(sku, 0) + units
        for sku, n in in_frame.items():
            per_frame_max[sku] = max(per_frame_max.get(sku, 0), n)
    proven = {
        sku: max(len(serials.get(sku, ())), per_frame_max.get(sku, 0))
        for sku in set(serials) | set(per_frame_max)
    }
    return proven, unknown


def counted(observations: Sequence[InsertionObservation]) -> int:
    """The items the readable frames counted as new."""
    return sum(o.new_items or 0 for o in observations)


def _unseen(sku: str, expected: int, confidence: float, detail: str) -> SkuFinding:
    return SkuFinding(sku, FindingStatus.NOT_APPLICABLE, expected, None, confidence, detail)


def _identity_findings(
    seen: Sequence[str],
    expected: Mapping[str, int],
    proven: Mapping[str, int],
    coded: Mapping[str, int],
    confidence: float,
) -> list[SkuFinding]:
    """What the codes and classes identified: a SKU proven in full is confirmed, more than
    ordered is extra, a code of a SKU not ordered is extra."""
    findings = []
    for sku in seen:
        exp, got = expected[sku], proven[sku]
        if got > exp:
            detail = f"vision saw {got} x {sku}, {exp} expected"
            findings.append(SkuFinding(sku, FindingStatus.EXTRA, exp, got, confidence, detail))
        elif got == exp:
            detail = f"{got} x {sku} identified in the image"
            findings.append(SkuFinding(sku, FindingStatus.CONFIRMED, exp, got, confidence, detail))
    for sku, n in sorted(coded.items()):
        if sku not in expected:
            detail = f"{sku} identified in the carton but not ordered"
            findings.append(SkuFinding(sku, FindingStatus.EXTRA, 0, n, confidence, detail))
    return findings


def build_vision_report(
    observations: Sequence[InsertionObservation],
    expected: Mapping[str, int],
    catalog: Catalog,
    *,
    lookalike_groups: Mapping[str, Iterable[str]] | None = None,
    camera_up: bool = True,
    count_confidence: float = 0.95,
    camera_detail: str = "",
    put_back_guard: PutBackGuard | None = None,
) -> ChannelReport:
    """The vision channel's report for one carton; see the module docstring. A put-back frame
    stands only where `put_back_guard` allows (none without one: `vision.observe.vetted`)."""
    if not camera_up:
        detail = camera_detail or "overhead camera unavailable"
        return ChannelReport(
            CHANNEL, ChannelState.DOWN, reasons=(Reason("camera_down", detail, CHANNEL),)
        )
    if not observations:
        return ChannelReport(
            CHANNEL,
            ChannelState.STALE,
            reasons=(Reason("no_frames", "No frame was taken of this carton.", CHANNEL),),
        )
    # The catalog's families, and the vision config's groups (named by a site model's classes).
    configured = {k: tuple(v) for k, v in (lookalike_groups or {}).items()}
    groups = {**catalog.lookalike_groups, **configured}
    group_of = _group_of(groups)

    def visible(sku: str) -> bool:
        return counted_by_camera(catalog.items.get(sku))

    findings: list[SkuFinding] = []
    for sku in sorted(expected):
        if not visible(sku):
            findings.append(_unseen(sku, expected[sku], 1.0, f"{sku} is not visible to the camera"))
    seen = [s for s in sorted(expected) if visible(s) and expected[s] > 0]
    expected_visible = sum(expected[s] for s in seen)
    n_frames = sum(1 for o in observations if o.framed)
    measurements: dict[str, float] = {
        "frames": float(n_frames),
        "expected_visible": expected_visible,
    }

    observations = vetted(observations, put_back_guard)
    not_applicable = uncounted(observations)
    carried = sum(1 for o in observations if not o.applicable) - len(not_applicable)
    if carried:
        measurements["carried_over_frames"] = float(carried)
    # Only the last frames hidden (a hand over the carton at the close): their items could only
    # add to the count, so a count that already reaches the expected units stands; a shortfall
    # might be in them, so it does not.
    hidden_last = all(o.carried_over for o in not_applicable)
    if not_applicable and hidden_last and counted(observations) >= expected_visible:
        measurements["hidden_last_frames"] = float(len(not_applicable))
        not_applicable = []
    put_back = sum(1 for o in observations if o.put_back)
    if put_back:
        measurements["put_back_frames"] = float(put_back)
    coded, unknown_codes = barcode_units(observations, catalog)
    labels: dict[str, int] = {}
    for o in observations:
        for label, n in o.new_labels.items():
            # A class naming a SKU inside a look-alike group proves the group only.
            key = group_of.get(label, label)
            labels[key] = labels.get(key, 0) + n

    proven: dict[str, int] = {}
    for sku in seen:
        by_class = labels.get(sku, 0) if sku not in group_of else 0
        proven[sku] = max(coded.get(sku, 0), by_class)
    group_proven = {g: labels.get(g, 0) for g in groups}
    identified = _identity_findings(seen, expected, proven, coded, count_confidence)

    if not_applicable:
        first = not_applicable[0]
        why = first.reason or "scene unreadable"
        where = f"read insertion {first.index + 1}" if first.framed else "count the carton"
        # UNSURE, not OK: a station that requires vision must not PASS a carton vision could not
        # count (the policy sends it to REVIEW); where vision is optional or an excused backup
        # it confirms nothing. A unit of a SKU not ordered that a code identified is still
        # extra, when nothing can have left the carton since: only hands hid frames (no item
        # taken out and not put back, no put-back refused).
        detail = f"vision could not {where}: {why}"
        findings += [_unseen(sku, expected[sku], 0.0, detail) for sku in seen]
        extra = [f for f in identified if f.status is FindingStatus.EXTRA and f.expected == 0]
        nothing_left = all(o.framed and o.take_out is None for o in not_applicable)
        extra = extra if nothing_left else []
        findings += extra
        measurements["not_applicable_frames"] = float(len(not_applicable))
        return ChannelReport(
            CHANNEL,
            ChannelState.UNSURE,
            tuple(sorted(findings, key=lambda f: f.sku)),
            reasons=(
                Reason(
                    "vision_not_applicable", f"Vision cannot count this carton: {why}.", CHANNEL
                ),
                *(Reason("sku_extra", f.detail, CHANNEL, f.sku) for f in extra),
            ),
            measurements=measurements,
        )

    total = counted(observations)
    measurements["items_counted"] = float(total)
    reasons: list[Reason] = []
    explanations: list[Explanation] = []
    discrepancy = Discrepancy.NONE
    deficit = expected_visible - total

    findings += identified

    # Shortfall candidates: SKUs not proven in full, minus groups their class count covers.
    unproven = [s for s in seen if proven[s] < expected[s]]
    candidates = []
    for sku in unproven:
        group = group_of.get(sku)
        if group is not None:
            group_expected = sum(expected.get(m, 0) for m in groups[group])
            if group_proven.get(group, 0) >= group_expected:
                continue
        candidates.append(sku)

    review: list[Reason] = []
    if deficit > 0 and not candidates:
        # Every unit the count could have missed was identified (codes, classes), so a deficit
        # would name nothing missing. Either the count missed items it identified, or the codes
        # proved too much (one code printed twice on a unit, a serialised unit swapped at a
        # put-back, a code on the packing slip): a person looks, never a silent pass.
        measurements["count_below_identified"] = float(deficit)
        review.append(
            Reason(
                "vision_count_below_identified",
                f"Vision counted {total} items, {expected_visible} expected, yet identified "
                "every unit by its code: check the carton.",
                CHANNEL,
            )
        )
        deficit = 0
    if deficit > 0:
        discrepancy = Discrepancy.DEFICIT
        message = f"Vision counted {total} items, {expected_visible} expected: {deficit} missing."
        reasons.append(Reason("vision_count_deficit", message, CHANNEL))
        short = [s for s in candidates if expected[s] - proven[s] >= deficit] or candidates
        if len(short) == 1:
            sku = short[0]
            observed = max(0, expected[sku] - deficit)
            findings.append(
                SkuFinding(
                    sku,
                    FindingStatus.MISSING,
                    expected[sku],
                    observed,
                    count_confidence,
                    f"{deficit} x {sku} missing",
                )
            )
            reasons[-1] = Reason("vision_count_deficit", message, CHANNEL, sku)
            short_skus = {sku}
        else:
            share = 1.0 / max(1, len(short))
            explanations = [Explanation({s: -min(deficit, expected[s])}, 0.0, share) for s in short]
            short_skus = set()
        for sku in unproven:
            if sku not in short_skus:
                findings.append(
                    SkuFinding(
                        sku,
                        FindingStatus.UNCERTAIN,
                        expected[sku],
                        None,
                        count_confidence,
                        "a unit may be missing",
                    )
                )
    elif deficit < 0:
        discrepancy = Discrepancy.SURPLUS
        reasons.append(
            Reason(
                "vision_count_surplus",
                f"Vision counted {total} items, {expected_visible} expected.",
                CHANNEL,
            )
        )
    if deficit <= 0:  # a count cannot say which of the unproven SKUs it saw
        detail = (
            "more items than ordered"
            if deficit < 0
            else "the item count agrees; vision did not identify the units"
        )
        findings += [
            SkuFinding(sku, FindingStatus.UNCERTAIN, expected[sku], None, count_confidence, detail)
            for sku in unproven
        ]
    if unknown_codes:
        measurements["unknown_codes"] = float(len(unknown_codes))
    return ChannelReport(
        CHANNEL,
        ChannelState.OK,
        tuple(sorted(findings, key=lambda f: f.sku)),
        discrepancy,
        tuple(explanations),
        tuple(reasons),
        measurements,
        tuple(review),
    )
