"""Per-insertion weight: every settled step of the platter's weight matched to what went in. Pure.

The total weight of a carton cannot tell an 8 g pair of earrings from the spread of a 2 kg
carton; the step the earrings make when they go in can, because one step carries the spread of one
or two units, not of the whole carton (the way checkweighing lines check the gain after each
part). So while a carton is packed the weight channel reports each settled step, and at close all
steps are explained together: a beam search over whole packings, where each step is one or two of
the pieces still to go in (units, the box, the paperwork), a unit taken out again, or "something
else" (void fill, a hand, a unit of another order), with priors that make one unit likelier than
two and a missing unit as unlikely as `missing_unit_prior`.

The report fails safe: it counts units only when packing was watched from an empty platter and the
steps are explained with at least `min_confidence`; otherwise it is UNSURE and (unless a station
requires the channel) changes nothing. When it counts, a SKU with fewer units than the manifest is
missing (the light item the total could not see) with the posterior as its confidence.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from station.domain import BoxType, Catalog
from station.verification import ChannelReport, ChannelState, FindingStatus, Reason, SkuFinding
from station.weight_check import PackingMaterial

CHANNEL = "insertion"
_TWO_AT_ONCE = 0.15  # prior share of steps that are two pieces put in before the scale settled
# Relative to two units at once: the box goes down with its paperwork often, and with a unit
# already in it rarely (the packer scans the box and puts it down empty).
_BOX_WITH_MATERIAL = 4.0
_BOX_WITH_UNIT = 0.05
_SOMETHING_ELSE = 0.01  # prior chance a step is none of the pieces (fill, a hand, a stray unit)
_SOMETHING_ELSE_SPAN_G = 2_000.0  # ...spread evenly over this many grams


@dataclass(frozen=True, slots=True)
class WeightStep:
    """The settled weight moved to a new level: something was put in or taken out."""

    from_g: float
    to_g: float
    at: float  # monotonic time of the reading that settled at the new level

    @property
    def delta_g(self) -> float:
        return self.to_g - self.from_g


@dataclass(frozen=True, slots=True)
class _Piece:
    name: str  # a SKU, or "box" / a material's name
    mean_g: float
    sigma_g: float
    is_unit: bool


@dataclass(frozen=True, slots=True)
class PackingExplanation:
    """The posterior over how the steps came about, as far as the report needs it."""

    p_explained: float  # chance every step was one or two expected pieces
    counts: Mapping[str, Mapping[int, float]]  # SKU -> units placed -> probability (explained)

    def likeliest(self, sku: str) -> tuple[int, float]:
        dist = self.counts.get(sku, {0: 1.0})
        return max(dist.items(), key=lambda kv: kv[1])


def explain_steps(
    steps: Sequence[WeightStep],
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    materials: Iterable[PackingMaterial],
    scale_error_at: Callable[[float], float],
    missing_prior: float,
    beam_width: int = 24,
) -> PackingExplanation:
    """Every step explained jointly (a beam search over whole packings, not step by step: an 8 g
    step later settles whether the first step was box + paperwork or box + earrings). Packings
    that put any step down to "something else" are pooled into one lost mass: the report only
    needs how likely it is that everything was explained.

    A packing is the tuple of pieces still to go in, one count per piece (what was placed is the
    rest), so moving a piece is one small tuple copy and equal packings meet in a dict."""
    pieces = _pieces(expected_units, catalog, box, materials)
    names = list(pieces)
    index = {name: i for i, name in enumerate(names)}
    initial = tuple(
        expected_units[n] if pieces[n].is_unit else 1 for n in names
    )  # every expected unit, the box and each material once
    beam: dict[tuple[int, ...], float] = {initial: 0.0}
    lost = -math.inf  # log of the pooled mass of packings with an unexplained step
    other = math.log(_SOMETHING_ELSE / _SOMETHING_ELSE_SPAN_G)
    for step in steps:
        noise = math.hypot(scale_error_at(step.from_g), scale_error_at(step.to_g)) / 3**0.5
        putting_in = step.delta_g > 0
        # What any packing could still put in (or take out), then the few moves worth trying.
        pool = {
            n: max(t[i] if putting_in else initial[i] - t[i] for t in beam)
            for n, i in index.items()
        }
        moves = [
            (tuple(index[n] for n in move), math.log(p))
            for move, p in _likely(_hypotheses(abs(step.delta_g), pool, pieces, noise))
        ]
        lost = _log_add(lost, _log_sum(beam.values())) + other
        grown: dict[tuple[int, ...], float] = {}
        for packing, log_p in beam.items():
            for move, log_move in moves:
                moved = _move(packing, initial, move, putting_in)
                if moved is not None:
                    grown[moved] = _log_add(grown.get(moved, -math.inf), log_p + log_move)
        beam = dict(heapq.nlargest(beam_width, grown.items(), key=lambda kv: kv[1]))
        if not beam:
            break
    # Each unit never seen going in is a unit missing: as unlikely as the prior says, so that
    # "the earrings went in with the mug" is weighed against "the earrings are not there".
    short = math.log(missing_prior)
    units = [index[n] for n in names if pieces[n].is_unit]
    always = [index[n] for n in names if not pieces[n].is_unit]
    scored = {t: log_p + short * sum(t[i] for i in units) for t, log_p in beam.items()}
    return _posterior(scored, lost, initial, index, always, list(expected_units))


def _likely(
    hypotheses: Iterable[tuple[tuple[str, ...], float]], most: int = 12
) -> list[tuple[tuple[str, ...], float]]:
    """The moves worth trying: the likeliest few, none a million times less likely than the
    best (they could never win the beam, only slow it down)."""
    ranked = heapq.nlargest(most, hypotheses, key=lambda hp: hp[1])
    if not ranked:
        return []
    floor = ranked[0][1] * 1e-6
    return [hp for hp in ranked if hp[1] >= floor]


def _move(
    to_go: tuple[int, ...], initial: tuple[int, ...], move: tuple[int, ...], putting_in: bool
) -> tuple[int, ...] | None:
    """`to_go` after `move` (piece indices) went in (or came out), or None if it cannot."""
    counts = list(to_go)
    for i in move:
        counts[i] += -1 if putting_in else 1
        if counts[i] < 0 or counts[i] > initial[i]:
            return None
    return tuple(counts)


def _posterior(
    beam: Mapping[tuple[int, ...], float],
    lost: float,
    initial: tuple[int, ...],
    index: Mapping[str, int],
    always: list[int],
    skus: list[str],
) -> PackingExplanation:
    # A packing that explained every step but left the box or the paperwork out is impossible
    # (they are in every carton); one that lost a step may have hidden them in it.
    possible = {t: log_p for t, log_p in beam.items() if not any(t[i] for i in always)}
    if not possible:
        return PackingExplanation(0.0, {})
    explained = _log_sum(possible.values())
    p_explained = 1.0 / (1.0 + math.exp(lost - explained)) if lost > -math.inf else 1.0
    counts: dict[str, dict[int, float]] = {}
    for sku in skus:
        dist: dict[int, float] = {}
        i = index.get(sku)
        for to_go, log_p in possible.items():
            n = 0 if i is None else initial[i] - to_go[i]
            dist[n] = dist.get(n, 0.0) + math.exp(log_p - explained)
        counts[sku] = dist
    return PackingExplanation(p_explained, counts)


def _log_add(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    if high == -math.inf:
        return high
    return high + math.log1p(math.exp(low - high))


def _log_sum(values: Iterable[float]) -> float:
    total = -math.inf
    for value in values:
        total = _log_add(total, value)
    return total


def evaluate_insertions(
    steps: Sequence[WeightStep],
    started_from_g: float | None,
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    materials: Iterable[PackingMaterial],
    scale_error_at: Callable[[float], float],
    min_confidence: float,
    empty_band_g: float,
    missing_prior: float,
) -> ChannelReport:
    """The per-insertion channel's report for a carton packed on the platter."""
    if started_from_g is None or abs(started_from_g) > empty_band_g:
        return _unsure("insertion_not_watched", "Packing did not start on an empty platter.")
    if not steps:
        return _unsure("insertion_none", "No insertion was seen on the scale.")
    materials = tuple(m for m in materials if m.mean_g > 0)
    explained = explain_steps(
        steps, expected_units, catalog, box, materials, scale_error_at, missing_prior
    )
    if explained.p_explained < min_confidence:
        return _unsure(
            "insertion_unexplained",
            f"Some of the {len(steps)} steps on the scale match nothing expected in this carton "
            f"(explained with {explained.p_explained:.0%} confidence).",
        )
    findings = []
    for sku, n in sorted(expected_units.items()):
        counted, p = explained.likeliest(sku)
        findings.append(_finding(sku, n, counted, p * explained.p_explained))
    return ChannelReport(
        CHANNEL,
        ChannelState.OK,
        tuple(findings),
        measurements={"steps": float(len(steps)), "p_explained": explained.p_explained},
    )


