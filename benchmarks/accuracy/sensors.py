"""Channel simulators: a generated carton -> the raw evidence each channel's real, pure code reads.

The simulators stop where the station's own code begins:

- weight: the settled gross reading (real weights + scale noise, rounded to the division) as a
  `WeightMeasurement` -> `station.weight_check.evaluate_weight`;
- RFID: `TagRead`s of the decisive window (tags in the box, a unit left beside it, other orders'
  tags on the table) -> `rfid.window.filter_window` -> `station.rfid_check.rfid_report`;
- vision: one `InsertionObservation` per insertion (new items counted, codes decoded) ->
  `vision.report.build_vision_report`. The count error is calibrated from the shipped model card
  (`VisionModel.from_card`); barcodes are read from units that face up and are not yet covered;
- per-insertion weight: the settled `WeightStep`s while packing (box, units one or two at a time,
  a unit taken out and put back, paperwork, void fill) -> `station.insertion_check.
  evaluate_insertions`;
- unit scans: what the packer scanned when the carton's plan says they must scan a SKU, each at
  its time among the insertion steps (`Station.unit_scans`) -> `station.scan_check.
  evaluate_scans` (counted as the session counts them) and `evaluate_insertions`, which pairs
  each step with the units scanned before it (in evaluate.py: the plan is the mix's).

Every random draw comes from a generator seeded by (seed, carton, channel), so a carton's evidence
does not depend on which other cartons or channel mixes were run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from benchmarks.accuracy.world import Carton, ErrorKind, Fault, Unit, World, poisson
from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.identity import EpcSkuResolver
from rfid.reads import TagRead
from rfid.window import filter_window
from scale.weighing import scale_error_g
from station.domain import ItemKind
from station.insertion_check import (
    InsertionCheck,
    InsertionMemo,
    WeightStep,
    evaluate_insertions,
)
from station.rfid_check import ReaderProblem, rfid_report
from station.scan_check import UnitScan
from station.verification import ChannelReport, ChannelState
from station.weight_check import (
    ScaleState,
    WeightCheckConfig,
    WeightMeasurement,
    absence_detection,
    evaluate_weight,
    lookalike_detection,
)
from vision.barcodes import CodeRead
from vision.evaluate import STEP_UNITS
from vision.observe import InsertionObservation, PutBackGuard, TakeOut, TakeOuts
from vision.report import build_vision_report, put_back_guard

CARD = Path(__file__).resolve().parents[2] / "models" / "item_counter.card.json"
WINDOW = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-55),), min_seen_count=5
)
INSERTION_CONFIDENCE = 0.9  # the station's policy.min_confidence, as build_channels passes it
ZERO_BAND_G = 10.0  # the scale's default zero band: packing watched from an empty platter
_UNSURE_SCALE = (ScaleState.UNSTABLE, ScaleState.ZERO_DRIFT, ScaleState.OVER_CAPACITY)


# Issue 4's target is 98% exact counts on held-out scenes of up to 8 items.
TARGET_MEAN_EXACT = 0.98


# Second looks a packer gives one put-back at the most before going on (an assumption).
SECOND_LOOKS = 3


class StepUnits(NamedTuple):
    """What the weights said about the step an insertion's frame was taken for, as the
    station's vision channel passes it (`InsertionAccumulator.add`): a unit the camera counts
    went in (`unit_in`), and no two of them could have (`at_most_one`; a bound of two or more
    is modelled as none: the card measures one unit per step)."""

    unit_in: bool
    at_most_one: bool


UNIT_IN = StepUnits(unit_in=True, at_most_one=False)
# The card's per-insertion table for each (`insertion_errors_by_visible` is UNIT_IN's).
TABLES = {
    StepUnits(unit_in, most_units == 1): table
    for table, (unit_in, most_units) in STEP_UNITS.items()
}


@dataclass(frozen=True, slots=True)
class VisionModel:
    """The counter's per-insertion error, calibrated from the model card.

    Where the card has it (`evaluation.insertions`, written by `python -m vision.evaluate`), the
    error is measured directly: cartons of unseen designs packed one unit per insertion and
    counted by the station's own InsertionAccumulator, tallied per insertion by the number of
    items visible v. hazard(v) is the share of those insertions not counted as exactly one new
    item, made non-decreasing in v (pooled adjacent violators: a few dozen insertions per v).

    Older cards have only single-scene figures: exact-count accuracy acc(N) per true item count.
    An item the model cannot see is then assumed lost once, when it goes in, so packing N units
    one by one counts exactly with probability prod over v = 1..N of (1 - hazard(v)) = acc(N):
    hazard(v) = 1 - acc(v) / acc(v - 1), acc made non-increasing first.

    Crowding above the largest measured count keeps its last hazard. An error is an under-count
    or an over-count of one or two items in the measured proportions.
    """

    name: str
    hazard: tuple[float, ...]  # index v - 1: chance the insertion seen with v items miscounts
    errors: tuple[tuple[int, float], ...]  # (error, share) among miscounted insertions
    # (items counted, share) in a frame with nothing new (the card's close frames; the paperwork,
    # the fill and a unit put back are assumed to count like it). Older cards: none.
    repeat: tuple[tuple[int, float], ...] = ((0, 1.0),)
    # Chance a put-back frame stands (adds nothing), by whether the item set down hid units
    # (the card's `evaluation.put_backs`: "fair_hid_0", "fair_hid_1+"). Older cards: None for a
    # frame that hid nothing (it stands unless miscounted: the hazard) and 0 for one that hid
    # units (the rule before the items' looks: a frame showing fewer never stood).
    put_back_stands: float | None = None
    hiding_put_back_stands: float = 0.0
    # The same insertions counted with the weights saying other things about their steps (key:
    # `StepUnits`; `hazard` and `errors` are a unit's step, at least one unit went in): without it
    # (a unit too light to rule out the packing material: `PutBackGuard.counted_unit_in`), so
    # without the look that tells a unit set down squarely on another from it, and with the
    # step too light for two units (`PutBackGuard.counted_units_at_most`), so an item seen as
    # two is one (the card's tables, `TABLES`). Older cards: what they lack counts as
    # the nearest one they have (`_table`).
    by_step: Mapping[StepUnits, tuple[tuple[float, ...], tuple[tuple[int, float], ...]]] = field(
        default_factory=dict
    )

    @classmethod
    def from_card(cls, path: Path = CARD, evaluation_set: str = "holdout") -> VisionModel:
        card = json.loads(path.read_text())
        insertions = card["evaluation"].get("insertions")
        if insertions and evaluation_set == "holdout":
            model = cls._from_insertions(f"{card['version']} insertions", insertions)
            put_backs = card["evaluation"].get("put_backs")
            if not put_backs:
                return model
            cases = put_backs["cases"]
            return replace(
                model,
                put_back_stands=cases["fair_hid_0"]["stood_rate"],
                hiding_put_back_stands=cases["fair_hid_1+"]["stood_rate"],
            )
        figures = card["evaluation"]["sets"][evaluation_set]
        by_count = {int(n): a for n, a in figures["accuracy_by_true_count"].items() if int(n) > 0}
        accuracy = _non_increasing([by_count[n] for n in sorted(by_count)])
        hazard, previous = [], 1.0
        for acc in accuracy:
            hazard.append(0.0 if previous <= 0 else max(0.0, 1 - acc / previous))
            previous = acc
        histogram = {int(e): n for e, n in figures["error_histogram"].items() if int(e) != 0}
        return cls(f"{card['version']} {evaluation_set}", tuple(hazard), _shares(histogram))

    @classmethod
    def _from_insertions(cls, name: str, insertions: dict) -> VisionModel:
        hazard, errors = _hazard(insertions["insertion_errors_by_visible"])
        by_step = {
            said: _hazard(insertions[table])
            for said, table in TABLES.items()
            if insertions.get(table)
        }
        counts = insertions.get("repeat_frame_errors") or {"0": 1}  # none measured: no error
        repeat = {int(n): k for n, k in counts.items()}
        frames = sum(repeat.values())
        return cls(
            name,
            hazard,
            errors,
            tuple((n, k / frames) for n, k in sorted(repeat.items())),
            by_step=by_step,
        )

    def scaled(self, factor: float, name: str) -> VisionModel:
        """The same error shape with every hazard (and every miscount of a frame with nothing
        new) times `factor` (what-if for a better model)."""
        wrong = [(n, min(1.0, share * factor)) for n, share in self.repeat if n]
        repeat = ((0, max(0.0, 1 - sum(share for _, share in wrong))), *wrong)
        hazard = _times(self.hazard, factor)
        by_step = {said: (_times(h, factor), e) for said, (h, e) in self.by_step.items()}
        stands = (
            None
            if self.put_back_stands is None
            else max(0.0, 1 - (1 - self.put_back_stands) * factor)
        )
        # Not scaled: what keeps a frame that hid items from standing is mostly the rule's own
        # limits (look-alike units, an item only partly over another), not the count.
        return VisionModel(
            name,
            hazard,
            self.errors,
            repeat,
            stands,
            self.hiding_put_back_stands,
            by_step,
        )

    def at_target(self, mean_exact: float = TARGET_MEAN_EXACT) -> VisionModel:
        """The same error shape scaled so that cartons of 1-8 units count exactly `mean_exact`
        of the time on average: a what-if for the counter at its issue-4 target."""
        low, high = 0.0, 1.0
        if self.mean_exact() >= mean_exact:
            return self
        for _ in range(60):  # bisection on the hazard factor
            factor = (low + high) / 2
            if self.scaled(factor, "").mean_exact() >= mean_exact:
                low = factor
            else:
                high = factor
        return self.scaled(low, f"{self.name} x{low:.3g} (at target)")

    def mean_exact(self) -> float:
        """Mean exact-count rate over cartons of 1-8 units packed one by one."""
        return sum(self.exact_accuracy(n) for n in range(1, 9)) / 8

    def exact_accuracy(self, items: int) -> float:
        """Chance a carton of `items` units packed one by one, nothing covered, counts exactly."""
        exact = 1.0
        for v in range(1, items + 1):
            exact *= 1 - self.hazard_at(v)
        return exact

    def hazard_at(self, visible: int, said: StepUnits = UNIT_IN) -> float:
        """The chance an insertion seen with `visible` items miscounts, where the weights said
        `said` about its step."""
        table = self._table(said)[0]
        return table[min(visible, len(table)) - 1] if visible > 0 else 0.0

    def errors_for(self, said: StepUnits) -> tuple[tuple[int, float], ...]:
        return self._table(said)[1]

    def fold_chance(self, visible: int, said: StepUnits) -> float:
        """The chance the bound on units folds an item seen as two in such a frame (the
        over-counts it removes, `vision.observe._seen_as_one`): after one, the frames show
        more items than the count (`InsertionAccumulator._folded`)."""
        if not said.at_most_one:
            return 0.0
        unbounded = StepUnits(said.unit_in, at_most_one=False)
        return max(0.0, self._over(visible, unbounded) - self._over(visible, said))

    def _over(self, visible: int, said: StepUnits) -> float:
        over = sum(share for error, share in self.errors_for(said) if error > 0)
        return self.hazard_at(visible, said) * over

    def _table(self, said: StepUnits) -> tuple[tuple[float, ...], tuple[tuple[int, float], ...]]:
        """The figures measured under `said`; unmeasured: without the bound on units, then
        the unit's step's."""
        unbounded = StepUnits(said.unit_in, at_most_one=False)
        return self.by_step.get(said) or self.by_step.get(unbounded) or (self.hazard, self.errors)


def _times(hazard: tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(min(1.0, h * factor) for h in hazard)


def _hazard(
    table: dict[str, dict[str, int]],
) -> tuple[tuple[float, ...], tuple[tuple[int, float], ...]]:
    """Per-insertion hazard by items visible (non-decreasing) and the miscounts' shares, from a
    card's errors-by-visible table."""
    by_visible = {
        int(v): {int(e): n for e, n in errors.items()} for v, errors in table.items() if int(v) > 0
    }
    survival = [by_visible[v].get(0, 0) / sum(by_visible[v].values()) for v in sorted(by_visible)]
    hazard = tuple(1 - s for s in _non_increasing(survival))
    pooled: dict[int, int] = {}
    for errors in by_visible.values():
        for error, n in errors.items():
            if error:
                pooled[error] = pooled.get(error, 0) + n
    return hazard, _shares(pooled)


