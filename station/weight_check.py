"""The weight channel: does the carton weigh what its manifest says it should? Pure: no I/O.

Expected weight = units + packing materials (paperwork, void fill) + box tare. The error sources
(each unit's spread, the tare's spread, paperwork, fill, the scale's own error at that load) are
independent, so they combine as a root-sum-of-squares; the tolerance is `z` of those combined
standard deviations, never below a floor. docs/weight-verification.md derives it with an example.

A carton outside the tolerance is a discrepancy. The channel then searches the manifest's units
(for a surplus also the usual extras: the site's list and the SKUs of the cartons packed at the
station just before) for the few combinations that best explain the difference and names a SKU
only when one single-SKU explanation clearly beats every other hypothesis.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from station.domain import BoxType, Catalog, CatalogItem
from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    Explanation,
    FindingStatus,
    Reason,
    SkuFinding,
)

CHANNEL = "weight"


class ScaleState(StrEnum):
    SETTLED = "settled"
    UNSTABLE = "unstable"
    STALE = "stale"
    OVER_CAPACITY = "over_capacity"
    UNDER_RANGE = "under_range"
    ZERO_DRIFT = "zero_drift"  # the empty platter did not read zero: every reading is offset
    DOWN = "down"


_UNUSABLE: dict[ScaleState, tuple[ChannelState, str]] = {
    ScaleState.DOWN: (ChannelState.DOWN, "The scale is not responding: check its cable and power."),
    ScaleState.STALE: (
        ChannelState.STALE,
        "No fresh reading from the scale for this carton: lift the carton and set it down again.",
    ),
    ScaleState.UNSTABLE: (
        ChannelState.UNSURE,
        "The scale has not settled: keep hands off the carton until the reading is steady.",
    ),
    ScaleState.OVER_CAPACITY: (
        ChannelState.UNSURE,
        "The carton is over the scale's capacity, so its weight cannot be checked here.",
    ),
    ScaleState.UNDER_RANGE: (
        ChannelState.UNSURE,
        "The scale reads below zero: clear the platform and zero the scale.",
    ),
    ScaleState.ZERO_DRIFT: (
        ChannelState.UNSURE,
        "The empty scale did not read zero, so every weight is off: clear the platform and zero "
        "the scale.",
    ),
}


class WeightCheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    paperwork_g: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Mean weight of the paperwork put in every carton (packing slip, invoice).",
    )
    paperwork_spread_g: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Standard deviation of the paperwork's weight (one page more or less).",
    )
    fill_g: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Mean weight of void fill and tape added to every carton.",
    )
    fill_spread_g: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Standard deviation of the void fill and tape from carton to carton.",
    )
    z: float = Field(
        default=3.0,
        gt=0,
        le=10,
        description="Coverage factor: tolerance = z x the combined standard deviation.",
    )
    min_tolerance_g: float = Field(
        default=5.0,
        gt=0,
        le=100_000,
        description="Tolerance floor in grams, for cartons whose computed spread is tiny.",
    )
    missing_unit_prior: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Prior chance that any one unit is missing or extra; it makes an "
        "explanation with fewer units likelier than a many-unit coincidence.",
    )
    max_explanation_units: int = Field(
        default=6,
        ge=1,
        le=50,
        description="Most units a single explanation may involve.",
    )
    max_explanations: int = Field(
        default=3,
        ge=1,
        le=20,
        description="How many explanations a report lists, best first.",
    )
    explanation_window_sigmas: float = Field(
        default=4.0,
        gt=0,
        le=10,
        description="An explanation is considered only if it leaves at most this many standard "
        "deviations unexplained.",
    )
    search_budget: int = Field(
        default=10_000,
        ge=100,
        le=2_000_000,
        description="Most search steps the explanation search may take; bounds its run time on "
        "large cartons (the report says when the search was cut short).",
    )
    max_hypotheses: int = Field(
        default=150,
        ge=10,
        le=100_000,
        description="Most explanations the search scores before it stops (scoring one costs "
        "far more than a search step; the smallest come first). Bounds the run time of big "
        "cartons of many SKUs, where thousands of combinations fit the window.",
    )
    decisive_ratio: float = Field(
        default=10.0,
        gt=1,
        le=1e6,
        description="How many times likelier the best explanation must be than the runner-up "
        "before the channel names a SKU as missing or extra.",
    )

    common_extras: tuple[str, ...] = Field(
        default=(),
        max_length=500,
        description="SKUs often found in cartons that did not order them (a promotional insert, "
        "a sample): a surplus may be explained by their units too, not only by extra units of "
        "the order's own SKUs.",
    )
    recent_cartons_as_extras: int = Field(
        default=10,
        ge=0,
        le=200,
        description="The SKUs of this many cartons verified last at the station also explain a "
        "surplus: an item of another order mixed in most likely comes from a neighbour order. "
        "0: only the order's own SKUs and common_extras.",
    )

    per_insertion: bool = Field(
        default=True,
        description="Also check each settled weight step while the carton is packed (the "
        "'insertion' channel): it can name a light unit missing that the total cannot see. It "
        "speaks only when packing started on an empty platter and every step is explained.",
    )

    def packing_materials(self) -> tuple[PackingMaterial, ...]:
        return (
            PackingMaterial("paperwork", self.paperwork_g, self.paperwork_spread_g),
            PackingMaterial("void fill and tape", self.fill_g, self.fill_spread_g),
        )


@dataclass(frozen=True, slots=True)
class PackingMaterial:
    """Something in every carton that is not on the manifest (paperwork, void fill)."""

    name: str
    mean_g: float
    spread_g: float


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    """What the scale says about the carton now.

    `gross_g` is the whole carton on the platform, box included; `net_g` is the reading after the
    empty box was tared away on the scale, so the box's tare (and its spread) drop out. A settled
    measurement carries exactly one of them. `scale_error_g` is the scale's maximum permissible
    error at this load (scale.weighing.scale_error_g).
    """

    state: ScaleState
    gross_g: float | None = None
    net_g: float | None = None
    scale_error_g: float = 0.0


class ExpectedWeight(NamedTuple):
    mean_g: float
    sigma_g: float


class UnpredictableWeight(ValueError):
    """Some expected SKUs have no unit weight in the catalog."""

    def __init__(self, skus: list[str]) -> None:
        super().__init__(", ".join(skus))
        self.skus = skus


def expected_weight(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    inserts: Iterable[PackingMaterial] = (),
) -> ExpectedWeight:
    """Mean and standard deviation of the carton's weight; `box=None` when the box is tared away.

    Catalog items of kind `insert` arrive through `expected_units` like products; `inserts` are
    the configured materials that are on no manifest. Raises UnpredictableWeight when a SKU has no
    unit weight, since the carton's total then cannot be predicted at all.
    """
    present = {sku: n for sku, n in expected_units.items() if n > 0}
    unknown = sorted(
        sku
        for sku in present
        if sku not in catalog.items or catalog.items[sku].unit_weight_g is None
    )
    if unknown:
        raise UnpredictableWeight(unknown)
    items = [(catalog.items[sku], n) for sku, n in present.items()]
    materials = list(inserts)
    mean = sum(n * item.unit_weight_g for item, n in items) + sum(m.mean_g for m in materials)
    variance = sum(n * item.weight_spread_g**2 for item, n in items)
    variance += sum(m.spread_g**2 for m in materials)
    if box is not None:
        mean += box.tare_g
        variance += box.tare_spread_g**2
    return ExpectedWeight(mean, math.sqrt(variance))


def combined_sigma_g(content_sigma_g: float, scale_error_g: float) -> float:
    """The scale's error is a bound, not a standard deviation: uniform on ±MPE has sigma MPE/√3."""
    return math.hypot(content_sigma_g, scale_error_g / math.sqrt(3))


