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

When the packer scans units, each step is first paired with the unit(s) scanned since the steps
before it (`pair_scans`): a paired step puts most of its prior on the scanned unit(s) in the beam
search; a scanned unit no step ever matched names that SKU missing (`SCANNED_NOT_PLACED`), or,
when a step that fits nothing expected came in its place, holds the carton for review
(`SCANNED_WEIGHT_MISMATCH`: a look-alike, or a wrong catalog weight); and a step that was one
scanned unit beyond doubt is a clean sample of that SKU's weight (`InsertionSample`).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from station.domain import BoxType, Catalog
from station.scan_check import UnitScan, units_scanned
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
# Share of a step's prior on the unit(s) scanned just before it. Not 1: packers scan and then set
# something else down first, or scan two and insert them one by one.
_SCANNED_PRIOR = 0.9
# A step within this many standard deviations (scale noise and the pieces' spread) of pieces'
# weights "fits" them, for pairing a step with the scanned units.
_FITS_Z = 5.0
# A fast packer drops units before the scale settles: one step may carry up to this many units
# of the hand (each beyond the first as unlikely as `_TWO_AT_ONCE`), the first step also the box.
_MOST_AT_ONCE = 4
_HAND_SUBSETS_FROM = 8  # moves of three or more units are drawn from the oldest scans in hand
_HINT_FLOOR = 1e-3  # a scanned move this much less likely than the best is no hint
_FARTHEST_Z = 8.0  # a step further than this many spreads from pieces is not theirs at all
_LEAST_SIGMA_G = 1e-6  # the spread of pieces that claim none (and a scale without error)
_SQRT_2PI = math.sqrt(2 * math.pi)

# The moves the scans allow for one step, each with its share of `_SCANNED_PRIOR`.
Hint = tuple[tuple[tuple[str, ...], float], ...]

# A clean sample's step may not be this likely (relative to the scanned unit) to be a packing
# material's: the scan says which unit went in, but says nothing against the void fill.
_MATERIAL_RIVAL = 0.05

SCANNED_WEIGHT_MISMATCH = "insertion_scanned_weight_mismatch"
SCANNED_NOT_PLACED = "insertion_scanned_not_placed"


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
class InsertionSample:
    """A step that was exactly one unit of `sku`, scanned just before it and explained with at
    least `min_confidence`: a clean sample of the unit's weight (once the carton passes)."""

    sku: str
    grams: float
    at: float  # the step's time


@dataclass(frozen=True, slots=True)
class ScanConflict:
    """A scanned unit the steps contradict: its step weighed something else, or never came."""

    sku: str
    code: str  # SCANNED_WEIGHT_MISMATCH or SCANNED_NOT_PLACED
    message: str
    confidence: float  # that the scanned unit is not in the carton


@dataclass(frozen=True, slots=True)
class ScanPairing:
    """Steps matched to the unit scans before them (`pair_scans`)."""

    # Step index -> the pieces it was matched to: the scanned unit(s) first, then at most one
    # unscanned piece that went in with a scanned unit (the paperwork, another SKU's unit).
    moves: Mapping[int, tuple[str, ...]]
    scanned_before: frozenset[int]  # paired steps whose scan came before them (not after)
    # Paired steps whose every unit was scanned: the beam search's strong priors, with every
    # move of units in hand that fits the step (the scan says which units were in hand, not how
    # many went in at once). A step read as a scanned unit with an unscanned one is no such
    # hint: that is how a light unit scanned and then set aside would be "explained" as gone in
    # with the next one.
    hints: Mapping[int, Hint]
    conflicts: tuple[ScanConflict, ...]
    # Paired step index -> the packing materials (paperwork, fill) the walk had not yet seen go
    # in by then: what could have gone in with the scanned unit.
    materials_to_go: Mapping[int, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InsertionCheck:
    """The channel's report and the clean weight samples it found (kept until the verdict)."""

    report: ChannelReport
    samples: tuple[InsertionSample, ...] = ()


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
    scanned_moves: Mapping[int, Hint] | None = None,
    memo: BeamMemo | None = None,
) -> PackingExplanation:
    """Every step explained jointly (a beam search over whole packings, not step by step: an 8 g
    step later settles whether the first step was box + paperwork or box + earrings). Packings
    that put any step down to "something else" are pooled into one lost mass: the report only
    needs how likely it is that everything was explained.

    A packing is the tuple of pieces still to go in, one count per piece (what was placed is the
    rest), so moving a piece is one small tuple copy and equal packings meet in a dict.

    `scanned_moves` (step index -> the moves of scanned units, from `pair_scans`) puts
    `_SCANNED_PRIOR` of that step's prior on those moves.

    `memo` (one per carton) keeps the beam after every step: a later call over the same steps
    and more starts from the last step whose inputs are unchanged, so the explanation at close
    costs the steps since the last call, not the whole carton, with the same result."""
    pieces = _pieces(expected_units, catalog, box, materials)
    scanned_moves = scanned_moves or {}
    names = list(pieces)
    index = {name: i for i, name in enumerate(names)}
    initial = tuple(
        expected_units[n] if pieces[n].is_unit else 1 for n in names
    )  # every expected unit, the box and each material once
    setting = (tuple(pieces.values()), initial, beam_width)
    inputs = [
        (step, _step_noise(step, scale_error_at), scanned_moves.get(at))
        for at, step in enumerate(steps)
    ]
    checkpoints = memo.reuse(setting, inputs) if memo is not None else []
    beam: dict[tuple[int, ...], float] = {initial: 0.0}
    lost = -math.inf  # log of the pooled mass of packings with an unexplained step
    if checkpoints:
        beam, lost = checkpoints[-1].beam, checkpoints[-1].lost
    other = math.log(_SOMETHING_ELSE / _SOMETHING_ELSE_SPAN_G)
    # An empty beam explains no later step either (nothing left to extend).
    for at in range(len(checkpoints), len(steps) if beam else 0):
        step, noise, scanned = inputs[at]
        putting_in = step.delta_g > 0
        # What any packing could still put in (or take out), then the few moves worth trying.
        pool = {
            n: max(t[i] if putting_in else initial[i] - t[i] for t in beam)
            for n, i in index.items()
        }
        hypotheses = _hypotheses(abs(step.delta_g), pool, pieces, noise)
        if scanned and putting_in and all(n in pieces for move, _ in scanned for n in move):
            hypotheses = _with_scanned(hypotheses, scanned, step.delta_g, pieces, noise)
        else:
            scanned = None
        moves = [
            (tuple(index[n] for n in move), math.log(p))
            for move, p in _likely(hypotheses, keep=scanned)
        ]
        lost = _log_add(lost, _log_sum(beam.values())) + other
        grown: dict[tuple[int, ...], float] = {}
        for packing, log_p in beam.items():
            for move, log_move in moves:
                moved = _move(packing, initial, move, putting_in)
                if moved is not None:
                    grown[moved] = _log_add(grown.get(moved, -math.inf), log_p + log_move)
        beam = dict(heapq.nlargest(beam_width, grown.items(), key=lambda kv: kv[1]))
        checkpoints.append(_Checkpoint(inputs[at], beam, lost))
        if not beam:
            break
    if memo is not None:
        memo.keep(setting, checkpoints)
    # Each unit never seen going in is a unit missing: as unlikely as the prior says, so that
    # "the earrings went in with the mug" is weighed against "the earrings are not there".
    short = math.log(missing_prior)
    units = [index[n] for n in names if pieces[n].is_unit]
    always = [index[n] for n in names if not pieces[n].is_unit]
    scored = {t: log_p + short * sum(t[i] for i in units) for t, log_p in beam.items()}
    return _posterior(scored, lost, initial, index, always, list(expected_units))


