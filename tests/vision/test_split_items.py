"""One item the detector sees as two, where the weight step says no second unit went in
(vision.observe.InsertionAccumulator.add's `most_units`, PutBackGuard.counted_units_at_most)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from station.domain import Catalog, CatalogItem, ItemKind
from tests.vision.test_take_outs import HEAVY, OUT, UNCOUNTED_G, error, frame
from vision.detectors.base import Detection, DetectionResult
from vision.observe import FrameObservation, InsertionAccumulator, PutBackGuard
from vision.report import put_back_guard

ONE = frame((100, 100))
# The next unit at (300, 100) seen as two boxes over one another (40 px items, 24 px apart).
SPLIT = frame((100, 100), (288, 100), (312, 100))
# A second item beside the unit, touching nothing.
APART = frame((100, 100), (300, 100), (500, 300))


def counts(*frames: FrameObservation, most_units: int | None) -> list[int | None]:
    acc = InsertionAccumulator()
    return [acc.add(f, unit_in=True, most_units=most_units).new_items for f in frames]


def test_two_boxes_over_one_another_are_one_unit_where_the_step_brought_one() -> None:
    assert counts(ONE, SPLIT, most_units=1) == [1, 1]
    assert counts(ONE, SPLIT, most_units=None) == [1, 2]  # the weights said nothing
    assert counts(ONE, SPLIT, most_units=2) == [1, 2]  # two units may have gone in


def test_a_surplus_item_apart_from_the_others_stays_counted() -> None:
    # An item missed before, or another order's unit: nothing says it is the unit seen twice.
    assert counts(ONE, APART, most_units=1) == [1, 2]
    # Two boxes that only touch (a tenth of either shared) are two items.
    touching = frame((100, 100), (290, 100), (326, 100))
    assert counts(ONE, touching, most_units=1) == [1, 2]


def test_never_fewer_than_one_and_never_more_folded_than_the_surplus() -> None:
    triple = frame((100, 100), (290, 100), (300, 100), (310, 100))
    assert counts(ONE, triple, most_units=0) == [1, 1]
    assert counts(ONE, triple, most_units=2) == [1, 2]


def test_the_fainter_box_of_the_pair_is_the_one_folded() -> None:
    boxes = (
        Detection((80, 80, 120, 120), 0.9, "MUG"),
        Detection((268, 80, 308, 120), 0.4, "BOOK"),
        Detection((292, 80, 332, 120), 0.8, "MUG"),
    )
    shown = FrameObservation(DetectionResult(boxes, False, 0.0, False, 640, 480), (), 0.0)
    acc = InsertionAccumulator()
    acc.add(FrameObservation(DetectionResult(boxes[:1], False, 0.0, False, 640, 480), (), 0.0))
    assert acc.add(shown, most_units=1).new_labels == {"MUG": 1}


def test_a_frame_after_one_not_counted_is_not_bounded_by_its_step() -> None:
    # The unit of the unreadable frame before shows here too: this step did not bring it.
    acc = InsertionAccumulator()
    acc.add(ONE, most_units=1)
    acc.add(frame((100, 100), readable=False), most_units=1)
    assert acc.add(SPLIT, most_units=1).new_items == 2


def test_after_a_fold_no_frame_shows_the_whole_count() -> None:
    """The folded box stays among the frames' items: with one unit out of sight, a put-back
    frame would show as many items as the count, and stand without the weights' say."""
    acc = InsertionAccumulator()
    acc.add(ONE, most_units=1)  # unit A
    acc.add(SPLIT, most_units=1)  # unit B, seen as two
    over_a = frame((160, 100, 100), (288, 100), (312, 100))  # unit D set down over A
    assert acc.add(over_a).new_items == 1 and acc.total() == 3
    # D lifted out (A stuck under it, left out) and set down again where it was.
    back = acc.add(over_a, put_back=OUT, guard=HEAVY)
    assert back.new_items == 0 and not back.all_in_view
    acc.reset()  # the next carton starts without it
    acc.add(frame((100, 100), (300, 100)))
    assert acc.add(frame((100, 100), (300, 100)), put_back=OUT, guard=HEAVY).all_in_view


@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 400), st.integers(8, 120)),
        min_size=0,
        max_size=8,
    ),
    st.integers(0, 3),
)
def test_the_bound_only_ever_takes_away_and_never_below_one(
    boxes: list[tuple[int, int, int]], most_units: int
) -> None:
    shown = frame(*boxes)
    free, bounded = (
        counts(ONE, shown, most_units=None)[1],
        counts(ONE, shown, most_units=most_units)[1],
    )
    assert free is not None and bounded is not None
    assert bounded <= free
    assert bounded >= min(free, max(most_units, 1))


# -- the weights' bound -------------------------------------------------------------------------


def lows_guard(*lows: float) -> PutBackGuard:
    return PutBackGuard(min(lows), error, "", UNCOUNTED_G, tuple(sorted(lows)))


def test_a_step_brings_as_many_units_as_the_lightest_fit_in_it() -> None:
    guard = lows_guard(300, 100, 100)
    assert guard.counted_units_at_most(1000, 1150) == 1  # 100 fits, 100 + 100 does not
    assert guard.counted_units_at_most(1000, 1199) == 2  # 200 within the readings' errors
    assert guard.counted_units_at_most(1000, 1050) == 0
    assert guard.counted_units_at_most(1000, 1600) == 3


def test_no_bound_without_every_counted_units_weight() -> None:
    assert PutBackGuard(None, error, "X", UNCOUNTED_G).counted_units_at_most(0, 50) is None
    assert lows_guard(100).counted_units_at_most(math.nan, 50) is None
    assert PutBackGuard(100.0, error, "", UNCOUNTED_G).counted_units_at_most(0, 50) is None


def test_the_cartons_guard_holds_every_counted_unit_at_its_lightest() -> None:
    catalog = Catalog.from_lists(
        [
            CatalogItem(sku="MUG", name="Mug", unit_weight_g=412, weight_spread_g=4),
            CatalogItem(sku="CARD", name="Gift card", kind=ItemKind.INSERT, unit_weight_g=9),
        ]
    )
    guard = put_back_guard({"MUG": 3, "CARD": 1}, catalog, error)
    assert guard.counted_lows_g == (396, 396, 396)  # mean less four spreads; the card uncounted
    assert guard.counted_units_at_most(300, 712) == 1
    assert guard.counted_units_at_most(300, 1100) == 2