def _finding(sku: str, expected: int, counted: int, confidence: float) -> SkuFinding:
    detail = f"{counted} of {expected} seen going in"
    if counted == expected:
        return SkuFinding(sku, FindingStatus.CONFIRMED, expected, counted, confidence, detail)
    status = FindingStatus.MISSING if counted < expected else FindingStatus.EXTRA
    return SkuFinding(sku, status, expected, counted, confidence, detail)


def _unsure(code: str, message: str) -> ChannelReport:
    return ChannelReport(CHANNEL, ChannelState.UNSURE, reasons=(Reason(code, message, CHANNEL),))


def _pieces(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    box: BoxType | None,
    materials: Iterable[PackingMaterial],
) -> dict[str, _Piece]:
    pieces = {
        sku: _Piece(sku, item.unit_weight_g, item.weight_spread_g, True)
        for sku in expected_units
        if (item := catalog.items.get(sku)) is not None
        and item.weighable
        and item.unit_weight_g is not None
    }
    if box is not None:
        pieces["box"] = _Piece("box", box.tare_g, box.tare_spread_g, False)
    for m in materials:
        pieces[m.name] = _Piece(m.name, m.mean_g, m.spread_g, False)
    return pieces


def _hypotheses(
    grams: float, pool: Mapping[str, int], pieces: Mapping[str, _Piece], noise_sigma_g: float
) -> Iterable[tuple[tuple[str, ...], float]]:
    """(pieces, prior x likelihood) of one or two pieces from `pool` that could make a step of
    `grams`. Pairs are found by bisection over sorted means, so a 100-unit carton costs a few
    likelihoods per step, not thousands."""
    names = sorted((n for n, count in pool.items() if count > 0), key=lambda n: pieces[n].mean_g)
    means = [pieces[n].mean_g for n in names]
    one = (1 - _TWO_AT_ONCE) / max(1, len(names))
    two = _TWO_AT_ONCE / max(1, len(names) * (len(names) + 1) // 2)
    for n in names:
        p = _likelihood(grams, (pieces[n],), noise_sigma_g)
        if p > 0:
            yield (n,), p * one
    for names_, p in _pairs(grams, names, means, pool, pieces, noise_sigma_g):
        if p > 0:
            yield names_, p * two * _pair_weight(pieces[names_[0]], pieces[names_[1]])


def _pair_weight(first: _Piece, second: _Piece) -> float:
    if first.is_unit and second.is_unit:
        return 1.0
    if "box" in (first.name, second.name):
        return _BOX_WITH_UNIT if first.is_unit or second.is_unit else _BOX_WITH_MATERIAL
    return 1.0  # a material (paperwork, fill) with a unit: as common as two units


def _pairs(
    grams: float,
    names: list[str],
    means: list[float],
    pool: Mapping[str, int],
    pieces: Mapping[str, _Piece],
    noise_sigma_g: float,
) -> Iterable[tuple[tuple[str, ...], float]]:
    widest = max((pieces[n].sigma_g for n in names), default=0.0)
    window = 6 * math.hypot(noise_sigma_g, widest * math.sqrt(2))
    for i, first in enumerate(names):
        wanted = grams - means[i]
        lo = bisect.bisect_left(means, wanted - window, lo=i)
        hi = bisect.bisect_right(means, wanted + window, lo=i)
        for j in range(lo, hi):
            second = names[j]
            if second == first and pool[first] < 2:
                continue
            both = (pieces[first], pieces[second])
            yield (first, second), _likelihood(grams, both, noise_sigma_g)


def _likelihood(grams: float, pieces: Sequence[_Piece], noise_sigma_g: float) -> float:
    mean = sum(p.mean_g for p in pieces)
    sigma = math.sqrt(noise_sigma_g**2 + sum(p.sigma_g**2 for p in pieces)) or 1e-6
    z = (grams - mean) / sigma
    if abs(z) > 8:  # nothing a packing could come from: keep the beam for real candidates
        return 0.0
    return math.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