_StepInput = tuple[WeightStep, float, Hint | None]  # the step, its noise, the scans' hint


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """The beam search after one step, and what that step was."""

    step: _StepInput
    beam: Mapping[tuple[int, ...], float]
    lost: float


class BeamMemo:
    """One carton's beam after each step (`explain_steps(memo=...)`): the daemon explains the
    steps as they come, so the close only adds the last ones. Safe across threads: each call
    reads the checkpoints once and replaces them once."""

    def __init__(self) -> None:
        self._kept: tuple[object, tuple[_Checkpoint, ...]] = ((), ())

    def reuse(self, setting: object, inputs: Sequence[_StepInput]) -> list[_Checkpoint]:
        """The checkpoints still valid for `inputs`: same pieces, and the same steps and hints
        up to there (a scan paired anew, or a corrected catalog weight, starts again there)."""
        kept_setting, checkpoints = self._kept
        if kept_setting != setting:
            return []
        valid = 0
        for checkpoint, step in zip(checkpoints, inputs, strict=False):
            if checkpoint.step != step:
                break
            valid += 1
        return list(checkpoints[:valid])

    def keep(self, setting: object, checkpoints: Sequence[_Checkpoint]) -> None:
        self._kept = (setting, tuple(checkpoints))


def _likely(
    hypotheses: Iterable[tuple[tuple[str, ...], float]],
    most: int = 12,
    keep: Hint | None = None,
) -> list[tuple[tuple[str, ...], float]]:
    """The moves worth trying: the likeliest few, none a million times less likely than the
    best (they could never win the beam, only slow it down), and the scanned moves `keep`
    whatever their rank (the beam must be able to follow the scans)."""
    everything = list(hypotheses)
    ranked = heapq.nlargest(most, everything, key=lambda hp: hp[1])
    if not ranked:
        return []
    floor = ranked[0][1] * 1e-6
    likely = [hp for hp in ranked if hp[1] >= floor]
    if keep is not None:
        wanted = {tuple(sorted(move)) for move, _ in keep}
        scanned = [hp for hp in everything if tuple(sorted(hp[0])) in wanted and hp[1] > 0]
        likely += [hp for hp in scanned if hp not in likely]
    return likely


def _with_scanned(
    hypotheses: Iterable[tuple[tuple[str, ...], float]],
    scanned: Hint,
    grams: float,
    pieces: Mapping[str, _Piece],
    noise_sigma_g: float,
) -> list[tuple[tuple[str, ...], float]]:
    """The step's hypotheses with `_SCANNED_PRIOR` of prior added to the scanned moves (shared
    as the hint says). Added,
    not taken from the other moves: when the walk paired the wrong step, the step's true move
    keeps its prior and the packing stays explained (taking 90% from every other move sent
    such cartons to "unexplained" and lost their missing light unit)."""
    mixed: dict[tuple[str, ...], float] = {}
    for move, p in hypotheses:
        sorted_move = tuple(sorted(move))
        mixed[sorted_move] = mixed.get(sorted_move, 0.0) + p
    for move, share in scanned:
        key = tuple(sorted(move))
        likelihood = _likelihood(grams, tuple(pieces[n] for n in move), noise_sigma_g)
        mixed[key] = mixed.get(key, 0.0) + _SCANNED_PRIOR * share * likelihood
    return list(mixed.items())