def _shares(histogram: dict[int, int]) -> tuple[tuple[int, float], ...]:
    """(error, share) of the miscounts of one or two items."""
    kept = {e: n for e, n in histogram.items() if e and abs(e) <= 2}
    total = sum(kept.values())
    return tuple((e, n / total) for e, n in sorted(kept.items())) if total else ((-1, 1.0),)


def _non_increasing(values: list[float]) -> list[float]:
    """Pool adjacent violators: the closest non-increasing sequence (equal weights)."""
    blocks: list[list[float]] = []
    for value in values:
        blocks.append([value, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (a, n), (b, m) = blocks[-2], blocks.pop()
            blocks[-1] = [(a * n + b * m) / (n + m), n + m]
    return [mean for mean, n in blocks for _ in range(int(n))]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the three channels measured for one carton, before their pure code ran."""

    weight: WeightMeasurement
    reads: tuple[TagRead, ...]
    reader_problems: tuple[ReaderProblem, ...]
    insertions: tuple[InsertionObservation, ...]
    camera_up: bool
    steps: tuple[WeightStep, ...]  # settled weight steps while packing
    started_from_g: float | None  # the level packing started from
    # Per packed unit (carton.packed's order): when it went in, the time of the move that held it
    # (the steps' clock; a move within the motion band makes no step but keeps its time).
    went_in_at: tuple[float, ...]
    # Times of the moves that put in more than one piece (two units, a unit and the paperwork).
    shared_moves: frozenset[float] = frozenset()


@dataclass(frozen=True, slots=True)
class Packing:
    """How one carton was packed, as the scale saw it (Station._steps)."""

    steps: tuple[WeightStep, ...]  # settled weight steps while packing
    started_from_g: float | None  # the level packing started from
    went_in_at: tuple[float, ...]  # per packed unit, the time of the move that held it
    shared_moves: frozenset[float]  # times of the moves that put in more than one piece
    step_units: tuple[tuple[int, ...], ...]  # per step, the packed units put in since the last
    after_last_step: tuple[int, ...]  # packed units put in after the last step (the close sees)


class Station:
    """One simulated station: the world's catalog, the site's configuration, the channel code."""

    def __init__(self, world: World, seed: int, vision: VisionModel) -> None:
        self.world = world
        self.seed = seed
        self.vision = vision
        model = world.model
        # The site configured the materials it puts in every box honestly (measured means).
        self.weight_config = WeightCheckConfig(
            paperwork_g=model.paperwork_g,
            paperwork_spread_g=model.paperwork_sd_g,
            fill_g=model.fill_g,
            fill_spread_g=model.fill_sd_g,
        )
        self.resolver = EpcSkuResolver.from_catalog(world.catalog)

    # -- evidence --------------------------------------------------------------------------------

    def evidence(self, carton: Carton) -> Evidence:
        reads, problems = self._rfid(carton)
        packing = self._steps(carton)
        insertions, camera_up = self._vision(carton, packing)
        return Evidence(
            self._weight(carton),
            reads,
            problems,
            insertions,
            camera_up,
            packing.steps,
            packing.started_from_g,
            packing.went_in_at,
            packing.shared_moves,
        )

    def _rng(self, carton: Carton, channel: str) -> random.Random:
        return random.Random(f"{channel}:{self.seed}:{carton.index}:{carton.error.value}")

    def _weight(self, carton: Carton) -> WeightMeasurement:
        rng = self._rng(carton, "weight")
        fault = carton.faults.get("weight")
        if fault is Fault.DOWN:
            return WeightMeasurement(ScaleState.DOWN)
        if fault is Fault.STALE:
            return WeightMeasurement(ScaleState.STALE)
        if fault is Fault.UNSURE:
            return WeightMeasurement(rng.choice(_UNSURE_SCALE))
        true_g = (
            carton.box_true_g + carton.materials_true_g + sum(u.weight_g for u in carton.packed)
        )
        division = self.world.model.division_g
        shown = round((true_g + rng.gauss(0, self.world.model.scale_noise_sd_g)) / division)
        gross = shown * division
        return WeightMeasurement(
            ScaleState.SETTLED, gross_g=gross, scale_error_g=scale_error_g(gross, division)
        )

    def _rfid(self, carton: Carton) -> tuple[tuple[TagRead, ...], tuple[ReaderProblem, ...]]:
        rng = self._rng(carton, "rfid")
        fault = carton.faults.get("rfid")
        if fault is Fault.DOWN:
            return (), (ReaderProblem("platter", ChannelState.DOWN, "reader not answering"),)
        if fault is Fault.STALE:
            return (), (ReaderProblem("platter", ChannelState.STALE, "no reads in the window"),)
        model = self.world.model
        reads: list[TagRead] = []
        for unit in carton.packed:
            reads += _tag_reads(rng, unit, model.tag_rssi_dbm, 25, (1,))
        for unit in carton.beside:
            reads += _tag_reads(rng, unit, model.beside_rssi_dbm, 10, (1,))
        for unit in carton.strays:  # on the table: under this platter's antenna or the next one's
            reads += _tag_reads(rng, unit, model.stray_rssi_dbm, 6, (1, 2))
        return tuple(reads), ()

    def _vision(
        self, carton: Carton, packing: Packing
    ) -> tuple[tuple[InsertionObservation, ...], bool]:
        """The camera's frames as the daemon takes them: one per settled step up, then the
        close frame. A frame's new units are those put in since the last frame (a unit too light
        to step the scale shows in the next one). A step down is an item taken out; the next
        step, straight back to the level before it, is the item put back (vision.observe.
        TakeOuts, the daemon's own rule), whose frame adds nothing if it shows as many items as
        the last readable one, or fewer it hides (at the card's measured rates), and the order
        has no counted unit light enough to have been lifted out with it unseen, nor, where it
        hid items, to have been swapped for packing material (PutBackGuard, at the report); any
        other take-out leaves the count not applicable. Not modelled: a unit really lifted out
        with the item (the card's `lifted_with` rate: the frame's misses there are the guard's
        to catch). Frames are
        taken before the next step (a take-out while a frame is due would not be matched). With
        the scale down or stale no step triggers a frame: the close's only."""
        rng = self._rng(carton, "vision")
        fault = carton.faults.get("vision")
        if fault is Fault.DOWN:
            return (), False
        if fault is Fault.STALE:
            return (), True
        items = self.world.catalog.items
        seen = [items[u.sku].vision_visible for u in carton.packed]
        take_outs = TakeOuts(self.scale_error_at)
        # (packed units new in it, the item taken out that it is the put-back of, its step)
        frames: list[tuple[list[int], TakeOut | None, WeightStep | None]] = []
        waiting: list[int] = []
        for step, units in zip(packing.steps, packing.step_units, strict=True):
            waiting += [k for k in units if seen[k]]
            if step.delta_g < 0:
                take_outs.taken_out(step.from_g, step.to_g)
                continue
            back = take_outs.puts_back(step.from_g, step.to_g)
            # The weights say nothing about a step while an item is out (the daemon's
            # `_step_units`).
            frames.append((waiting, back, None if take_outs.pending else step))
            waiting = []
        frames.append((waiting + [k for k in packing.after_last_step if seen[k]], None, None))
        observations = self._frames(rng, carton, frames, fault is Fault.UNSURE)
        for _ in take_outs.pending:  # the daemon's _not_put_back
            observations.append(
                InsertionObservation(
                    len(observations), None, None, {}, (), "taken out", framed=False
                )
            )
        return tuple(observations), True

    def _frames(
        self,
        rng: random.Random,
        carton: Carton,
        frames: list[tuple[list[int], TakeOut | None, WeightStep | None]],
        unsure: bool,
    ) -> list[InsertionObservation]:
        """Each frame counted as the station's InsertionAccumulator counts it (the last frame is
        the close; `unsure`: a camera forced UNSURE reads none of them)."""
        guard = self._guard(carton)
        # Units a standing put-back frame took for hidden (positions in `placed`): the station
        # remembers them and asks the guard about them at every later put-back.
        hidden_by_put_backs: set[int] = set()
        model = self.world.model
        observations: list[InsertionObservation] = []
        placed: list[int] = []  # packed units in the order they went in
        covered: set[int] = set()  # positions in `placed`
        # Units of unreadable frames: the next readable frame sees them as new unless a later
        # insertion has covered them (vision.observe.InsertionAccumulator).
        carried: list[int] = []
        last_visible = 0  # items the last readable frame showed
        folded = False  # an item seen as two was folded (`InsertionAccumulator._folded`)
        folds = self._rng(carton, "folds")
        for index, (units, put_back, step) in enumerate(frames):
            close = index == len(frames) - 1
            # What goes in now (a unit, the paperwork, the fill) may cover others.
            covering = set() if close else self._covers(rng, len(placed), covered)
            covered |= covering
            first = len(placed)
            placed += units
            visible = [placed[i] for i in range(len(placed)) if i not in covered]
            codes = self._codes(rng, carton, visible)
            readable = not (rng.random() < model.insertion_unreadable or unsure)
            if put_back is not None:
                # Adds nothing if it shows, read right, as many items as the last readable frame,
                # or fewer that the item set down hides (at the card's measured rates);
                # otherwise (a unit slipped in, unreadable, misread) no frame can tell what came
                # back (InsertionAccumulator.add), unless the packer, asked, lifts the item
                # again and its next frame does (its codes are the ones kept).
                # Not modelled: the second look's own two steps (they cancel out; the weight
                # channels are not shown them), and "at most one item moved" (frames here
                # have counts, not places).
                # A put-back frame that stands and shows the count so far claims no more than a
                # frame sees and needs no weights (InsertionObservation.all_in_view; true counts
                # here, not detections).
                seen = self._as_before(rng, readable, units, visible, last_visible)
                # A frame that hides items the weights could not vouch for asks for a second look
                # at once (the station's accumulator is told the carton's guard).
                # Items an earlier put-back hid and still hidden count too: they could have gone
                # out with this item (InsertionAccumulator: `hid`).
                hid = last_visible - len(visible) + len(hidden_by_put_backs)
                seen = seen and not (hid and guard.refuses(put_back, hid))
                looks = 0  # the screen asks again while the item's frames do not show all
                while not seen and looks < SECOND_LOOKS and rng.random() < model.second_look:
                    looks += 1
                    covered -= covering  # lifted off what it covered, set down again
                    covering = self._covers(rng, len(placed), covered)
                    covered |= covering
                    visible = [placed[i] for i in range(len(placed)) if i not in covered]
                    codes = self._codes(rng, carton, visible)
                    readable = not (rng.random() < model.insertion_unreadable or unsure)
                    # A second look settles only with the items as before (hidden again: asked
                    # again, vision.observe.InsertionAccumulator.add).
                    again = last_visible == len(visible)
                    seen = again and self._as_before(rng, readable, units, visible, last_visible)
                if not seen:
                    reason = "an item taken out came back, but the frame after it differs"
                    observations.append(InsertionObservation(index, None, None, {}, codes, reason))
                    continue
                hid = last_visible - len(visible) + len(hidden_by_put_backs)
                if last_visible > len(visible):
                    hidden_by_put_backs |= covering
                # A frame that took items for hidden never shows the whole count (the station's
                # rule: it shows fewer than the last frame wherever a unit went), nor one after
                # an item seen as two was folded (its frames show one item more than counted).
                counted = sum(o.new_items or 0 for o in observations)
                in_view = not hid and not folded and len(visible) == counted
                observations.append(
                    InsertionObservation(
                        index,
                        0,
                        len(visible),
                        {},
                        codes,
                        take_out=put_back,
                        all_in_view=in_view,
                        hid=hid,
                    )
                )
                carried, last_visible = [], len(visible)
                continue
            if not readable:
                reason = "a hand stayed over the carton"
                observations.append(
                    InsertionObservation(index, None, None, {}, codes, reason, carried_over=True)
                )
                carried += range(first, len(placed))
                continue
            # What the weights said to the daemon: the step brought a unit the camera counts,
            # and how many at the most (where the frame before was counted: not its units).
            unit_in = step is not None and guard.counted_unit_in(step.from_g, step.to_g)
            most = None
            if step is not None and (not observations or observations[-1].applicable):
                most = guard.counted_units_at_most(step.from_g, step.to_g)
            truly_new = len(units) + _uncovered(carried, covered)
            said = StepUnits(unit_in, at_most_one=most is not None and most <= 1)
            new = self._counted(rng, truly_new, len(visible), said)
            # A fold needs two new items at least: the card's rates are of one unit's frames.
            # Drawn apart, so that the counts' draws do not move with them.
            if truly_new and folds.random() < self.vision.fold_chance(len(visible), said):
                folded = True
            if most is not None and new > max(most, 1) and truly_new > max(most, 1):
                # The weights wrong (a stale catalog weight): as if every unit too many for
                # them lay over another (`vision.observe._seen_as_one`), the worst case.
                new, folded = max(most, 1), True
            carried, last_visible = [], len(visible)
            observations.append(InsertionObservation(index, new, len(visible), {}, codes))
        return observations

    def _codes(
        self, rng: random.Random, carton: Carton, visible: list[int]
    ) -> tuple[CodeRead, ...]:
        """The codes one frame reads: face-up units' on top, most of the time."""
        return tuple(
            _code_read(self.world.truth[carton.packed[k].sku].gtin)
            for k in visible
            if carton.packed[k].code_up and rng.random() < self.world.model.code_read
        )

    def _as_before(
        self,
        rng: random.Random,
        readable: bool,
        slipped_in: list[int],
        visible: list[int],
        last_visible: int,
    ) -> bool:
        """A put-back frame stands: readable, no unit slipped in with it, and read right: as
        many items as the last readable frame, or fewer where the item set down hid them (each
        at the rate the card measured; vision.observe.InsertionAccumulator)."""
        hid = last_visible - len(visible)
        if not readable or slipped_in or hid < 0:
            return False
        model = self.vision
        if hid > 0:
            return rng.random() < model.hiding_put_back_stands
        if model.put_back_stands is None:
            return rng.random() >= model.hazard_at(len(visible))
        return rng.random() < model.put_back_stands

    def _covers(self, rng: random.Random, placed: int, covered: set[int]) -> set[int]:
        """The units (positions in the packing order) something set down now covers."""
        chance = self.world.model.covered_per_insertion
        return {i for i in range(placed) if i not in covered and rng.random() < chance}

    def _counted(self, rng: random.Random, new: int, visible: int, said: StepUnits) -> int:
        """The new items one readable frame counts: right, or off by the card's errors (a frame
        with nothing new in it: the card's close frames; `said`: what the weights said about
        its step, `VisionModel.hazard_at`)."""
        if new == 0:
            counts, shares = zip(*self.vision.repeat, strict=True)
            return rng.choices(counts, shares)[0]
        if rng.random() < self.vision.hazard_at(visible, said):
            errors, shares = zip(*self.vision.errors_for(said), strict=True)
            new = max(0, new + rng.choices(errors, shares)[0])
        return new

    def _steps(self, carton: Carton) -> Packing:
        """The settled steps of the platter's weight while the carton is packed, the level
        packing started from (None: the scale was down or stale, nothing was watched), when
        each packed unit went in (the move's time, step or no step), the times of the moves
        that put in more than one piece, and which units each step and the close brought.

        The box goes down first (with the paperwork in it half of the time), then the units in
        packing order: one per step, sometimes two before the scale settles, sometimes one taken
        out again and put back; the paperwork (if not in the box) and the gift note go in among
        them, the void fill last. Each settled level is the real contents plus the scale's noise,
        rounded to the division; a change within the motion band is no step (the weight channel's
        rule)."""
        rng = self._rng(carton, "insertion")
        model = self.world.model
        if carton.faults.get("weight") in (Fault.DOWN, Fault.STALE):
            everything = tuple(range(len(carton.packed)))
            return Packing((), None, tuple(0.0 for _ in carton.packed), frozenset(), (), everything)
        # (grams, index in carton.packed or None for the paperwork and the note)
        pieces: list[tuple[float, int | None]] = [
            (u.weight_g, k) for k, u in enumerate(carton.packed)
        ]
        for grams in (carton.paperwork_true_g, carton.note_true_g):
            if grams > 0:
                pieces.insert(rng.randint(0, len(pieces)), (grams, None))
        moves: list[float] = []  # signed grams of each settled step, before noise
        holding: list[tuple[int, ...]] = []  # per move, the packed units it put in
        shared: list[bool] = []  # per move, whether it put in more than one piece
        first = carton.box_true_g
        paperwork = (carton.paperwork_true_g, None)
        if rng.random() < model.paperwork_with_box and paperwork in pieces:
            pieces.remove(paperwork)
            first += carton.paperwork_true_g
        moves.append(first)
        holding.append(())
        shared.append(False)
        i = 0
        while i < len(pieces):
            grams, unit = pieces[i]
            units = () if unit is None else (unit,)
            two = i + 1 < len(pieces) and rng.random() < model.two_at_once
            if two:
                grams += pieces[i + 1][0]
                units += () if pieces[i + 1][1] is None else (pieces[i + 1][1],)
                i += 1
            moves.append(grams)
            holding.append(units)
            shared.append(two)
            if rng.random() < model.taken_out_and_back:
                moves += [-pieces[i][0], pieces[i][0]]
                holding += [(), ()]
                shared += [False, False]
            i += 1
        moves.append(carton.fill_true_g)
        holding.append(())
        shared.append(False)
        started = 0.0
        if rng.random() < model.not_started_empty:
            started = moves.pop(0)  # the box was already down when the order was scanned
            holding.pop(0)
            shared.pop(0)
        band = model.division_g  # the scale's default motion band: one division
        true_g = started
        level = start_g = self._reading(rng, started) if started else 0.0
        steps: list[WeightStep] = []
        step_units: list[tuple[int, ...]] = []
        since_step: list[int] = []  # units put in since the last step (moves within the band)
        went_in_at = [0.0] * len(carton.packed)
        for at, (grams, units) in enumerate(zip(moves, holding, strict=True), start=1):
            true_g += grams
            reading = self._reading(rng, true_g)
            for unit in units:
                went_in_at[unit] = float(at)
            since_step += units
            if abs(reading - level) > band:
                steps.append(WeightStep(level, reading, float(at)))
                step_units.append(tuple(since_step))
                since_step = []
                level = reading
        together = frozenset(float(at) for at, two in enumerate(shared, start=1) if two)
        return Packing(
            tuple(steps), start_g, tuple(went_in_at), together, tuple(step_units), tuple(since_step)
        )

    def _reading(self, rng: random.Random, true_g: float) -> float:
        """A settled reading of `true_g`: the scale's noise, rounded to the division."""
        division = self.world.model.division_g
        return round((true_g + rng.gauss(0, self.world.model.scale_noise_sd_g)) / division) * (
            division
        )

    def unit_scans(
        self, carton: Carton, evidence: Evidence, must_scan: frozenset[str]
    ) -> tuple[UnitScan, ...]:
        """The packer's unit scans when the plan says they must scan `must_scan`, each at its
        time among the insertion steps (a serial scanned twice is dropped, as the session does).

        The packer scans each unit they believe is of a must-scan SKU as it goes in: just before
        the move that puts it in (two scans before a move of two units), or now and then just
        after it. A unit packed in error (a variant, another order's unit) stands in for the unit
        it replaced, so its barcode is scanned in that unit's place. Mistakes: a unit scanned
        twice, a unit put in without its scan, a left-out unit scanned anyway (scanned at some
        point while packing, then set down beside the box). The draws do not depend on
        `must_scan`: every mix sees the same packer."""
        rng = self._rng(carton, "scan")
        timing = self._rng(carton, "scan time")  # its own draws: the counts stay as they were
        model = self.world.model
        items = self.world.catalog.items
        stands_for = {
            foreign: victim for foreign in carton.foreign for victim in carton.missing
        }  # one thing goes wrong per carton: at most one SKU each
        scans: list[UnitScan] = []
        for unit, went_in in zip(carton.packed, evidence.went_in_at, strict=True):
            twice, forgot = rng.random() < model.double_scan, rng.random() < model.unscanned_unit
            after = timing.random() < model.scanned_after_insert
            at = went_in + timing.uniform(0.05, 0.95) * (1 if after else -1)
            if stands_for.get(unit.sku, unit.sku) not in must_scan or forgot:
                continue
            repeat = twice and not items[unit.sku].serial_controlled
            scans += [UnitScan(unit.sku, 1, at)] * (1 + repeat)
        if carton.error in (ErrorKind.LEFT_OUT, ErrorKind.LINE_LEFT_OUT):
            # Units are scanned once the box is down (the session takes item scans after the
            # box's), so between the box's move (the first) and the end of packing.
            packing_ends = max(evidence.went_in_at, default=1.0) + 1
            for sku, n in carton.missing.items():
                anyway = sum(rng.random() < model.scanned_but_left_out for _ in range(n))
                if sku in must_scan and anyway:
                    at = timing.uniform(1.0, packing_ends)
                    scans += [UnitScan(sku, 1, at)] * anyway
        return tuple(sorted(scans, key=lambda scan: scan.at))

    def rescans(
        self, carton: Carton, evidence: Evidence, skus: frozenset[str], round_: int = 1
    ) -> tuple[UnitScan, ...]:
        """The packer's scans when a verdict asks them to scan each unit of `skus` in the carton
        (a tag that may not answer, a recount), after packing: each packed unit that is, or
        stands in for, one of `skus` is scanned by its own code, with the same slips as while
        packing (a unit missed, one scanned twice, a left-out unit lying beside the box scanned
        anyway). Each `round_` (a later close's request) draws afresh."""
        rng = self._rng(carton, "rescan" if round_ == 1 else f"rescan {round_}")
        model = self.world.model
        items = self.world.catalog.items
        stands_for = {foreign: victim for foreign in carton.foreign for victim in carton.missing}
        after = max(evidence.went_in_at, default=1.0) + 2  # the close came first
        scans: list[UnitScan] = []
        for unit in carton.packed:
            twice, forgot = rng.random() < model.double_scan, rng.random() < model.unscanned_unit
            if stands_for.get(unit.sku, unit.sku) not in skus or forgot:
                continue
            repeat = twice and not items[unit.sku].serial_controlled
            scans += [UnitScan(unit.sku, 1, after)] * (1 + repeat)
        if carton.error in (ErrorKind.LEFT_OUT, ErrorKind.LINE_LEFT_OUT):
            for sku, n in carton.missing.items():
                anyway = sum(rng.random() < model.scanned_but_left_out for _ in range(n))
                if sku in skus and anyway:
                    scans += [UnitScan(sku, 1, after)] * anyway
        return tuple(scans)

    # -- the channels' own code ------------------------------------------------------------------

    def reports(
        self, carton: Carton, evidence: Evidence, scans: tuple[UnitScan, ...] = ()
    ) -> dict[str, ChannelReport]:
        """Every channel's report, each from the channel's real, pure code (the insertion
        channel's paired with the packer's `scans`)."""
        return {
            "weight": self.weight_report(carton, evidence),
            "insertion": self.insertion_report(carton, evidence, scans),
            **self.sensor_reports(carton, evidence),
        }

    def weight_report(self, carton: Carton, evidence: Evidence) -> ChannelReport:
        catalog = self.world.catalog
        box = catalog.boxes[carton.box]
        return evaluate_weight(carton.expected, catalog, box, evidence.weight, self.weight_config)

    def insertion_report(
        self,
        carton: Carton,
        evidence: Evidence,
        scans: tuple[UnitScan, ...] = (),
        memo: InsertionMemo | None = None,
        steps: int | None = None,
    ) -> ChannelReport:
        """The per-insertion channel's report, its steps (the first `steps` of them) paired
        with `scans`; `memo`: the carton's earlier explanations, as the daemon keeps them."""
        return self.insertion(carton, evidence, scans, memo, steps).report

    def insertion(
        self,
        carton: Carton,
        evidence: Evidence,
        scans: tuple[UnitScan, ...],
        memo: InsertionMemo | None = None,
        steps: int | None = None,
    ) -> InsertionCheck:
        """The per-insertion channel's report and the clean weight samples it found."""
        catalog = self.world.catalog
        return evaluate_insertions(
            evidence.steps[:steps],
            evidence.started_from_g,
            carton.expected,  # the gift note too: it is a step as well
            catalog,
            catalog.boxes[carton.box],
            self.weight_config.packing_materials(),
            self.scale_error_at,
            INSERTION_CONFIDENCE,
            ZERO_BAND_G,
            self.weight_config.missing_unit_prior,
            scans,
            memo,
        )

    def sensor_reports(self, carton: Carton, evidence: Evidence) -> dict[str, ChannelReport]:
        """RFID's and vision's reports."""
        catalog = self.world.catalog
        window = filter_window(evidence.reads, WINDOW, self.resolver)
        rfid = rfid_report(
            carton.expected,
            catalog,
            window,
            problems=evidence.reader_problems,
            sku_of=lambda epc: self.resolver.resolve(epc).sku,
        )
        vision = build_vision_report(
            evidence.insertions,
            carton.expected,
            catalog,
            camera_up=evidence.camera_up,
            put_back_guard=self._guard(carton),
        )
        return {"rfid": rfid, "vision": vision}

    def _guard(self, carton: Carton) -> PutBackGuard:
        """The carton's put-back guard, as the station's vision channel builds it."""
        materials = self.weight_config.packing_materials()
        return put_back_guard(carton.expected, self.world.catalog, self.scale_error_at, materials)

    def weight_power(self, carton: Carton) -> dict[str, float]:
        """How surely the total weight reveals each product missing, as the daemon tells the
        session's plan (weight_check.absence_detection over the verifiable SKUs)."""
        catalog = self.world.catalog
        return absence_detection(
            self.verifiable(carton),
            catalog,
            catalog.boxes[carton.box],
            self.scale_error_at,
            self.weight_config,
        )

    def lookalike_power(self, carton: Carton) -> dict[str, float]:
        """How surely the total weight reveals a product swapped for its nearest look-alike, as
        the daemon tells the plan (weight_check.lookalike_detection)."""
        catalog = self.world.catalog
        return lookalike_detection(
            self.verifiable(carton),
            catalog,
            catalog.boxes[carton.box],
            self.scale_error_at,
            self.weight_config,
        )

    def scale_error_at(self, grams: float) -> float:
        return scale_error_g(grams, self.world.model.division_g)

    def verifiable(self, carton: Carton) -> dict[str, int]:
        """What the policy must see confirmed: products, as the session passes them."""
        items = self.world.catalog.items
        return {s: n for s, n in carton.expected.items() if items[s].kind is ItemKind.PRODUCT}


def _tag_reads(
    rng: random.Random,
    unit: Unit,
    rssi: tuple[float, float],
    mean_seen: float,
    antennas: tuple[int, ...],
) -> list[TagRead]:
    """The reads one tag gives in the window: a few reports, each of several inventory rounds."""
    if unit.epc is None or not unit.tag_answers:
        return []
    level = rng.gauss(*rssi)  # this tag's coupling here: orientation, distance, what it is on
    antenna = rng.choice(antennas)
    reads = []
    for _ in range(rng.randint(1, 3)):
        seen = poisson(rng, mean_seen / 2)
        if seen:
            rssi_dbm = round(level + rng.gauss(0, 1.5), 1)
            reads.append(
                TagRead(bytes.fromhex(unit.epc), antenna, rssi_dbm, 0.2, 0.9, seen, "platter")
            )
    return reads


def _code_read(ean13: str) -> CodeRead:
    """An EAN-13 as the barcode reader returns it; the catalog's index maps it to its SKU."""
    return CodeRead("EAN13", ean13, "]E0", ean13.encode(), (0.0, 0.0), (), gtin="0" + ean13)


def _uncovered(units: list[int], covered: set[int]) -> int:
    return sum(1 for i in units if i not in covered)
