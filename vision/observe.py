"""Per-frame observation and per-carton accumulation over insertions.

The station takes one frame per settled insertion (the weight stepped and settled, the image is
still, no hand over the carton). A frame at close sees only the top layer, so counts accumulate:
an insertion adds the detections that are new since the previous accepted frame (not paired one
to one with a detection of the previous frame). Items that a later insertion covers stay counted;
an item the packer moves far enough reads as new (documented limitation; the weight channel
catches that surplus). A unit set down squarely on another pairs with it by place: where the
weight step vouches that a unit went in, the one item whose look changed is that unit; where
the step is too light for as many units as the frame shows new, new items lying over one
another are one item the detector split.
A frame the model cannot read confidently makes that insertion "not applicable" - never a count.
Its items are not lost: the next readable frame is compared with the last readable one, so they
are new in it (`carried_over`). An item taken out is different: no later frame can undo its
count, so that insertion stays uncounted, unless the frame after it came back shows the items
as before, or fewer with each one missing under the item set down (told from it by its look
where their places coincide), or the packer lifts the same item again straight away and the
frame after shows what the frame before the take-out did (a second look: the station asks for
it when nothing else settles it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from vision.barcodes import BarcodeReader, CodeRead
from vision.detectors.base import Detection, DetectionResult, Detector


@dataclass(frozen=True, slots=True)
class FrameObservation:
    """What one frame showed: detections (frame pixels), codes, readability."""

    result: DetectionResult
    codes: tuple[CodeRead, ...]
    taken_monotonic: float
    total_ms: float = 0.0
    # Each sure detection's look (`look_of`): tells an item set down over another from the
    # other. Empty when not computed: no frame is then told apart by looks.
    looks: Mapping[Detection, np.ndarray] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.result.readable

    @property
    def count(self) -> int | None:
        return self.result.count if self.readable else None


class Pipeline:
    """Frame -> FrameObservation: the detector plus the barcode reader."""

    def __init__(self, detector: Detector, barcodes: BarcodeReader | None = None) -> None:
        self.detector = detector
        self.barcodes = barcodes

    def observe(self, frame_bgr: np.ndarray) -> FrameObservation:
        started = time.perf_counter()
        result = self.detector.detect(frame_bgr)
        codes = tuple(self.barcodes.read(frame_bgr)) if self.barcodes is not None else ()
        looks = {d: look_of(frame_bgr, d.box) for d in result.detections if not d.unsure}
        looks = {d: look for d, look in looks.items() if look is not None}
        return FrameObservation(
            result, codes, time.monotonic(), (time.perf_counter() - started) * 1000, looks
        )


# Bhattacharyya distance between two looks above which they are two different items. The same
# item in two frames of a packing sequence (simulator, 2,294 pairs) differs by 0.05 (median),
# 0.41 (99th percentile, mostly an item partly covered since); two items, by ~0.6 (median).
LOOK_CHANGED = 0.45
# A put-back frame may take at most this many items for hidden under the item set down, each
# with at least this share of its box under the item's box (measured put-backs hid 1-3).
MAX_HIDDEN = 2
_UNDER_SHARE = 0.5


def look_of(frame_bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """An item's look: the hue x saturation histogram of the middle of its box (the middle
    only, so neighbours and the carton floor around it weigh little); None for a box off the
    frame (no look)."""
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.3, (y2 - y1) * 0.3
    h, w = frame_bgr.shape[:2]
    top, bottom = int(max(0, cy - hh)), int(min(h, cy + hh + 1))
    left, right = int(max(0, cx - hw)), int(min(w, cx + hw + 1))
    # Every few pixels of a large box: a look needs ~1,000 of them, not a 1080p box's 10,000s.
    stride = max(1, (bottom - top) // 32, (right - left) // 32)
    crop = np.ascontiguousarray(frame_bgr[top:bottom:stride, left:right:stride])
    if crop.size == 0:
        return None
    hist = cv2.calcHist(
        [cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)], [0, 1], None, [18, 4], [0, 180, 0, 256]
    )
    return cv2.normalize(hist, hist, 1, 0, cv2.NORM_L1)


def _known_alike(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is not None and b is not None and looks_alike(a, b)


def _known_unlike(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is not None and b is not None and not looks_alike(a, b)


def looks_alike(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """True unless both looks are known and differ (unknown: alike, so nothing is split)."""
    if a is None or b is None:
        return True
    return cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA) <= LOOK_CHANGED


@dataclass(frozen=True, slots=True)
class InsertionObservation:
    """One insertion's contribution: how many new items, which labels and codes were seen."""

    index: int
    new_items: int | None  # None: not applicable (unreadable or unsure frame)
    visible: int | None
    new_labels: dict[str, int]
    codes: tuple[CodeRead, ...]
    reason: str = ""
    # Not applicable, and its items are counted by the next readable frame (a hand or motion
    # kept the camera from a readable frame). False for an item taken out, which no later frame
    # can undo.
    carried_over: bool = False
    # For the frame after an item taken out came back (`TakeOuts`), that item: no unit went in,
    # so the frame adds none, wherever the item was set down again. Stands only where
    # `PutBackGuard` allows (`vetted`, at the report).
    take_out: TakeOut | None = None
    # For a put-back: its frame shows as many items as the carton's count, so the count claims
    # no more than a readable frame sees, whatever went out with the item (`vetted` needs no
    # weights then).
    all_in_view: bool = False
    # False for a stand-in no frame is behind: an item still out at the close, which no frame
    # can count.
    framed: bool = True
    # For a put-back: items its frame took for hidden under the item set down. The frame then
    # proves nothing about what it covers, so `PutBackGuard` also rules out a unit swapped for
    # uncounted material of its weight.
    hid: int = 0

    @property
    def applicable(self) -> bool:
        return self.new_items is not None

    @property
    def put_back(self) -> bool:
        return self.take_out is not None