def _step_noise(step: WeightStep, scale_error_at: Callable[[float], float]) -> float:
    """One step's standard deviation from the scale: two readings, each within its maximum
    permissible error (uniform: error / sqrt(3))."""
    return math.hypot(scale_error_at(step.from_g), scale_error_at(step.to_g)) / 3**0.5


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
    scans: Sequence[UnitScan] = (),
    memo: InsertionMemo | None = None,
) -> InsertionCheck:
    """The per-insertion channel's report for a carton packed on the platter, given the unit
    scans made while it was packed (none: the packer did not scan units). `memo`: the same
    carton's earlier explanations, so that this one only adds the steps since (same result)."""
    if started_from_g is None or abs(started_from_g) > empty_band_g:
        return InsertionCheck(
            _unsure("insertion_not_watched", "Packing did not start on an empty platter.")
        )
    if not steps:
        return InsertionCheck(_unsure("insertion_none", "No insertion was seen on the scale."))
    materials = tuple(m for m in materials if m.mean_g > 0)
    pieces = _pieces(expected_units, catalog, box, materials)
    noises = [_step_noise(step, scale_error_at) for step in steps]
    memo = memo or InsertionMemo()
    pairing = pair_scans(
        steps, scans, pieces, catalog, noises, missing_prior, expected_units, memo.moves
    )
    explained = explain_steps(
        steps,
        expected_units,
        catalog,
        box,
        materials,
        scale_error_at,
        missing_prior,
        scanned_moves=pairing.hints,
        memo=memo.beam,
    )
    # A unit the channel cannot weigh (sold by weight, no catalog weight) may be in any step:
    # then no step can contradict a scan.
    weighed = all(sku in pieces for sku, n in expected_units.items() if n > 0)
    conflicts = pairing.conflicts if weighed else ()
    scanned = _conflict_findings(conflicts, expected_units, scans)
    conflicted = scanned.findings
    measurements = {
        "steps": float(len(steps)),
        "p_explained": explained.p_explained,
        "steps_paired_with_scans": float(len(pairing.scanned_before)),
    }
    if explained.p_explained < min_confidence:
        unexplained = Reason(
            "insertion_unexplained",
            f"Some of the {len(steps)} steps on the scale match nothing expected in this carton "
            f"(explained with {explained.p_explained:.0%} confidence).",
            CHANNEL,
        )
        if not conflicted:
            return InsertionCheck(_unsure(unexplained.code, unexplained.message))
        # The steps as a whole are not explained, but a scanned unit's own step contradicts
        # it: that much the channel stands by (the wrong variant's step is the unexplained one).
        report = ChannelReport(
            CHANNEL,
            ChannelState.OK,
            tuple(conflicted[sku] for sku in sorted(conflicted)),
            reasons=(*scanned.reasons, unexplained),
            review=scanned.review,
            measurements=measurements,
        )
        return InsertionCheck(report)
    findings = {}
    for sku, n in sorted(expected_units.items()):
        counted, p = explained.likeliest(sku)
        findings[sku] = _finding(sku, n, counted, p * explained.p_explained)
    for sku, finding in conflicted.items():
        # The scans add a conflict; they never weaken the steps' own surer missing finding.
        joint = findings.get(sku)
        if not (
            joint is not None
            and joint.status is FindingStatus.MISSING
            and joint.confidence >= finding.confidence
        ):
            findings[sku] = finding
    report = ChannelReport(
        CHANNEL,
        ChannelState.OK,
        tuple(findings[sku] for sku in sorted(findings)),
        reasons=scanned.reasons,
        review=scanned.review,
        measurements=measurements,
    )
    # Samples only from a carton the channel found whole (a blocked one never teaches anyway).
    confirmed = frozenset(
        sku
        for sku, f in findings.items()
        if f.status is FindingStatus.CONFIRMED and f.confidence >= min_confidence
    )
    samples = (
        ()
        if conflicted
        else _clean_samples(
            steps,
            pairing,
            pieces,
            noises,
            confirmed,
            memo.samples.for_setting(pieces, min_confidence),
        )
    )
    return InsertionCheck(report, samples)


def _finding(sku: str, expected: int, counted: int, confidence: float) -> SkuFinding:
    detail = f"{counted} of {expected} seen going in"
    if counted == expected:
        return SkuFinding(sku, FindingStatus.CONFIRMED, expected, counted, confidence, detail)
    status = FindingStatus.MISSING if counted < expected else FindingStatus.EXTRA
    return SkuFinding(sku, status, expected, counted, confidence, detail)


def _unsure(code: str, message: str) -> ChannelReport:
    return ChannelReport(CHANNEL, ChannelState.UNSURE, reasons=(Reason(code, message, CHANNEL),))


# -- unit scans ------------------------------------------------------------------------------


def pair_scans(
    steps: Sequence[WeightStep],
    scans: Sequence[UnitScan],
    pieces: Mapping[str, _Piece],
    catalog: Catalog,
    noises: Sequence[float],
    missing_prior: float,
    expected_units: Mapping[str, int],
    memo: MoveMemo | None = None,
) -> ScanPairing:
    """Each step matched to the units scanned before it and not yet matched (the way a
    checkweighing line checks the gain after each part), walking the steps in time order.

    A step takes the units in hand it fits (one, two, or one with one other piece) when that is
    likelier than its being some other piece of the carton, with `_SCANNED_PRIOR` of the prior
    on the scanned units; otherwise they stay in hand (the packer scanned, then set something
    else down first). At the end a unit still in hand is matched to a step nothing was scanned
    for that fits it (scanned after it went in); failing that its step never came, a conflict
    (`SCANNED_WEIGHT_MISMATCH` when a step that fitted nothing expected came while it was in
    hand: a look-alike, or a wrong catalog weight; `SCANNED_NOT_PLACED` otherwise), as sure as
    the unit could not have gone in unseen with another step's pieces.

    `memo`: the same carton's walk so far. The walk up to a step depends only on the steps and
    the scans made by then, so a call with the same ones resumes after them (same result)."""
    known = dict(pieces)  # a scanned SKU not on this carton is paired too (its step is its own)
    for scan in scans:
        item = catalog.items.get(scan.sku)
        if scan.sku not in known and item and item.weighable and item.unit_weight_g is not None:
            known[scan.sku] = _Piece(scan.sku, item.unit_weight_g, item.weight_spread_g, True)
    memo = memo or MoveMemo()
    queue = tuple(
        sorted(
            ((scan.at, scan.sku) for scan in scans if scan.sku in known for _ in range(scan.units)),
            key=lambda scan: scan[0],
        )
    )
    setting = (known, dict(pieces), dict(expected_units))
    state = memo.resume(setting, steps, noises, queue) or _WalkState.start(pieces, expected_units)
    walk = _ScanWalk(steps, queue, known, pieces, noises, expected_units, memo.for_pieces(known))
    walk.walk(state)
    memo.keep(setting, steps, noises, queue, state)
    return walk.finish(state, missing_prior)