def tolerance_g(content_sigma_g: float, scale_error_g: float, config: WeightCheckConfig) -> float:
    return max(config.min_tolerance_g, config.z * combined_sigma_g(content_sigma_g, scale_error_g))


def detection_power(unit_g: float, tolerance: float, sigma: float) -> float:
    """Chance that a carton short of one `unit_g` unit reads outside ±tolerance."""
    return (
        _normal_cdf((unit_g - tolerance) / sigma) + 1.0 - _normal_cdf((unit_g + tolerance) / sigma)
    )


def absence_detection(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    scale_error_at: Callable[[float], float],
    config: WeightCheckConfig,
) -> dict[str, float]:
    """Before anything is packed: for each expected SKU, the chance that the total weight would
    reveal one missing unit (0 where it cannot: variable weight, unknown weight, or a unit lighter
    than the tolerance). `scale_error_at(grams)` is the scale's error at a load. The same rule
    `evaluate_weight` applies at close, so what the packer is told at the start holds at the end."""
    present = {sku: n for sku, n in expected_units.items() if n > 0}
    band = _tolerance_band(present, catalog, box, scale_error_at, config)
    return {sku: _power(catalog.items[sku], 0.0, band) for sku in present}


def lookalike_detection(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    scale_error_at: Callable[[float], float],
    config: WeightCheckConfig,
) -> dict[str, float]:
    """For each expected SKU with look-alikes in the catalog, the chance that the total weight
    would reveal one unit replaced by its nearest look-alike (a size or colour packed instead):
    the power over the weight difference, 0 when either weight is unknown or variable. SKUs
    without look-alikes are left out. Same tolerance as `absence_detection`."""
    present = {sku: n for sku, n in expected_units.items() if n > 0}
    band = _tolerance_band(present, catalog, box, scale_error_at, config)
    powers = {}
    for sku in present:
        others = [catalog.items[other] for other in catalog.lookalikes(sku)]
        if others:
            item = catalog.items[sku]
            powers[sku] = min(_power(item, _unit_g(other), band) for other in others)
    return powers