def uncounted(observations: Sequence[InsertionObservation]) -> list[InsertionObservation]:
    """The insertions no readable frame counted: a not applicable one that is not carried over
    (an item taken out), or one that nothing readable follows (the carton's last frames)."""
    last_readable = max((o.index for o in observations if o.applicable), default=-1)
    return [
        o
        for o in observations
        if not o.applicable and (not o.carried_over or o.index > last_readable)
    ]


def _side(d: Detection) -> float:
    return max(4.0, min(d.box[2] - d.box[0], d.box[3] - d.box[1]))


def new_detections(current: Sequence[Detection], previous: Sequence[Detection]) -> list[Detection]:
    """Detections of `current` left over after pairing each with at most one of `previous`.

    Pairs form nearest first when two centres are closer than half the smaller item's side. One
    to one matters: an item dropped beside (or partly onto) an earlier one sits near its centre,
    and a "near any earlier detection" test would call it old. Measured on 120 rendered cartons
    (5 and 8 units, shipped model sha256 1efa69c5): exact carton counts 0.55/0.42 with "near any",
    0.75/0.53 one to one; per-insertion under-counts 66 -> 27 of 780.
    """
    live = [d for d in current if not d.unsure]
    paired = {i for i, _ in pairing(live, previous)}
    return [d for i, d in enumerate(live) if i not in paired]


def pairing(
    current: Sequence[Detection],
    previous: Sequence[Detection],
    may_pair: Callable[[int, int], bool] | None = None,
) -> list[tuple[int, int]]:
    """`new_detections`' one to one pairs (index in current, index in previous), nearest
    first; `may_pair(i, j)`: only such pairs (all by default)."""
    candidates = sorted(
        (math.dist(c.center, p.center), i, j)
        for i, c in enumerate(current)
        for j, p in enumerate(previous)
        if math.dist(c.center, p.center) < 0.5 * min(_side(c), _side(p))
        and (may_pair is None or may_pair(i, j))
    )
    pairs: list[tuple[int, int]] = []
    taken_current: set[int] = set()
    taken_previous: set[int] = set()
    for _, i, j in candidates:
        if i not in taken_current and j not in taken_previous:
            taken_current.add(i)
            taken_previous.add(j)
            pairs.append((i, j))
    return pairs