@dataclass(slots=True)
class _WalkState:
    """Where `pair_scans`' walk is after the first `walked` steps."""

    walked: int
    taken: int  # scans of the queue in the packer's hand by then (or matched already)
    in_hand: list[str]
    moves: dict[int, tuple[str, ...]]
    assigned: dict[int, tuple[str, ...]]  # every step: paired, or the likeliest that fits
    unpaired: list[int]  # steps that went in with nothing scanned for them
    late: set[int]  # steps paired with units scanned after them
    hints: dict[int, Hint]
    materials_to_go: dict[int, frozenset[str]]
    odd: dict[str, float]  # SKU in hand -> a step that fitted nothing expected meanwhile
    # What is still to go in, followed greedily, so that the paperwork that went down with the
    # box (or a unit already in) is not offered again as what went in with a scanned unit.
    to_go: dict[str, int]

    @classmethod
    def start(cls, pieces: Mapping[str, _Piece], expected_units: Mapping[str, int]) -> _WalkState:
        to_go = {name: expected_units.get(name, 1) for name in pieces}
        return cls(0, 0, [], {}, {}, [], set(), {}, {}, {}, to_go)

    def copy(self) -> _WalkState:
        return _WalkState(
            self.walked,
            self.taken,
            list(self.in_hand),
            dict(self.moves),
            dict(self.assigned),
            list(self.unpaired),
            set(self.late),
            dict(self.hints),
            dict(self.materials_to_go),
            dict(self.odd),
            dict(self.to_go),
        )