class _Band(NamedTuple):
    tolerance: float
    sigma: float


def _tolerance_band(
    present: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    scale_error_at: Callable[[float], float],
    config: WeightCheckConfig,
) -> _Band | None:
    """The close's tolerance on the carton's total, or None when the total cannot be predicted."""
    try:
        expected = expected_weight(present, catalog, box, config.packing_materials())
    except UnpredictableWeight:
        return None
    tolerance = tolerance_g(expected.sigma_g, scale_error_at(expected.mean_g), config)
    return _Band(tolerance, tolerance / config.z)


def _unit_g(item: CatalogItem) -> float | None:
    return item.unit_weight_g if item.weighable else None


def _power(item: CatalogItem, replaced_by_g: float | None, band: _Band | None) -> float:
    """The chance the total reveals one unit of `item` replaced by `replaced_by_g` grams
    (0.0: left out; None: something of unknown weight)."""
    unit_g = _unit_g(item)
    if band is None or unit_g is None or replaced_by_g is None:
        return 0.0
    change = abs(unit_g - replaced_by_g)
    return detection_power(change, band.tolerance, band.sigma) if change > band.tolerance else 0.0


def evaluate_weight(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    measurement: WeightMeasurement,
    config: WeightCheckConfig,
    provenance: Mapping[str, str] | None = None,
    usual_extras: Iterable[str] = (),
) -> ChannelReport:
    """The weight channel's report for one carton. Never raises on a bad reading: fails closed.

    `provenance` (where each unit weight and the tare came from) is copied into the report so
    the evidence says which figures the verdict was measured against. `usual_extras`: SKUs not
    ordered that may explain a surplus too (besides `config.common_extras`); unknown SKUs and
    SKUs without a fixed unit weight are passed over.
    """
    report = _evaluate(expected_units, catalog, box, measurement, config, usual_extras)
    return replace(report, provenance=dict(provenance)) if provenance else report


def _evaluate(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    measurement: WeightMeasurement,
    config: WeightCheckConfig,
    usual_extras: Iterable[str],
) -> ChannelReport:
    unusable = _unusable_reading(measurement, box)
    if unusable is not None:
        return unusable
    on_scale_box = box if measurement.gross_g is not None else None
    try:
        expected = expected_weight(
            expected_units, catalog, on_scale_box, config.packing_materials()
        )
    except UnpredictableWeight as exc:
        return _unsure(
            "weight_unknown",
            f"The catalog has no unit weight for {', '.join(exc.skus)}, "
            "so the carton's weight cannot be checked.",
        )
    measured = measurement.gross_g if measurement.gross_g is not None else measurement.net_g
    tolerance = tolerance_g(expected.sigma_g, measurement.scale_error_g, config)
    units = {sku: n for sku, n in expected_units.items() if n > 0}
    carton = _Carton(
        units=units,
        usual_extras=_usual_extras([*config.common_extras, *usual_extras], units, catalog),
        items=catalog.items,
        delta_g=measured - expected.mean_g,
        tolerance_g=tolerance,
        # The floor widens the tolerance; the model's sigma widens with it so the two agree.
        sigma_g=tolerance / config.z,
    )
    measurements = {
        "expected_g": expected.mean_g,
        "measured_g": measured,
        "tolerance_g": tolerance,
        "delta_g": carton.delta_g,
        "sigma_g": carton.sigma_g,
        "scale_error_g": measurement.scale_error_g,
        # 1: the box was weighed with the carton (gross); 0: it was tared away on the scale.
        "box_on_scale": float(on_scale_box is not None),
    }
    if abs(carton.delta_g) <= tolerance:
        findings = tuple(_finding_within_tolerance(carton, sku) for sku in sorted(carton.units))
        return ChannelReport(CHANNEL, ChannelState.OK, findings, measurements=measurements)
    return _discrepancy_report(carton, config, measurements)