# Two new detections sharing this much of the smaller box are one item where the weights say
# only one unit went in (`_seen_as_one`): the split pairs measured shared 23-75%; an item
# merely touching another shares little.
FOLD_SHARE = 0.2


def _shared(a: Detection, b: Detection) -> float:
    """The share of the smaller of two detections' boxes that the other covers."""
    return max(_share_inside(a.box, b.box), _share_inside(b.box, a.box))


def _seen_as_one(new: list[Detection], most_units: int) -> list[Detection]:
    """`new` without the detections that make it more than `most_units` (but never fewer than
    one), where each lies over another new one, sharing at least `FOLD_SHARE` of the smaller
    box (the fainter of the pair sharing the most goes first): the weight step says no more
    units went in, so two boxes over one another are one item the detector split (or packing
    material, paperwork over a unit). A surplus detection apart from the others stays: it may
    be an item missed before, or a unit of another order. On 300 development cartons 7 of 8
    over-counted insertions were such pairs, sharing 23-75% of the smaller box (docs/vision.md)."""
    kept = list(new)
    while len(kept) > max(most_units, 1):
        pairs = [(_shared(a, b), a, b) for i, a in enumerate(kept) for b in kept[i + 1 :]]
        share, a, b = max(pairs, key=lambda pair: pair[0])
        if share < FOLD_SHARE:
            break
        kept.remove(a if a.score < b.score else b)
    return kept


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _share_inside(
    box: tuple[float, float, float, float], cover: tuple[float, float, float, float]
) -> float:
    """How much of `box`'s area lies inside `cover`."""
    width = min(box[2], cover[2]) - max(box[0], cover[0])
    height = min(box[3], cover[3]) - max(box[1], cover[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(0.0, width) * max(0.0, height) / area if area > 0 else 0.0


@dataclass
class InsertionAccumulator:
    """Accumulates one carton's insertions. Not thread-safe: owned by the session's loop.

    An insertion's new items are the detections not paired with one of the previous accepted
    frame (an item missed in one frame and found again in the next counts twice; the weight and
    the other channels see that surplus).
    """

    observations: list[InsertionObservation] = field(default_factory=list)
    _previous: tuple[Detection, ...] = ()
    _previous_looks: Mapping[Detection, np.ndarray] = field(default_factory=dict)
    # Items a put-back hid (`_hides_under_put_back`), with their looks: one seen again where it
    # was, looking as it did, is that item, not a new one (the item over it lifted or slid off).
    _hidden: dict[Detection, np.ndarray] = field(default_factory=dict)
    # Units a unit set down squarely over them hid (`_stacked`), with their looks: known again
    # the same way, or by place alone where a detection is new (`_uncovered`), but covered as
    # any unit a later one covers, so not asked about at put-backs.
    _under_stacked: dict[Detection, np.ndarray] = field(default_factory=dict)
    # The put-backs just before, in a row, whose frames did not show the items as before: a
    # second look (the same item lifted and set down again) may still settle them.
    _unsettled: list[tuple[int, TakeOut]] = field(default_factory=list)
    # A detection was folded into another (`_seen_as_one`): it stays among the frames' items,
    # so they may show more than the count, and no frame shows the whole count any more.
    _folded: bool = False

    def add(
        self,
        frame: FrameObservation,
        put_back: TakeOut | None = None,
        guard: PutBackGuard | None = None,
        unit_in: bool = False,
        most_units: int | None = None,
    ) -> InsertionObservation:
        """Count `frame` as the next insertion. The frame after the item `put_back` came back
        (`TakeOuts`) adds no item when it shows the items of the last readable frame (as many,
        and at most one where none was: the item set down elsewhere), or fewer, each item no
        longer seen but one lying under the item set down (`_hides_under_put_back`). `vetted`
        decides at the report whether that stands. Otherwise (or unreadable) the item that came
        back cannot be told from what else changed, and the carton's count is not applicable,
        until a second look settles it (`awaiting_second_look`). Items a put-back hid and this
        frame shows again are neither new nor a change (`_seen_again`). `guard`: the carton's,
        where known, so that a frame taking items for hidden that the weights could not vouch for
        asks for a second look now, not "not applicable" at the report. `unit_in`: the weight
        step this frame was taken for is too heavy for anything the camera does not count
        (`PutBackGuard.counted_unit_in`), so a unit the camera counts went in: one set down
        squarely on another is then told from it by its look (`_stacked`). `most_units`: the
        most units the camera counts that the same step can have brought
        (`PutBackGuard.counted_units_at_most`): more new items than that, lying over one another,
        are one item seen as two (`_seen_as_one`)."""
        index = len(self.observations)
        unsettled, self._unsettled = self._unsettled, []
        live, again = self._seen_again(frame)
        as_before = frame.readable and self._shows_as_before(live)
        hidden: list[Detection] | None = []
        refused = ""
        if put_back is not None and frame.readable and not as_before:
            # A second look must show the items as before to settle; one that hides them again
            # is asked for again, as any frame that does not. Without the carton's guard (its
            # order not in yet) no weights can vouch for a frame that hides items.
            second_look = self._same_item(put_back, unsettled)
            hidden = (
                None if second_look or guard is None else self._hides_under_put_back(frame, live)
            )
        # Items hidden earlier and still unseen could have gone out with this item too.
        still_hidden = [h for h in self._hidden if h not in again.values()]
        hid = len(hidden or ()) + len(still_hidden)
        if put_back is not None and frame.readable and hidden is not None and hid and guard:
            refused = guard.refuses(put_back, hid)
        if put_back is not None and (not frame.readable or hidden is None or refused):
            why = refused or self._change(frame, live)
            reason = f"an item taken out came back, but {why}"
            obs = InsertionObservation(index, None, None, {}, frame.codes, reason)
            if self._same_item(put_back, unsettled):
                self._unsettled = unsettled
            self._unsettled.append((index, put_back))
        elif not frame.readable:
            obs = InsertionObservation(
                index, None, None, {}, frame.codes, frame.result.reason, carried_over=True
            )
        else:
            current = (*live, *again)
            new = (
                []
                if put_back is not None
                else self._uncovered(new_detections(live, self._previous))
            )
            stacked = (
                self._stacked(frame, live) if unit_in and put_back is None and not new else None
            )
            if stacked is not None:
                top, under = stacked
                new = [top]
                self._under_stacked[under] = self._previous_looks[under]
            if most_units is not None and self._last_counted():
                kept = _seen_as_one(new, most_units)
                self._folded = self._folded or len(kept) < len(new)
                new = kept
            # A frame that took items for hidden never shows the whole count, whatever the
            # count (it shows fewer than the last frame wherever a unit went); nor one whose
            # items include one folded into another (a unit out could hide behind it).
            in_view = (
                put_back is not None
                and not hid
                and not self._folded
                and len(current) == self._counted()
            )
            labels: dict[str, int] = {}
            for d in new:
                if d.label is not None:
                    labels[d.label] = labels.get(d.label, 0) + 1
            obs = InsertionObservation(
                index,
                len(new),
                len(current),
                labels,
                frame.codes,
                take_out=put_back,
                all_in_view=in_view,
                hid=hid if put_back is not None else 0,
            )
            self._under_stacked = {
                h: look for h, look in self._under_stacked.items() if h not in again.values()
            }
            self._hidden = {
                **{h: self._hidden[h] for h in still_hidden},
                **{d: self._previous_looks[d] for d in hidden or ()},
            }
            self._previous, self._previous_looks = current, frame.looks
            # Only a frame showing the items as before settles: one that took items for hidden
            # under the item proves less than the second look is for.
            if put_back is not None and as_before and self._same_item(put_back, unsettled):
                self._settle(unsettled, index, in_view)
        self.observations.append(obs)
        return obs

    def add_unseen(self, reason: str, carried_over: bool) -> InsertionObservation:
        """An insertion no frame was taken of (none still in time, inference failed): counted
        by the next readable frame when `carried_over`, else the count is not applicable. It
        comes between, so no second look can settle an earlier put-back any more."""
        self._unsettled = []
        obs = InsertionObservation(len(self.observations), None, None, {}, (), reason, carried_over)
        self.observations.append(obs)
        return obs

    def awaiting_second_look(self) -> TakeOut | None:
        """The item whose put-back left the count not applicable, if lifting it again and
        setting it down where it covers nothing may still settle it (what the packer is asked
        to do). The next frame decides: any other leaves it unsettled for good."""
        return self._unsettled[-1][1] if self._unsettled else None

    @staticmethod
    def _same_item(put_back: TakeOut, unsettled: list[tuple[int, TakeOut]]) -> bool:
        return bool(unsettled) and all(put_back.weighs_as(out) for _, out in unsettled)

    def _last_counted(self) -> bool:
        """Whether the last frame before this one was counted (or there was none): a frame
        after one no frame counted shows its units too, which its own step did not bring."""
        return not self.observations or self.observations[-1].applicable

    def _counted(self) -> int:
        return sum(o.new_items or 0 for o in self.observations)

    def _settle(self, unsettled: list[tuple[int, TakeOut]], by: int, in_view: bool) -> None:
        """The same item lifted again and its frame shows the items as before the first
        take-out: the put-backs in between add nothing either (each still `vetted`; `in_view`
        is the settling frame's)."""
        for index, out in unsettled:
            # Its codes stay unread: a frame the count could not use proves no unit either
            # (a hand may have held the unit whose code it read).
            reason = f"set down over another item; lifted again, insertion {by + 1} showed all"
            self.observations[index] = InsertionObservation(
                index, 0, None, {}, (), reason, take_out=out, all_in_view=in_view
            )

    def _seen_again(
        self, frame: FrameObservation
    ) -> tuple[list[Detection], dict[Detection, Detection]]:
        """The frame's sure detections apart from the items a put-back or a stacked unit hid
        that it shows again (where they were, looking as they did; an unknown look is no proof;
        the item over one, unlike it, does not take its place), and those: seen detection -> the
        hidden item it is."""
        live = [d for d in frame.result.detections if not d.unsure]
        looks = {**self._hidden, **self._under_stacked}
        hidden = list(looks)

        def alike(i: int, j: int) -> bool:
            return _known_alike(frame.looks.get(live[i]), looks[hidden[j]])

        again = {i: hidden[j] for i, j in pairing(live, hidden, alike)}
        return [d for i, d in enumerate(live) if i not in again], {
            live[i]: h for i, h in again.items()
        }

    def _shows_as_before(self, live: Sequence[Detection]) -> bool:
        """As many items as the last readable frame, and at most one of them new (where the
        item was set down): anything moved besides would be something else."""
        return len(live) == len(self._previous) and len(new_detections(live, self._previous)) <= 1

    def _hides_under_put_back(
        self, frame: FrameObservation, live: Sequence[Detection]
    ) -> list[Detection] | None:
        """The items the item put back hides, if the frame shows fewer items than the last
        readable frame, exactly one that was not there (the item set down again), and every
        item no longer seen lying mostly under that item's box (at most `MAX_HIDDEN` of them),
        but one: where the item was lifted from, which must look like it. None otherwise.

        An item set down over another's centre pairs with it by place; its look tells them
        apart (a pair whose looks differ is the new item on top and the old one under it).
        Without looks, that frame cannot tell the item set down over another from the item set
        back in place and another gone, and does not stand. Such a frame proves nothing about
        what the item covers: `PutBackGuard` then asks the weights to rule out a unit swapped
        for uncounted material (`InsertionObservation.hid`)."""
        if len(live) >= len(self._previous):
            return None
        looks, before = frame.looks, self._previous_looks
        kept = [
            (i, j)
            for i, j in pairing(live, self._previous)
            if looks_alike(looks.get(live[i]), before.get(self._previous[j]))
        ]
        new = [d for i, d in enumerate(live) if i not in {i for i, _ in kept}]
        gone = [d for j, d in enumerate(self._previous) if j not in {j for _, j in kept}]
        if len(new) != 1:
            return None
        item = new[0]
        # Where it was lifted from: gone, and looking like it (elsewhere first, else under it).
        origins = [d for d in gone if _known_alike(looks.get(item), before.get(d))]
        origins.sort(key=lambda d: _share_inside(d.box, item.box) >= _UNDER_SHARE)
        if not origins:
            return None
        rest = [d for d in gone if d is not origins[0]]
        under = [d for d in rest if _share_inside(d.box, item.box) >= _UNDER_SHARE]
        if len(under) != len(rest) or len(under) > MAX_HIDDEN:
            return None
        if any(d not in before for d in under):
            return None  # an item without a look could not be known again when uncovered
        return under

    def _uncovered(self, new: list[Detection]) -> list[Detection]:
        """`new` apart from units a stacked unit covered, seen again where they were, whatever
        their look (partly uncovered, a unit looks unlike itself): `_stacked` counted them."""
        under = list(self._under_stacked)
        pairs = pairing(new, under)
        for _, j in pairs:
            del self._under_stacked[under[j]]
        seen = {i for i, _ in pairs}
        return [d for i, d in enumerate(new) if i not in seen]

    def _stacked(
        self, frame: FrameObservation, live: Sequence[Detection]
    ) -> tuple[Detection, Detection] | None:
        """(the unit set down, the item under it) for the frame of a step that brought a unit
        the camera counts (`add`'s `unit_in`) but shows nothing new: a unit set down on
        another's centre pairs with it by place, and only its look tells them apart (as at a
        put-back, `_hides_under_put_back`; either of the two may be the larger). Every item of
        the frame before must still be in place and exactly one of them look unlike itself;
        unknown looks prove no change. Items gone, or more than one changed look, are something
        else (items moved, a change of light): nothing is counted for them, and the count is
        one short (a DEFICIT, unless the scale vouches). On the model card's 240 packed cartons
        (1,080 insertions, each a unit): miscounted insertions 17 -> 9, under-counts 9 -> 2
        (docs/vision.md)."""
        pairs = pairing(live, self._previous)
        if len(pairs) != len(self._previous):
            return None
        looks, before = frame.looks, self._previous_looks
        changed = [
            (live[i], self._previous[j])
            for i, j in pairs
            if _known_unlike(looks.get(live[i]), before.get(self._previous[j]))
        ]
        return changed[0] if len(changed) == 1 else None

    def _change(self, frame: FrameObservation, live: Sequence[Detection]) -> str:
        if not frame.readable:
            return f"the frame after it could not be read ({frame.result.reason})"
        before, shown = len(self._previous), len(live)
        if shown == before:
            return f"the frame after it shows {shown} items where {before} were, moved"
        return f"the frame after it shows {shown} items where {before} were"

    def total(self) -> int | None:
        if not self.observations or uncounted(self.observations):
            return None
        return sum(o.new_items or 0 for o in self.observations)

    def reset(self) -> None:
        self.observations.clear()
        self._previous, self._previous_looks = (), {}
        self._hidden = {}
        self._under_stacked = {}
        self._unsettled = []
        self._folded = False


@dataclass(frozen=True, slots=True)
class TakeOut:
    """One settled step down while packing: the levels before and after it."""

    level_before_g: float
    level_after_g: float
    # False when a frame was still to be taken as it happened: that frame may already show the
    # item moved, so its coming back cannot be told apart from something new.
    matchable: bool = True
    # The scale's error at level_before_g as read (NaN: unknown, and no take-out weighs as
    # another).
    error_g: float = math.nan
    # The level the step that brought the item back settled at (`TakeOuts.puts_back`; NaN:
    # not back, or not known).
    level_back_g: float = math.nan

    @property
    def grams(self) -> float:
        return self.level_before_g - self.level_after_g

    def weighs_as(self, other: TakeOut) -> bool:
        """The same item lifted again, as far as the weights tell: each step is off by up to
        twice the error at its levels (the error only grows with the load)."""
        return abs(self.grams - other.grams) <= 2 * (self.error_g + other.error_g)


@dataclass
class TakeOuts:
    """Items taken out while a carton is packed, until they come back.

    A settled step down is an item taken out: insertion counting cannot tell which, and the
    item set down again elsewhere would read as new. Packers take a unit out to rearrange and
    put it back all the time, so the very next settled step, when it goes from the level the
    take-out left back to the level before it (each within twice the scale's error there), is
    that item coming back, and its frame adds no item if it shows the items of the frame
    before, or fewer hidden under the item (`InsertionAccumulator.add(put_back=...)`), and the
    carton holds no counted unit light enough to have been lifted out with it unseen, nor, where
    the frame took items for hidden, one light enough to have been swapped for packing material
    (`PutBackGuard`). Anything else (another step first, a different weight, a frame with more
    items or other changes) leaves the take-out unmatched, and the carton's count not
    applicable: a light unit lifted out with the item and left out, or void fill put in instead,
    must not pass for the item coming back.
    """

    scale_error_g: Callable[[float], float]
    pending: list[TakeOut] = field(default_factory=list)

    def taken_out(self, from_g: float, to_g: float, matchable: bool = True) -> None:
        self.pending.append(TakeOut(from_g, to_g, matchable, self.scale_error_g(from_g)))

    def puts_back(self, from_g: float, to_g: float) -> TakeOut | None:
        """The latest item taken out if a settled step up from `from_g` to `to_g` brings it
        back (then forgotten), else None."""
        if not self.pending or not self.pending[-1].matchable:
            return None
        out = self.pending[-1]
        if not (self._near(from_g, out.level_after_g) and self._near(to_g, out.level_before_g)):
            return None
        return replace(self.pending.pop(), level_back_g=to_g)

    def _near(self, grams: float, level_g: float) -> bool:
        return abs(grams - level_g) <= 2 * self.scale_error_g(level_g)  # NaN: never near


@dataclass(frozen=True, slots=True)
class PutBackGuard:
    """Whether a put-back frame may stand (`vetted`): the carton holds no counted unit light
    enough to have been lifted out with the item, unseen (under it, or in place of one it
    uncovered), and left out. Needed only where the put-back's frame shows fewer items than the
    carton's count: where it shows as many, the count claims no more than that readable frame
    sees, whatever went out with the item (a detection that is no item, or one item seen as
    two, could still make up for a unit gone, as it can in any frame).

    The level the item came back to is below the level before it went out by what stayed out,
    give or take the two readings' errors, so a unit that light leaves the weights matching
    while the frame still shows as many items as before. `margin_g` is how heavy such a unit can
    be; every unit the camera counts on the order must weigh more (catalog mean minus four
    spreads), and one of unknown or variable weight rules the put-back out. This assumes
    nothing the camera does not count went in with the item (the frame would show a visible
    unit gone, and a hidden one left out with a slip of its weight is a coincidence of three).

    A frame that took items for hidden under the item (`InsertionObservation.hid`) shows one
    fewer wherever a unit went, so it cannot tell a visible unit lifted out with the item and
    swapped for material of its weight (fill or paperwork put back with the item) from one
    covered: there every counted unit must also outweigh the heaviest uncounted piece
    (`uncounted_g`: the site's paperwork and fill, the order's inserts and units the camera does
    not count, each at mean plus four spreads).
    """

    lightest_counted_g: float | None  # None: a counted unit of unknown or variable weight
    scale_error_g: Callable[[float], float]
    lightest_sku: str = ""  # the counted unit that sets lightest_counted_g
    uncounted_g: float = math.inf  # the heaviest uncounted piece; unknown: any
    # Every counted unit of the order at its lightest, lightest first (one entry per unit);
    # empty where one is of unknown weight, or none is counted.
    counted_lows_g: tuple[float, ...] = ()

    def margin_g(self, out: TakeOut) -> float:
        """The heaviest unit the weights cannot see missing: how far the level came back short
        of the level before (none counted when it came back higher; where that level is not
        known, the most a put-back may differ: twice the error at the level before, as read),
        plus the errors of those two readings, bounded at the true level, which may lie up to
        twice the read error above the reading, where the error may be a step larger (it steps
        up with the load)."""
        if not math.isfinite(out.level_before_g):
            return math.inf
        read = self.scale_error_g(out.level_before_g)
        at_most = self.scale_error_g(out.level_before_g + 2 * read)
        short = out.level_before_g - out.level_back_g
        if math.isnan(short):
            short = 2 * read
        return max(0.0, short) + 2 * at_most

    def counted_unit_in(self, from_g: float, to_g: float) -> bool:
        """Whether a settled step up from `from_g` to `to_g` is too heavy for everything the
        camera does not count together (`uncounted_g`) and heavy enough for the lightest unit
        it counts, give or take both readings' errors: a unit the camera counts went in with
        it, whether the frame shows it or not. (The second test holds where a site leaves its
        paperwork and fill unstated.)"""
        errors = self.scale_error_g(from_g) + self.scale_error_g(to_g)
        gain = to_g - from_g
        lightest = self.lightest_counted_g
        # NaN, unknown material or a counted unit of unknown weight: False
        return (
            lightest is not None and gain - errors > self.uncounted_g and gain + errors >= lightest
        )

    def counted_units_at_most(self, from_g: float, to_g: float) -> int | None:
        """The most units the camera counts that a settled step up from `from_g` to `to_g` can
        have brought: as many of the order's lightest as fit in the gain, give or take both
        readings' errors (packing material only adds weight). None where a counted unit's
        weight is unknown, or a reading is not a number."""
        if not self.counted_lows_g:
            return None
        room = to_g - from_g + self.scale_error_g(from_g) + self.scale_error_g(to_g)
        if not math.isfinite(room):
            return None
        units = 0
        for low in self.counted_lows_g:
            room -= low
            if room < 0:
                break
            units += 1
        return units

    def refuses(self, out: TakeOut, hid: int = 0) -> str:
        """Why the put-back frame cannot stand ("" when it can); `hid`: the items its frame
        took for hidden under the item."""
        lightest, sku = self.lightest_counted_g, self.lightest_sku or "a unit"
        if lightest is None:
            return f"{sku}, of unknown weight, could have been lifted out with it unseen"
        margin_g = self.margin_g(out)
        if not lightest > margin_g:  # NaN: refused
            return (
                f"{sku} ({lightest:.0f} g at the least) could have been lifted out with it "
                f"unseen: the weights cannot tell {margin_g:.0f} g apart there"
            )
        if hid and not lightest > margin_g + self.uncounted_g:
            return (
                f"its frame shows {hid} item(s) fewer, and {sku} ({lightest:.0f} g at the "
                f"least) could have gone out with it for packing material of its weight "
                f"({self.uncounted_g:.0f} g at the most)"
            )
        return ""


def vetted(
    observations: Sequence[InsertionObservation], guard: PutBackGuard | None
) -> list[InsertionObservation]:
    """`observations`, with each put-back frame that `guard` refuses (all of them without a
    guard) made not applicable (not carried over: no later frame can undo it); one whose frame
    shows the whole count needs no guard (`InsertionObservation.all_in_view`)."""
    kept: list[InsertionObservation] = []
    for o in observations:
        if o.take_out is not None and o.applicable and not o.all_in_view:
            why = (
                guard.refuses(o.take_out, o.hid)
                if guard is not None
                else "no weights to rule out a unit lifted out with it unseen"
            )
            if why:
                reason = f"an item taken out came back, but {why}"
                o = InsertionObservation(o.index, None, None, {}, o.codes, reason)
        kept.append(o)
    return kept


class StillnessGate:
    """Decides when a frame may be taken: N consecutive frames with little motion.

    Motion is the share of pixels (on a blurred 160x120 grey copy) whose level changed by more
    than 25: robust to sensor noise, sensitive to one item or a hand entering.
    """

    def __init__(self, settle_frames: int = 2, threshold: float = 0.004) -> None:
        self.settle_frames = settle_frames
        self.threshold = threshold
        self._last: np.ndarray | None = None
        self._still = 0

    def update(self, frame_bgr: np.ndarray) -> bool:
        small = cv2.resize(frame_bgr, (160, 120), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        grey = grey.astype(np.int16)
        moved = (
            self._last is None or float((np.abs(grey - self._last) > 25).mean()) > self.threshold
        )
        self._still = 0 if moved else self._still + 1
        self._last = grey
        return self._still >= self.settle_frames