class _ScanWalk:
    """`pair_scans`' walk over one call's steps and scans, on a `_WalkState`."""

    def __init__(
        self,
        steps: Sequence[WeightStep],
        queue: Sequence[tuple[float, str]],
        known: Mapping[str, _Piece],
        pieces: Mapping[str, _Piece],
        noises: Sequence[float],
        expected_units: Mapping[str, int],
        readings: StepReadings,
    ) -> None:
        self.steps, self.queue, self.noises = steps, queue, noises
        self.known, self.pieces, self.expected_units = known, pieces, expected_units
        self.readings = readings
        # The platter started empty: the first step that put something in holds the box.
        self.first_in = next((i for i, step in enumerate(steps) if step.delta_g > 0), None)

    def walk(self, state: _WalkState) -> None:
        """The steps not yet walked, in time order, each after the scans made by then."""
        queue, to_go = self.queue, state.to_go
        for i in range(state.walked, len(self.steps)):
            step = self.steps[i]
            while state.taken < len(queue) and queue[state.taken][0] <= step.at:
                state.in_hand.append(queue[state.taken][1])
                state.taken += 1
            state.walked = i + 1
            # A unit in hand whose units all went in already was scanned after it went in.
            if any(to_go.get(sku) == 0 for sku in state.in_hand):
                self.pair_late(state)
            if step.delta_g <= 0:
                self.taken_out(state, i)
            else:
                self.put_in(state, i)

    def taken_out(self, state: _WalkState, i: int) -> None:
        """A unit taken out (to rearrange; it was scanned when it first went in): it is to go
        in again."""
        to_go = state.to_go
        out = _best_piece(
            -self.steps[i].delta_g,
            {n: p for n, p in self.pieces.items() if to_go[n] < self.expected_units.get(n, 1)},
            self.noises[i],
        )
        if out is not None:
            to_go[out.name] += 1

    def put_in(self, state: _WalkState, i: int) -> None:
        grams, noise, to_go = self.steps[i].delta_g, self.noises[i], state.to_go
        possible = self.offered(state)
        fitting = self.fitting_moves(state, i, possible) if state.in_hand else []
        if not fitting:
            state.unpaired.append(i)
            if state.in_hand and _best_piece(grams, self.known, noise) is None:
                for sku in state.in_hand:
                    state.odd.setdefault(sku, grams)
            pool = {n: min(to_go.get(n, 2), 2) for n in possible}
            move = self.readings.unscanned(grams, noise, possible, pool, bool(to_go.get("box")))
        else:
            move = state.moves[i] = self.take(state, i, fitting, self.box_first(i, possible))
            state.materials_to_go[i] = frozenset(
                n for n, p in self.pieces.items() if not p.is_unit and n != "box" and to_go[n] > 0
            )
        state.assigned[i] = move
        for name in move:
            if name in to_go:
                to_go[name] = max(0, to_go[name] - 1)

    def offered(self, state: _WalkState) -> dict[str, _Piece]:
        """What a step may be: the units in hand and whatever is still to go in."""
        to_go, in_hand = state.to_go, state.in_hand
        return {n: p for n, p in self.known.items() if to_go.get(n, 1) > 0 or n in in_hand}

    def fitting_moves(
        self, state: _WalkState, j: int, possible: Mapping[str, _Piece], late: bool = False
    ) -> Sequence[tuple[tuple[str, ...], float]]:
        """The moves of units in hand that fit step `j`, likeliest first."""
        with_box = self.box_first(j, possible, late)
        grams, noise = self.steps[j].delta_g, self.noises[j]
        return self.readings.scanned(grams, state.in_hand, possible, noise, with_box)

    def box_first(self, j: int, possible: Mapping[str, _Piece], late: bool = False) -> bool:
        # Units scanned before the first step may have gone down with the box; a unit scanned
        # after it is not read into the box's step (that would hide one set aside).
        return j == self.first_in and "box" in possible and not late

    def take(
        self,
        state: _WalkState,
        j: int,
        fitting: Sequence[tuple[tuple[str, ...], float]],
        with_box: bool,
    ) -> tuple[str, ...]:
        """The likeliest move leaves the hand; the step's hint if its units were all in it."""
        hand = Counter(state.in_hand)
        move = fitting[0][0]
        _take(state.in_hand, move)
        if with_box or _all_in(move, hand):
            state.hints[j] = _hint(fitting, hand, with_box)
        return move

    def pair_late(self, state: _WalkState) -> None:
        """Units in hand matched to steps nothing was scanned for, latest first (what the walk
        read into such a step is on offer again: it is being read anew)."""
        offer = self.offered(state)  # changes only when a unit leaves the hand
        for j in reversed(state.unpaired):
            if not state.in_hand:
                return
            possible = {**offer, **{n: self.known[n] for n in state.assigned[j]}}
            fitting = self.fitting_moves(state, j, possible, late=True)
            if fitting:
                state.unpaired.remove(j)
                state.moves[j] = state.assigned[j] = self.take(state, j, fitting, with_box=False)
                state.late.add(j)
                offer = self.offered(state)

    def finish(self, state: _WalkState, missing_prior: float) -> ScanPairing:
        """The scans made after the last step paired late, and the units never placed."""
        state.in_hand += [sku for _, sku in self.queue[state.taken :]]
        self.pair_late(state)
        # A unit still in hand whose SKU went in as often as it was scanned (up to the order)
        # went in without lining up with its scan (in a pair the walk read otherwise): no
        # conflict.
        placed = Counter(name for move in state.assigned.values() for name in move)
        scanned = Counter(sku for _, sku in self.queue)
        conflicts = []
        for sku in state.in_hand:
            expected = self.expected_units.get(sku)
            if expected is None or placed[sku] >= min(scanned[sku], expected):
                continue
            placed[sku] += 1
            piece = self.known[sku]
            hidden = sum(
                self.readings.hiding_odds(
                    piece, step.delta_g, state.moves.get(j), self.known, self.noises[j]
                )
                for j, step in enumerate(self.steps)
                if step.delta_g > 0
            )
            confidence = missing_prior / (missing_prior + (1 - missing_prior) * hidden)
            conflicts.append(_unplaced(sku, piece, state.odd.get(sku), confidence))
        moves = state.moves
        return ScanPairing(
            moves,
            frozenset(moves) - state.late,
            state.hints,
            tuple(conflicts),
            state.materials_to_go,
        )


def _unscanned_move(
    grams: float,
    noise_sigma_g: float,
    possible: Mapping[str, _Piece],
    pool: Mapping[str, int],
    box_to_go: bool,
) -> tuple[str, ...]:
    """What a step nothing scanned was paired with likeliest was: the likeliest one or two
    pieces still to go in (`pool`: how many of each may) that fit it, the box first while it
    is still to go in."""
    fitting = [
        move
        for move, _ in _likely(_hypotheses(grams, pool, possible, noise_sigma_g))
        if _fits(grams, tuple(possible[n] for n in move), noise_sigma_g)
    ]
    # The box goes down before anything goes in (item scans come after the box's).
    boxed = [m for m in fitting if "box" in m] if box_to_go else []
    return (boxed or fitting or [()])[0]


class StepReadings:
    """`pair_scans`' readings of steps from one set of known pieces, remembered by everything
    else they depend on: a later walk over the same steps looks them up."""

    def __init__(self, known: Mapping[str, _Piece]) -> None:
        self.known = tuple(known.values())
        self._unscanned: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._scanned: dict[tuple[object, ...], tuple[tuple[tuple[str, ...], float], ...]] = {}
        self._hiding: dict[tuple[object, ...], float] = {}

    def unscanned(
        self,
        grams: float,
        noise_sigma_g: float,
        possible: Mapping[str, _Piece],
        pool: Mapping[str, int],
        box_to_go: bool,
    ) -> tuple[str, ...]:
        """`_unscanned_move` (`possible`: the known pieces `pool` names)."""
        key = (grams, noise_sigma_g, box_to_go, *pool.items())
        move = self._unscanned.get(key)
        if move is None:
            move = _unscanned_move(grams, noise_sigma_g, possible, pool, box_to_go)
            self._unscanned[key] = move
        return move

    def scanned(
        self,
        grams: float,
        in_hand: Sequence[str],
        possible: Mapping[str, _Piece],
        noise_sigma_g: float,
        box_first: bool,
    ) -> tuple[tuple[tuple[str, ...], float], ...]:
        """`_scanned_moves` (`possible`: known pieces)."""
        key = (grams, noise_sigma_g, box_first, tuple(in_hand), *possible)
        moves = self._scanned.get(key)
        if moves is None:
            moves = tuple(_scanned_moves(grams, in_hand, possible, noise_sigma_g, box_first))
            self._scanned[key] = moves
        return moves

    def hiding_odds(
        self,
        piece: _Piece,
        grams: float,
        move: tuple[str, ...] | None,
        known: Mapping[str, _Piece],
        noise_sigma_g: float,
    ) -> float:
        """`_hiding_odds` (`known`: these known pieces): asked of every step at each call while
        a scanned unit waits for its step."""
        key = (piece.name, grams, move, noise_sigma_g)
        odds = self._hiding.get(key)
        if odds is None:
            odds = self._hiding[key] = _hiding_odds(piece, grams, move, known, noise_sigma_g)
        return odds