class RecentCartons:
    """The SKUs of the cartons verified last at a station, newest last: an item of another order
    mixed into a carton most likely comes from one of them (`recent_cartons_as_extras`)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._cartons: dict[tuple[str, str], frozenset[str]] = {}  # oldest first

    def skus_besides(self, carton: tuple[str, str]) -> frozenset[str]:
        """The SKUs of the `keep` cartons verified last, `carton` itself not counted."""
        earlier = [skus for key, skus in self._cartons.items() if key != carton]
        kept = earlier[len(earlier) - self._keep :] if self._keep else []
        return frozenset().union(*kept)

    def remember(self, carton: tuple[str, str], skus: Iterable[str]) -> None:
        """`carton` verified now (again: it becomes the newest, with its manifest's SKUs now)."""
        self._cartons.pop(carton, None)
        self._cartons[carton] = frozenset(skus)
        while len(self._cartons) > self._keep + 1:  # `keep` besides the one being closed
            del self._cartons[next(iter(self._cartons))]


def weighs_per_unit(item: CatalogItem | None) -> bool:
    """A catalog item whose units the scale can count: a known, fixed unit weight."""
    return item is not None and bool(item.unit_weight_g) and not item.variable_weight


def _usual_extras(
    skus: Iterable[str], units: Mapping[str, int], catalog: Catalog
) -> tuple[str, ...]:
    """The SKUs not ordered that the scale can count, each once, sorted."""
    return tuple(
        sorted(
            sku for sku in set(skus) if sku not in units and weighs_per_unit(catalog.items.get(sku))
        )
    )


@dataclass(frozen=True, slots=True)
class _Carton:
    units: Mapping[str, int]
    usual_extras: tuple[str, ...]  # SKUs not ordered that may explain a surplus
    items: Mapping[str, CatalogItem]
    delta_g: float  # measured - expected
    tolerance_g: float
    sigma_g: float

    def label(self, sku: str) -> str:
        return f"{self.items[sku].name} ({sku})"


def _unusable_reading(measurement: WeightMeasurement, box: BoxType | None) -> ChannelReport | None:
    if measurement.state is not ScaleState.SETTLED:
        state, message = _UNUSABLE[measurement.state]
        return ChannelReport(
            CHANNEL, state, reasons=(Reason(f"scale_{measurement.state.value}", message, CHANNEL),)
        )
    values = [v for v in (measurement.gross_g, measurement.net_g) if v is not None]
    if len(values) != 1 or not all(math.isfinite(v) for v in [*values, measurement.scale_error_g]):
        return _unsure("bad_reading", "The scale sent a reading that makes no sense: weigh again.")
    if measurement.scale_error_g < 0 or values[0] < 0:
        return _unsure("bad_reading", "The scale sent a negative reading: zero it and weigh again.")
    if measurement.gross_g is not None and box is None:
        return _unsure("no_box", "No box was chosen, so the box's own weight is unknown.")
    return None


def _unsure(code: str, message: str) -> ChannelReport:
    return ChannelReport(CHANNEL, ChannelState.UNSURE, reasons=(Reason(code, message, CHANNEL),))


def _finding_within_tolerance(carton: _Carton, sku: str) -> SkuFinding:
    item, expected = carton.items[sku], carton.units[sku]
    if item.variable_weight:
        return _not_weighable(sku, expected)
    unit_g = item.unit_weight_g or 0.0
    power = detection_power(unit_g, carton.tolerance_g, carton.sigma_g)
    shift = f"a missing {item.name} ({unit_g:g} g)"
    if unit_g > carton.tolerance_g:
        detail = f"{shift} would show outside ±{carton.tolerance_g:.0f} g"
        return SkuFinding(sku, FindingStatus.CONFIRMED, expected, expected, power, detail)
    detail = f"{shift} would hide inside ±{carton.tolerance_g:.0f} g"
    return SkuFinding(sku, FindingStatus.UNCERTAIN, expected, None, power, detail)


def _not_weighable(sku: str, expected: int) -> SkuFinding:
    detail = "sold by weight: the scale cannot count its units"
    return SkuFinding(sku, FindingStatus.NOT_APPLICABLE, expected, None, 1.0, detail)


# --- discrepancy: explain the difference with combinations of manifest units -----------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    sku: str
    unit_g: float
    spread_g: float
    limit: int  # most units of this SKU an explanation may move


class _Hypothesis(NamedTuple):  # a tuple: thousands are made per search
    combo: tuple[int, ...]  # the candidates' indices of the units moved, ascending
    residual_g: float
    log_likelihood: float

    def counts(self, candidates: list[_Candidate]) -> dict[str, int]:
        """Units moved per SKU (always positive; the sign is the direction)."""
        counts: dict[str, int] = {}
        for i in self.combo:
            counts[candidates[i].sku] = counts.get(candidates[i].sku, 0) + 1
        return counts


class _Budget:
    """Search steps left, shared by the searches of every size (below zero: cut short)."""

    def __init__(self, steps: int) -> None:
        self.left = steps


def _discrepancy_report(
    carton: _Carton, config: WeightCheckConfig, measurements: dict[str, float]
) -> ChannelReport:
    deficit = carton.delta_g < 0
    kind = Discrepancy.DEFICIT if deficit else Discrepancy.SURPLUS
    candidates, hypotheses, truncated = _search_explanations(carton, config)
    null = _log_likelihood(carton.delta_g, carton.sigma_g)
    # Posterior share among the hypotheses examined, "nothing wrong but noise" included.
    top_log = max([null, *(h.log_likelihood for h in hypotheses)])
    weights = [math.exp(h.log_likelihood - top_log) for h in hypotheses]
    total = sum(weights) + math.exp(null - top_log)
    sign = -1 if deficit else 1
    explanations = tuple(
        Explanation(
            {sku: sign * k for sku, k in h.counts(candidates).items()}, h.residual_g, w / total
        )
        for h, w in list(zip(hypotheses, weights, strict=True))[: config.max_explanations]
    )
    named = _decisive_sku(explanations, config)
    findings = [_finding_off_tolerance(carton, sku, named) for sku in carton.units]
    if named is not None and named.sku not in carton.units:  # a usual extra, not ordered
        findings.append(_usual_extra_finding(carton, named))
    findings.sort(key=lambda f: f.sku)
    reason = Reason(
        f"weight_{kind.value}",
        _discrepancy_sentence(carton, explanations, named, len(hypotheses)),
        CHANNEL,
    )
    measurements["explanation_search_truncated"] = float(truncated)
    return ChannelReport(
        CHANNEL, ChannelState.OK, tuple(findings), kind, explanations, (reason,), measurements
    )


def _search_explanations(
    carton: _Carton, config: WeightCheckConfig
) -> tuple[list[_Candidate], list[_Hypothesis], bool]:
    """The units that may have moved, ranked explanations of the delta by them, and whether
    the step budget cut the search short.

    Combinations are examined by size (every 1-unit explanation before any 2-unit one), within
    `max_explanation_units`, and only those whose weight lands within the window around the
    delta; `search_budget` caps the steps and `max_hypotheses` the explanations scored, so a
    150-unit carton stays in milliseconds.
    """
    deficit = carton.delta_g < 0
    # A deficit only lacks ordered units; a surplus may also hold units of the usual extras.
    movable = carton.units if deficit else {**carton.units, **dict.fromkeys(carton.usual_extras, 0)}
    candidates = sorted(
        (
            _Candidate(
                sku,
                item.unit_weight_g,
                item.weight_spread_g,
                min(n, config.max_explanation_units) if deficit else config.max_explanation_units,
            )
            for sku, n in movable.items()
            if (item := carton.items[sku]).unit_weight_g
        ),
        key=lambda c: (c.unit_g, c.sku),
    )
    if not candidates:
        return [], [], False
    widest_spread = max(c.spread_g for c in candidates)
    widest_sigma = math.sqrt(
        carton.sigma_g**2 + (0 if deficit else config.max_explanation_units * widest_spread**2)
    )
    window = config.explanation_window_sigmas * widest_sigma
    target = abs(carton.delta_g)
    budget = _Budget(config.search_budget)
    score = _scorer(carton, candidates, config)
    found: list[_Hypothesis] = []
    full = False
    for size in range(1, config.max_explanation_units + 1):
        for combo in _combinations(candidates, size, target - window, target + window, budget):
            found.append(score(combo))
            if full := len(found) >= config.max_hypotheses:
                break
        if full or budget.left < 0:
            break
    found.sort(key=lambda h: h.log_likelihood, reverse=True)
    return candidates, found, full or budget.left < 0


def _combinations(
    candidates: list[_Candidate], size: int, low_g: float, high_g: float, budget: _Budget
) -> Iterator[tuple[int, ...]]:
    """Multisets of `size` candidate indices whose total weight lies in [low_g, high_g],
    indices ascending, depth first; each index tried spends one step of `budget`.

    Candidates are sorted by weight, so once one index overshoots every later one does too.
    A loop over an explicit stack, not recursive generators: every combination would pass up
    through one generator per unit, and a 100-unit carton's search yields thousands."""
    weights = [c.unit_g for c in candidates]
    limits = [c.limit for c in candidates]
    heaviest = weights[-1]
    if size * heaviest < low_g:
        return
    first = _passing_over(weights, 0, 0.0, size, heaviest, low_g, budget)
    if first is None:
        return
    chosen: list[int] = []
    totals = [0.0]  # per depth: the weight chosen above it
    tries = [first]  # per depth: the next index to try
    while tries:
        depth = len(tries) - 1
        i, total, slots = tries[depth], totals[depth], size - depth
        if i < len(weights):
            budget.left -= 1
        if i == len(weights) or budget.left < 0 or total + slots * weights[i] > high_g:
            tries.pop()
            totals.pop()
            if chosen:
                chosen.pop()
            continue
        tries[depth] = i + 1
        if limits[i] <= chosen.count(i):
            continue
        grown = total + weights[i]
        if slots == 1:
            if grown >= low_g:
                yield (*chosen, i)
        elif grown + (slots - 1) * heaviest >= low_g:
            start = _passing_over(weights, i, grown, slots - 1, heaviest, low_g, budget)
            if start is not None:
                chosen.append(i)
                totals.append(grown)
                tries.append(start)


def _passing_over(
    weights: list[float],
    start: int,
    total: float,
    slots: int,
    heaviest: float,
    low_g: float,
    budget: _Budget,
) -> int | None:
    """Where a level of the search starts trying: past the lighter indices that cannot reach
    the window even with the heaviest after them, each still one step of the budget (the same
    steps as trying them one by one, so the budget cuts the same searches short); None when
    the budget runs out among them."""
    passed = _first_reaching(weights, start, total, (slots - 1) * heaviest, low_g) - start
    if passed and passed > budget.left:
        budget.left = -1
        return None
    budget.left -= passed
    return start + passed


def _first_reaching(
    weights: list[float], start: int, total: float, rest_g: float, low_g: float
) -> int:
    """The first index from `start` whose weight, with `total` before it and `rest_g` after,
    reaches `low_g` (`weights` ascending); the exact comparison the search makes."""
    j = bisect.bisect_left(weights, low_g - rest_g - total, start)
    while j > start and total + weights[j - 1] + rest_g >= low_g:
        j -= 1
    while j < len(weights) and total + weights[j] + rest_g < low_g:
        j += 1
    return j


def _scorer(
    carton: _Carton, candidates: list[_Candidate], config: WeightCheckConfig
) -> Callable[[tuple[int, ...]], _Hypothesis]:
    """Scores a combination of candidate indices (ascending; a run of one index is k units of
    one SKU). Called for every combination in the window, so what does not depend on the
    combination is worked out once and the counts are not built."""
    deficit = carton.delta_g < 0
    delta_g, variance = carton.delta_g, carton.sigma_g**2
    weights = [c.unit_g for c in candidates]
    variances = [c.spread_g**2 for c in candidates]
    ordered = [carton.units.get(c.sku, 0) for c in candidates]
    log_missing = math.log(config.missing_unit_prior)

    def score(combo: tuple[int, ...]) -> _Hypothesis:
        moved_g = moved_var = ways = 0.0
        last = len(combo) - 1
        units = 0
        for at, i in enumerate(combo):
            units += 1
            if at < last and combo[at + 1] == i:
                continue
            moved_g += weights[i] * units
            moved_var += variances[i] * units
            if deficit:  # k of n expected units can go missing in C(n, k) ways
                ways += math.log(math.comb(ordered[i], units))
            units = 0
        residual = delta_g + moved_g if deficit else delta_g - moved_g
        # Missing units take their spread with them; extra units bring theirs.
        sigma = math.sqrt(max(variance + (-moved_var if deficit else moved_var), 1e-12))
        log_prior = len(combo) * log_missing + ways
        return _Hypothesis(combo, residual, _log_likelihood(residual, sigma) + log_prior)

    return score


def _log_likelihood(residual_g: float, sigma_g: float) -> float:
    return -0.5 * (residual_g / sigma_g) ** 2 - math.log(sigma_g)


@dataclass(frozen=True, slots=True)
class _Named:
    sku: str
    units: int  # signed: negative missing, positive extra
    confidence: float


def _decisive_sku(
    explanations: tuple[Explanation, ...], config: WeightCheckConfig
) -> _Named | None:
    """The SKU to name when the best explanation is one SKU and clearly beats the runner-up."""
    if not explanations or len(explanations[0].delta_units) != 1:
        return None
    best = explanations[0]
    if (
        len(explanations) > 1
        and best.likelihood < config.decisive_ratio * explanations[1].likelihood
    ):
        return None
    ((sku, units),) = best.delta_units.items()
    return _Named(sku, units, best.likelihood)


def _finding_off_tolerance(carton: _Carton, sku: str, named: _Named | None) -> SkuFinding:
    expected = carton.units[sku]
    if carton.items[sku].variable_weight:
        return _not_weighable(sku, expected)
    if named is not None and named.sku == sku:
        status = FindingStatus.MISSING if named.units < 0 else FindingStatus.EXTRA
        detail = f"weight points to {_units_phrase(carton, {sku: named.units})} {status.value}"
        return SkuFinding(sku, status, expected, expected + named.units, named.confidence, detail)
    detail = f"the carton is {abs(carton.delta_g):.0f} g off, so the scale cannot vouch for it"
    return SkuFinding(sku, FindingStatus.UNCERTAIN, expected, None, 0.0, detail)


def _usual_extra_finding(carton: _Carton, named: _Named) -> SkuFinding:
    phrase = _units_phrase(carton, {named.sku: named.units})
    detail = f"weight points to {phrase} extra, a SKU the order does not hold"
    return SkuFinding(named.sku, FindingStatus.EXTRA, 0, named.units, named.confidence, detail)


def _discrepancy_sentence(
    carton: _Carton, explanations: tuple[Explanation, ...], named: _Named | None, found: int
) -> str:
    direction = "light" if carton.delta_g < 0 else "heavy"
    head = (
        f"Carton is {abs(carton.delta_g):.0f} g {direction} (tolerance ±{carton.tolerance_g:.0f} g)"
    )
    if not explanations:
        usual = " or the usual extras" if carton.usual_extras and carton.delta_g > 0 else ""
        return f"{head}: no combination of the order's items{usual} explains it."
    if named is not None:
        return f"{head}: most likely {_units_phrase(carton, explanations[0].delta_units)}."
    options = " or ".join(_units_phrase(carton, e.delta_units) for e in explanations)
    unlisted = found - len(explanations)
    more = f" (or one of {unlisted} other combinations)" if unlisted else ""
    return f"{head}: possibly {options}{more}."


def _units_phrase(carton: _Carton, delta_units: Mapping[str, int]) -> str:
    return " + ".join(f"{abs(k)} x {carton.label(sku)}" for sku, k in sorted(delta_units.items()))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))