class MoveMemo:
    """`pair_scans`' walk over one carton's steps, kept between calls: a call resumes after the
    steps and scans it shares with the last one; a step read from the same pieces still to go in
    (or the same units in hand) is not searched again either. Safe across threads: a call takes
    a copy of the walk and replaces it once; one that reads from other pieces gets its own."""

    def __init__(self) -> None:
        self._latest = StepReadings({})
        self._walked: _WalkCheckpoint | None = None

    def for_pieces(self, known: Mapping[str, _Piece]) -> StepReadings:
        latest = self._latest
        if latest.known != tuple(known.values()):
            latest = self._latest = StepReadings(known)
        return latest

    def resume(
        self,
        setting: object,
        steps: Sequence[WeightStep],
        noises: Sequence[float],
        queue: Sequence[tuple[float, str]],
    ) -> _WalkState | None:
        """A copy of the kept walk if it holds for these steps and scans: the same pieces, the
        same steps up to where it stopped, and the same scans made by then (a scan reported
        late, a step gone or a catalog weight corrected starts again from the first step)."""
        kept = self._walked
        if kept is None or kept.setting != setting:
            return None
        walked, taken = kept.state.walked, kept.state.taken
        if (
            len(steps) < walked
            or tuple(steps[:walked]) != kept.steps
            or tuple(noises[:walked]) != kept.noises
            or tuple(queue[:taken]) != kept.queue
            or (taken < len(queue) and walked > 0 and queue[taken][0] <= steps[walked - 1].at)
        ):
            return None
        return kept.state.copy()

    def keep(
        self,
        setting: object,
        steps: Sequence[WeightStep],
        noises: Sequence[float],
        queue: Sequence[tuple[float, str]],
        state: _WalkState,
    ) -> None:
        walked, taken = state.walked, state.taken
        self._walked = _WalkCheckpoint(
            setting,
            tuple(steps[:walked]),
            tuple(noises[:walked]),
            tuple(queue[:taken]),
            state.copy(),
        )


@dataclass(frozen=True, slots=True)
class _WalkCheckpoint:
    """The walk after its steps, and what it depended on (`MoveMemo.resume`)."""

    setting: object
    steps: tuple[WeightStep, ...]
    noises: tuple[float, ...]
    queue: tuple[tuple[float, str], ...]
    state: _WalkState


def _take(in_hand: list[str], move: tuple[str, ...]) -> list[str]:
    """The scanned units of `move` leave the packer's hand (an unscanned piece was not in it);
    returns those that did."""
    taken = []
    for name in move:
        if name in in_hand:
            in_hand.remove(name)
            taken.append(name)
    return taken


def _scanned_moves(
    grams: float,
    in_hand: Sequence[str],
    pieces: Mapping[str, _Piece],
    noise_sigma_g: float,
    box_first: bool,
) -> list[tuple[tuple[str, ...], float]]:
    """The moves that fit the step and hold units in hand, likeliest first, each with its
    prior; none when none fits or the step is likelier one piece of the carton that was not
    scanned. `box_first`: the step is the first to put anything in, so every move holds the box
    (a fast packer's first units may go in before the scale settled on the box)."""
    held = list(dict.fromkeys(in_hand))
    scored = []
    for move, prior in _hand_moves(in_hand, pieces, box_first):
        chosen = tuple(pieces[n] for n in move)
        if _fits(grams, chosen, noise_sigma_g):
            scored.append(
                (move, prior, _SCANNED_PRIOR * prior * _likelihood(grams, chosen, noise_sigma_g))
            )
    if not scored:
        return []
    scored.sort(key=lambda c: c[2], reverse=True)
    unscanned = _best_piece(
        grams, {n: p for n, p in pieces.items() if n not in held}, noise_sigma_g
    )
    if unscanned is not None:
        one = (1 - _SCANNED_PRIOR) * (1 - _TWO_AT_ONCE) / len(pieces)
        if one * _likelihood(grams, (unscanned,), noise_sigma_g) > scored[0][2]:
            return []
    floor = scored[0][2] * _HINT_FLOOR
    return [(move, prior) for move, prior, score in scored if score >= floor]


def _hand_moves(
    in_hand: Sequence[str], pieces: Mapping[str, _Piece], box_first: bool
) -> Iterable[tuple[tuple[str, ...], float]]:
    """Every move of units in hand a step may be, with its prior: one unit, several at once
    (each beyond the first as unlikely as `_TWO_AT_ONCE`), or one with one piece nothing was
    scanned for; on the first step, the box (and perhaps a packing material) with units."""
    seen: set[tuple[str, ...]] = set()
    for size in range(1, _MOST_AT_ONCE + 1):
        pool = in_hand if size <= 2 else in_hand[:_HAND_SUBSETS_FROM]
        prior = 1 - _TWO_AT_ONCE if size == 1 else _TWO_AT_ONCE ** (size - 1)
        for units in itertools.combinations(pool, size):
            key = tuple(sorted(units))
            if key in seen:
                continue
            seen.add(key)
            if not box_first:
                yield units, prior
                continue
            # The packer scans the box and sets it down empty, almost always.
            yield ("box", *units), prior * _BOX_WITH_UNIT
            for material in pieces:
                if not pieces[material].is_unit and material != "box":
                    yield ("box", material, *units), prior * _BOX_WITH_UNIT * _TWO_AT_ONCE
    if box_first:
        return
    held = list(dict.fromkeys(in_hand))
    for sku in held:
        for other in pieces:
            # another SKU not in hand, or a second unit of this one that was not scanned
            if other not in held or (other == sku and in_hand.count(sku) == 1):
                yield (sku, other), _TWO_AT_ONCE * _unscanned_weight(pieces[sku], pieces[other])


def _all_in(move: tuple[str, ...], hand: Counter[str]) -> bool:
    """Every piece of `move` was in the packer's hand (scanned)."""
    return all(hand[n] >= count for n, count in Counter(move).items())


def _hint(
    fitting: Sequence[tuple[tuple[str, ...], float]], hand: Counter[str], with_box: bool
) -> Hint:
    """The fitting moves of scanned units (with the box: every move of the first step holds
    it), each with its prior's share."""
    scanned = [(move, prior) for move, prior in fitting if with_box or _all_in(move, hand)]
    total = sum(prior for _, prior in scanned)
    return tuple((move, prior / total) for move, prior in scanned)


def _unscanned_weight(scanned: _Piece, other: _Piece) -> float:
    """Prior weight of a scanned unit going in with a piece nothing was scanned for: the
    paperwork as often as with any unit, another unit only as often as a unit goes unscanned
    while the packer scans (a unit in hand is likelier)."""
    weight = _pair_weight(scanned, other)
    return weight * (1 - _SCANNED_PRIOR) if other.is_unit else weight


def _best_piece(grams: float, pieces: Mapping[str, _Piece], noise_sigma_g: float) -> _Piece | None:
    """The one piece that fits the step best, if any fits."""
    fitting = [p for p in pieces.values() if _fits(grams, (p,), noise_sigma_g)]
    return max(fitting, key=lambda p: _likelihood(grams, (p,), noise_sigma_g), default=None)


def _hiding_odds(
    piece: _Piece,
    grams: float,
    move: tuple[str, ...] | None,
    pieces: Mapping[str, _Piece],
    noise_sigma_g: float,
) -> float:
    """Odds that `piece` went in unseen in this step, against the step being what the walk
    read: with what made it (a light unit hides in a heavy one's spread), or in place of one of
    its units (the walk matched the wrong one of two that fit); a heavy unit hides nowhere."""
    if move is None:
        best = _best_piece(grams, pieces, noise_sigma_g)
        if best is None:
            return 0.0
        read = (best,)
    else:
        read = tuple(pieces[n] for n in move)
    without = _likelihood(grams, read, noise_sigma_g)
    if without <= 0:
        return 0.0
    odds = _TWO_AT_ONCE / (1 - _TWO_AT_ONCE) * _likelihood(grams, (*read, piece), noise_sigma_g)
    for i, other in enumerate(read):
        if other.is_unit and other.name != piece.name:
            swapped = (*read[:i], piece, *read[i + 1 :])
            odds += _likelihood(grams, swapped, noise_sigma_g)
    return odds / without


def _fits(grams: float, pieces: Sequence[_Piece], noise_sigma_g: float) -> bool:
    mean = sum(p.mean_g for p in pieces)
    sigma = math.sqrt(noise_sigma_g**2 + sum(p.sigma_g**2 for p in pieces)) or 1e-6
    return abs(grams - mean) <= _FITS_Z * sigma


def _unplaced(sku: str, piece: _Piece, odd_g: float | None, confidence: float) -> ScanConflict:
    if odd_g is None:
        return ScanConflict(
            sku,
            SCANNED_NOT_PLACED,
            f"{sku} was scanned but no step on the scale weighed like it "
            f"({piece.mean_g:.0f} ± {piece.sigma_g:.0f} g): scanned, then not put in?",
            confidence,
        )
    return ScanConflict(
        sku,
        SCANNED_WEIGHT_MISMATCH,
        f"After {sku} was scanned the scale rose {odd_g:.0f} g, and no step weighed like "
        f"{sku} ({piece.mean_g:.0f} ± {piece.sigma_g:.0f} g): a look-alike variant or another "
        "unit put in its place?",
        confidence,
    )


@dataclass(frozen=True, slots=True)
class _ScanFindings:
    findings: dict[str, SkuFinding]
    reasons: tuple[Reason, ...]  # why a SKU is named missing
    review: tuple[Reason, ...]  # what a person must look at


def _conflict_findings(
    conflicts: Iterable[ScanConflict], expected_units: Mapping[str, int], scans: Iterable[UnitScan]
) -> _ScanFindings:
    """Per expected SKU, the units its scans claim but the steps deny. Scans beyond the ordered
    units (a unit scanned twice) are not claims: a SKU is short only when fewer of its scanned
    units went in than were ordered.

    A unit no step carried is missing. A unit whose step weighed something else is held for a
    person instead: a look-alike put in its place, or the catalog's weight for it is wrong (a
    new site's master data often is, and learned weights must still learn from such cartons)."""
    scanned = units_scanned(scans)
    by_sku: dict[str, list[ScanConflict]] = {}
    for conflict in conflicts:
        if conflict.sku in expected_units:
            by_sku.setdefault(conflict.sku, []).append(conflict)
    findings: dict[str, SkuFinding] = {}
    reasons: list[Reason] = []
    review: list[Reason] = []
    for sku, found in sorted(by_sku.items()):
        expected = expected_units[sku]
        short = len(found) - max(0, scanned.get(sku, 0) - expected)
        if short <= 0:
            continue
        confidence = min(c.confidence for c in found)
        detail = "; ".join(c.message for c in found)
        said = [Reason(c.code, c.message, CHANNEL, sku) for c in found]
        observed = max(expected - short, 0)
        if any(c.code == SCANNED_NOT_PLACED for c in found):
            status = FindingStatus.MISSING
            reasons += said
        else:
            status = FindingStatus.UNCERTAIN
            review += said
        findings[sku] = SkuFinding(sku, status, expected, observed, confidence, detail)
    return _ScanFindings(findings, tuple(reasons), tuple(review))


def _clean_samples(
    steps: Sequence[WeightStep],
    pairing: ScanPairing,
    pieces: Mapping[str, _Piece],
    noises: Sequence[float],
    confirmed: frozenset[str],
    judge: SampleJudge,
) -> tuple[InsertionSample, ...]:
    """Steps that were one unit of a `confirmed` SKU scanned just before them and that `judge`
    finds clean."""
    samples = []
    for i in sorted(pairing.scanned_before):
        move = pairing.moves[i]
        if len(move) != 1 or move[0] not in confirmed:
            continue
        to_go = pairing.materials_to_go.get(i, frozenset())
        if judge.clean(steps[i], noises[i], pieces[move[0]], to_go):
            samples.append(InsertionSample(move[0], steps[i].delta_g, steps[i].at))
    return tuple(samples)


class SampleJudge:
    """Whether a step that was one scanned unit is a clean sample of its weight: at least
    `min_confidence` given the step's weight against every one or two pieces of the carton (and
    something else), no packing material could have made it, nor gone in with it while the
    walk had not seen that go in (a unit whose spread hides the paperwork gives no sample then:
    its step cannot say whether the paperwork was in it). Each step is judged once per carton
    and setting (the close asks again about every step the daemon asked about while packing)."""

    def __init__(self, pieces: Mapping[str, _Piece], min_confidence: float) -> None:
        self.pieces = dict(pieces)
        self.min_confidence = min_confidence
        self._judged: dict[tuple[object, ...], bool] = {}

    def clean(
        self, step: WeightStep, noise: float, unit: _Piece, materials_to_go: frozenset[str]
    ) -> bool:
        key = (step, noise, unit.name, materials_to_go)
        judged = self._judged.get(key)
        if judged is None:
            judged = self._judged[key] = self._judge(step.delta_g, noise, unit, materials_to_go)
        return judged

    def _judge(
        self, grams: float, noise: float, unit: _Piece, materials_to_go: frozenset[str]
    ) -> bool:
        pieces = self.pieces
        own = _likelihood(grams, (unit,), noise)
        # The fill or the paperwork alone (the walk is unsure where they went), or one still
        # to go in going in with the unit: nobody scans those.
        if any(
            _likelihood(grams, (p,), noise) >= _MATERIAL_RIVAL * own
            or (
                p.name in materials_to_go
                and _likelihood(grams, (unit, p), noise) >= _MATERIAL_RIVAL * own
            )
            for p in pieces.values()
            if not p.is_unit and p.name != "box"  # the box was down before any unit's scan
        ):
            return False
        move = (unit.name,)
        pool = dict.fromkeys(pieces, 2)
        hypotheses = _with_scanned(
            _hypotheses(grams, pool, pieces, noise), ((move, 1.0),), grams, pieces, noise
        )
        total = sum(p for _, p in hypotheses) + _SOMETHING_ELSE / _SOMETHING_ELSE_SPAN_G
        own = sum(p for m, p in hypotheses if m == move)
        return total > 0 and own / total >= self.min_confidence


class SampleMemo:
    """One carton's `SampleJudge`, kept while the pieces and the confidence stay the same.
    Safe across threads: the judge is replaced in one assignment, and judging twice is harmless."""

    def __init__(self) -> None:
        self._judge = SampleJudge({}, 1.0)

    def for_setting(self, pieces: Mapping[str, _Piece], min_confidence: float) -> SampleJudge:
        judge = self._judge
        if judge.pieces != pieces or judge.min_confidence != min_confidence:
            judge = self._judge = SampleJudge(pieces, min_confidence)
        return judge


@dataclass(frozen=True, slots=True)
class InsertionMemo:
    """One carton's explanations so far (`evaluate_insertions(memo=...)`)."""

    beam: BeamMemo = field(default_factory=BeamMemo)
    moves: MoveMemo = field(default_factory=MoveMemo)
    samples: SampleMemo = field(default_factory=SampleMemo)


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
    # Only pieces within `_FARTHEST_Z` spreads of the step can have a likelihood at all (the
    # window a hair wider than that: `_likelihood` draws the exact line, with its own rounding).
    widest = max((pieces[n].sigma_g for n in names), default=0.0)
    reach = _FARTHEST_Z * max(math.hypot(noise_sigma_g, widest), _LEAST_SIGMA_G) * (1 + 1e-9)
    near = slice(
        bisect.bisect_left(means, grams - reach), bisect.bisect_right(means, grams + reach)
    )
    for n in names[near]:
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
    mean = spread = 0.0  # one loop, not two sums: the beam search's hottest line
    for piece in pieces:
        mean += piece.mean_g
        spread += piece.sigma_g**2
    sigma = math.sqrt(noise_sigma_g**2 + spread) or _LEAST_SIGMA_G
    z = (grams - mean) / sigma
    if abs(z) > _FARTHEST_Z:  # nothing a packing could come from: keep the beam for real ones
        return 0.0
    return math.exp(-0.5 * z * z) / (sigma * _SQRT_2PI)
