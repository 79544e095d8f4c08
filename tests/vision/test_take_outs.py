"""Items taken out while packing and put back: the frame after adds no item (where no counted
unit on the order is light enough to have gone out with it unseen), and every other take-out
leaves the count not applicable (vision.observe.TakeOuts, PutBackGuard, the accumulator)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scale.weighing import scale_error_g
from vision.barcodes import CodeRead
from vision.detectors.base import Detection, DetectionResult
from vision.observe import (
    LOOK_CHANGED,
    MAX_HIDDEN,
    FrameObservation,
    InsertionAccumulator,
    PutBackGuard,
    TakeOut,
    TakeOuts,
    look_of,
    looks_alike,
    uncounted,
    vetted,
)

DIVISION_G = 2.0
OUT = TakeOut(1500, 1200)  # a 300 g unit taken out (and put back, for the accumulator)


def take_outs() -> TakeOuts:
    return TakeOuts(lambda grams: scale_error_g(grams, DIVISION_G))


def tolerance(level_g: float) -> float:
    return 2 * scale_error_g(level_g, DIVISION_G)


def error(grams: float) -> float:
    return scale_error_g(grams, DIVISION_G)


# The heaviest piece the camera does not count (fill, paperwork) at the test's site.
UNCOUNTED_G = 40.0


def guard(lightest_counted_g: float | None, sku: str = "") -> PutBackGuard:
    return PutBackGuard(lightest_counted_g, error, sku, UNCOUNTED_G)


# The guard of a carton of heavy units: it refuses nothing a frame shows.
HEAVY = PutBackGuard(300.0, error, "MUG", UNCOUNTED_G)


def frame(
    *centres: tuple[float, ...], readable: bool = True, looks: tuple[int, ...] = ()
) -> FrameObservation:
    """A frame with an item at each centre (x, y), 40 pixels wide, or (x, y, width)
    (unreadable: a hand over the carton), each with the look `looks` gives it by number (none
    given: looks unknown)."""
    detections = tuple(
        Detection((x - side / 2, y - side / 2, x + side / 2, y + side / 2), 0.9)
        for x, y, side in ((*c, 40.0)[:3] for c in centres)
    )
    result = DetectionResult(detections, not readable, 0.9 * (not readable), False, 640, 480)
    return FrameObservation(
        result, (), 0.0, looks=dict(zip(detections, map(look, looks), strict=False))
    )


def look(number: int) -> np.ndarray:
    """A look all in one hue x saturation bin: two numbers are two unlike items."""
    hist = np.zeros((18, 4), np.float32)
    hist.flat[number] = 1.0
    return hist


@given(
    level=st.floats(100, 20_000),
    grams=st.floats(5, 5_000),
    noise=st.tuples(st.floats(-0.99, 0.99), st.floats(-0.99, 0.99)),
)
def test_the_weight_straight_back_to_its_level_is_the_item_put_back(
    level: float, grams: float, noise: tuple[float, float]
) -> None:
    outs = take_outs()
    outs.taken_out(level, level - grams)
    after = level - grams
    assert outs.puts_back(after + noise[0] * tolerance(after), level + noise[1] * tolerance(level))
    assert outs.pending == []  # matched once only
    assert not outs.puts_back(after, level)


@given(level=st.floats(100, 20_000), off=st.floats(1.01, 50))
def test_a_step_up_to_another_level_is_an_insertion(level: float, off: float) -> None:
    outs = take_outs()
    outs.taken_out(level, level - 300)
    assert not outs.puts_back(level - 300, level + off * tolerance(level))
    assert not outs.puts_back(level - 300, level - off * tolerance(level))
    assert len(outs.pending) == 1  # still out: the close makes the count n/a


def test_something_lighter_than_the_tolerance_left_out_with_the_item_is_not_a_put_back() -> None:
    """A 5 g earring lifted out with a 300 g unit, only the unit put back: the weight cannot
    tell (within its error), so the frame must: it shows one item fewer (next test)."""
    outs = take_outs()
    outs.taken_out(1500, 1195)
    assert outs.puts_back(1195, 1495)  # the scale alone would accept it
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100), (500, 100)))  # unit, earring, another unit
    back = acc.add(frame((100, 100), (500, 300)), put_back=OUT)  # the earring stayed out
    assert back.new_items is None and not back.carried_over
    assert "shows 2 items where 3 were" in back.reason
    assert acc.total() is None and uncounted(acc.observations) == [back]


def test_two_items_out_at_once_coming_back_one_by_one_are_not_put_backs() -> None:
    outs = take_outs()
    outs.taken_out(2000, 1400)
    assert not outs.puts_back(1400, 1700)  # half of it: an insertion
    assert not outs.puts_back(1700, 2000)  # not straight back from the take-out's level
    assert len(outs.pending) == 1


def test_items_come_back_latest_first() -> None:
    outs = take_outs()
    outs.taken_out(1000, 700)  # a 300 g item out
    outs.taken_out(700, 600)  # then a 100 g one
    assert not outs.puts_back(600, 1000)  # both at once is not one item back
    assert outs.puts_back(600, 700)  # the 100 g item back
    assert outs.puts_back(700, 1000)  # then the 300 g one
    assert outs.pending == []


def test_a_take_out_while_a_frame_is_still_due_cannot_be_matched() -> None:
    """The frame of the insertion before may be taken after the item was set down elsewhere:
    it would count the moved item as new, so its coming back proves nothing."""
    outs = take_outs()
    outs.taken_out(1000, 700, matchable=False)
    assert not outs.puts_back(700, 1000)
    assert len(outs.pending) == 1


def test_nan_levels_never_match() -> None:
    outs = take_outs()
    outs.taken_out(math.nan, math.nan)
    assert not outs.puts_back(700, 1000)


def test_an_item_put_back_elsewhere_adds_nothing_and_the_next_frame_builds_on_it() -> None:
    acc = InsertionAccumulator()
    assert acc.add(frame((100, 100), (300, 100))).new_items == 2
    # The second item comes out and is set down again far from where it was.
    back = acc.add(frame((100, 100), (500, 300)), put_back=OUT)
    assert back.new_items == 0 and back.put_back and back.visible == 2
    # The next insertion is compared with the put-back frame: only the new item is new.
    assert acc.add(frame((100, 100), (500, 300), (300, 400))).new_items == 1
    assert acc.total() == 3
    assert uncounted(acc.observations) == []


def test_without_the_put_back_the_moved_item_would_count_twice() -> None:
    """What the put-back frame prevents (so the test above can fail)."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100)))
    assert acc.add(frame((100, 100), (500, 300))).new_items == 1
    assert acc.total() == 3


def test_a_put_back_frame_with_more_items_or_none_readable_leaves_the_count_not_applicable() -> (
    None
):
    """More items: a unit slipped in with it (or the item had hidden one); unreadable: nobody
    saw what came back. Neither is carried over to the next frame."""
    for shown in (frame((100, 100), (500, 300), (300, 400)), frame(readable=False)):
        acc = InsertionAccumulator()
        acc.add(frame((100, 100), (300, 100)))
        back = acc.add(shown, put_back=OUT)
        assert back.new_items is None and not back.carried_over
        acc.add(frame((100, 100), (500, 300), (300, 400)))
        assert acc.total() is None


def with_one_hidden() -> InsertionAccumulator:
    """Three items counted, then a fourth set down over the one at (200, 300): four counted,
    three in view."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100), (200, 300)))
    assert acc.add(frame((100, 100), (300, 100), (230, 330))).new_items == 1
    return acc


def test_a_put_back_stands_only_if_no_counted_unit_could_have_gone_out_with_it_unseen() -> None:
    """A 5 g earring hidden under the 300 g unit, lifted out with it and left out: the weights
    match (within the scale's error) and the frame shows as many items as before (the earring
    was hidden), so only the order's weights can rule it out."""
    acc = with_one_hidden()
    back = acc.add(frame((100, 100), (500, 300), (230, 330)), put_back=OUT)
    assert back.new_items == 0 and not back.all_in_view
    assert vetted(acc.observations, guard(100.0)) == acc.observations
    for refused, why in (
        (guard(5.0, "EAR"), "EAR (5 g at the least) could have been lifted out with it unseen"),
        (guard(None, "CHEESE"), "CHEESE, of unknown weight"),
        (None, "no weights to rule out"),
    ):
        kept = vetted(acc.observations, refused)
        assert kept[2].new_items is None and not kept[2].carried_over and why in kept[2].reason
        assert uncounted(kept) == [kept[2]]


def test_with_every_counted_item_in_view_a_put_back_needs_no_weights() -> None:
    """The put-back frame shows the whole count: the count claims no more than it sees. A
    unit lifted out with the item would leave it one item short. The earring in view beside
    the mug is no reason to refuse the put-back."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100)))
    back = acc.add(frame((100, 100), (500, 300)), put_back=OUT)
    assert back.new_items == 0 and back.all_in_view
    for any_guard in (guard(5.0, "EAR"), guard(None, "CHEESE"), None):
        assert vetted(acc.observations, any_guard) == acc.observations
    # The earring lifted out with the item: the frame after is one short, not a put-back.
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100)))
    assert acc.add(frame((500, 300)), put_back=OUT).new_items is None


def read(true_levels: tuple[float, ...], noise: tuple[float, ...]) -> list[float]:
    """The scale's readings of `true_levels`, each off by a share of its error there."""
    return [g + n * error(g) for g, n in zip(true_levels, noise, strict=True)]


def test_a_unit_left_out_with_the_item_is_no_put_back_unless_within_the_guards_margin() -> None:
    """Levels either side of the scale's error steps (1000 g and 4000 g at 2 g divisions), a
    unit left out weighing up to eight errors in quarter steps, each of the four readings at
    either end of its error or right: whenever the weights match a put-back, the unit weighs
    no more than `PutBackGuard.margin_g`, so a guard whose lightest counted unit is heavier
    refuses nothing it should not. The margin is tight: one error less lets some through."""
    tightest = 0.0
    for level in (120.0, 997.0, 1000.0, 1001.0, 1003.0, 3995.0, 4001.0, 4005.0, 9000.0):
        for quarters in range(1, 33):
            left_out = quarters / 4 * error(level)
            out_level = (level - left_out) / 2  # the item taken out is half of the rest
            for noise in itertools.product((-1.0, 0.0, 1.0), repeat=4):
                levels = (level, out_level, out_level, level - left_out)
                before, after, from_g, to_g = read(levels, noise)
                outs = take_outs()
                outs.taken_out(before, after)
                out = outs.puts_back(from_g, to_g)
                if out is not None:
                    margin = guard(None).margin_g(out)
                    assert left_out <= margin, (level, quarters, noise)
                    tightest = max(tightest, left_out - (margin - error(level)))
    assert tightest > 0  # some unit beyond one error less than the margin does match


def test_the_guard_counts_how_far_the_level_came_back_short() -> None:
    """A unit lifted out with the item leaves the level back short by its weight, give or take
    the two readings' errors: where the level comes back right to where it was, a unit heavier
    than those errors cannot have stayed out; where it comes back one error short, it can."""
    read = error(1500)
    at_most = error(1500 + 2 * read)
    unit_g = 2 * at_most + 1
    outs = take_outs()
    outs.taken_out(1500, 1200)
    back = outs.puts_back(1200, 1500)
    assert back is not None and back.level_back_g == 1500
    assert guard(unit_g).margin_g(back) == 2 * at_most
    assert guard(unit_g).refuses(back) == ""
    outs.taken_out(1500, 1200)
    short = outs.puts_back(1200, 1500 - read)
    assert short is not None and guard(unit_g).refuses(short)
    # Back higher than before: nothing counts as short.
    outs.taken_out(1500, 1200)
    higher = outs.puts_back(1200, 1500 + read)
    assert higher is not None and guard(unit_g).margin_g(higher) == 2 * at_most
    # Not known where it came back to: the most a matched put-back may differ.
    assert guard(unit_g).margin_g(OUT) == 2 * error(1500) + 2 * at_most


def test_a_put_back_frame_with_two_items_moved_leaves_the_count_not_applicable() -> None:
    """As many items, but two where none was: something besides the item changed (a unit
    swapped for another), so the frame cannot say the item alone came back."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100)))
    back = acc.add(frame((500, 300), (300, 400)), put_back=OUT)
    assert back.new_items is None and back.reason.endswith("where 2 were, moved")


# -- a second look: the item set down over another is lifted again --------------------------

BEFORE = frame((100, 100), (300, 100))  # the frame before the item at (300, 100) is taken out
OVER = frame((110, 100))  # the item set down again over the other one, which it hides
BESIDE = frame((100, 100), (500, 300))  # the item lifted again and set down beside


def lifted(grams: float = 300.0, level_g: float = 1500.0) -> TakeOut:
    """The item taken out, as `TakeOuts` records it (with the scale's error at the level)."""
    return TakeOut(level_g, level_g - grams, error_g=error(level_g))


def test_an_item_set_down_over_another_and_lifted_again_adds_nothing() -> None:
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    over = acc.add(OVER, put_back=lifted())
    assert over.new_items is None and "shows 1 items where 2 were" in over.reason
    assert acc.awaiting_second_look() == lifted()
    assert acc.total() is None
    again = acc.add(BESIDE, put_back=lifted(301, 1501))  # the same item, read again
    assert again.new_items == 0 and acc.awaiting_second_look() is None
    settled = acc.observations[1]
    assert settled.new_items == 0 and settled.take_out == lifted()
    assert "lifted again, insertion 3 showed all" in settled.reason
    assert acc.total() == 2 and uncounted(acc.observations) == []
    # Every counted item was in view before the take-out: no weights needed (next test).
    assert settled.all_in_view and vetted(acc.observations, None) == acc.observations


# Three items with their looks (0, 1, 2); then item 0 comes out.
LOOKED = frame((100, 100), (300, 100), (500, 100), looks=(0, 1, 2))


def test_an_item_set_down_squarely_over_another_is_told_from_it_by_its_look() -> None:
    """Item 0 set down on item 1's centre hides it: by place it pairs with item 1, by look it is
    item 0 over item 1, so the put-back stands (its frame shows 2 of 3: the guard decides)."""
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    back = acc.add(frame((302, 98), (500, 100), looks=(0, 2)), put_back=OUT, guard=HEAVY)
    assert back.new_items == 0 and back.put_back and back.visible == 2
    assert not back.all_in_view and acc.awaiting_second_look() is None
    assert acc.total() == 3
    assert back.hid == 1
    assert vetted([back], guard(300.0)) == [back]
    assert vetted([back], guard(5.0))[0].new_items is None  # an earring could have gone out
    # A 30 g unit could have gone out with item 0 for 30 g of fill: one fewer either way.
    swapped = vetted([back], guard(30.0))[0]
    assert swapped.new_items is None and "packing material" in swapped.reason
    # A frame that shows the items as before is not asked about material: a unit gone would
    # leave it one short.
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    moved = acc.add(
        frame((100, 300), (300, 100), (500, 100), looks=(0, 1, 2)), put_back=OUT, guard=HEAVY
    )
    assert moved.hid == 0 and vetted([moved], guard(30.0)) == [moved]


def test_a_hiding_frame_the_weights_cannot_vouch_for_asks_for_a_second_look() -> None:
    """Told the carton's guard (a 30 g unit on the order, lighter than the fill), the frame
    that hides item 1 does not stand: the packer is asked at once for a second look (at the
    report it would only be refused), and the item set down beside settles it."""
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    over = acc.add(frame((302, 98), (500, 100), looks=(0, 2)), put_back=lifted(), guard=guard(30))
    assert over.new_items is None and acc.awaiting_second_look() == lifted()
    beside = acc.add(frame((100, 300), (300, 100), (500, 100), looks=(0, 1, 2)), put_back=lifted())
    assert beside.new_items == 0 and acc.awaiting_second_look() is None
    assert acc.total() == 3 and vetted(acc.observations, guard(30)) == acc.observations
    # A guard that vouches for it changes nothing.
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    over = acc.add(frame((302, 98), (500, 100), looks=(0, 2)), put_back=lifted(), guard=guard(300))
    assert over.new_items == 0 and over.hid == 1


def test_an_item_set_down_off_centre_over_another_stands() -> None:
    """Item 0 (80 px wide here) set down 25 px off item 1's centre (not paired with it) hides
    it: every item no longer seen but one (where item 0 came from, which looked like it) lies
    mostly under item 0's new box."""
    before = frame((100, 100, 80), (300, 100), (500, 100), looks=(0, 1, 2))
    acc = InsertionAccumulator()
    acc.add(before)
    back = acc.add(frame((318, 118, 80), (500, 100), looks=(0, 2)), put_back=OUT, guard=HEAVY)
    assert back.new_items == 0 and back.visible == 2 and back.hid == 1
    # What is gone from elsewhere must be the item that came back: by its look.
    for looks in ((3, 2), ()):
        acc = InsertionAccumulator()
        acc.add(before)
        other = acc.add(frame((318, 118, 80), (500, 100), looks=looks), put_back=OUT, guard=HEAVY)
        assert other.new_items is None


def test_one_item_cannot_hide_more_than_a_put_back_was_seen_to() -> None:
    """A 400 px detection (a sheet laid over everything, or the carton read as one item) over
    three items: more than `MAX_HIDDEN` hidden at once is not a put-back over them."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (200, 100), (300, 100), (260, 200), looks=(0, 1, 2, 3)))
    back = acc.add(frame((230, 130, 400), looks=(0,)), put_back=OUT, guard=HEAVY)
    assert back.new_items is None and MAX_HIDDEN == 2


def test_a_second_look_that_hides_again_is_asked_again() -> None:
    """Looks alike, item 0 over item 1 is unsettled; lifted again and set down over item 2
    (looks unlike, so it would stand alone), it settles nothing: the packer is asked again."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100), (500, 100), looks=(1, 1, 2)))
    first = acc.add(frame((302, 98), (500, 100), looks=(1, 2)), put_back=lifted(), guard=HEAVY)
    assert first.new_items is None and acc.awaiting_second_look() == lifted()
    again = acc.add(frame((300, 100), (502, 98), looks=(1, 1)), put_back=lifted(), guard=HEAVY)
    assert again.new_items is None and acc.awaiting_second_look() == lifted()
    beside = acc.add(
        frame((300, 100), (500, 100), (100, 300), looks=(1, 2, 1)), put_back=lifted(), guard=HEAVY
    )
    assert beside.new_items == 0 and acc.awaiting_second_look() is None
    assert acc.total() == 3


def test_equal_detections_pair_by_position_not_by_value() -> None:
    twin = frame((100, 100), (100, 100))
    acc = InsertionAccumulator()
    acc.add(frame((100, 100)))
    assert acc.add(twin).new_items == 1


def test_a_take_out_from_an_unknown_level_has_no_margin() -> None:
    assert guard(300.0).margin_g(TakeOut(math.nan, 700.0)) == math.inf
    assert guard(300.0).refuses(TakeOut(math.nan, 700.0))


@pytest.mark.parametrize(
    "after",
    [
        # Set back in place, item 1 gone: nothing new where it could be hiding item 1.
        frame((100, 100), (500, 100), looks=(0, 2)),
        # Set down squarely on item 1 but looking like it: the same as item 1 still there and
        # item 0 gone, or item 0 back over item 1: the frame cannot tell.
        frame((302, 98), (500, 100), looks=(1, 2)),
        # The same without looks.
        frame((302, 98), (500, 100)),
        # Set down between, item 1 gone: not under item 0.
        frame((200, 200), (500, 100), looks=(0, 2)),
        # Two items new, one of them over item 1: something else moved.
        frame((302, 98), (400, 300), looks=(0, 3)),
    ],
)
def test_a_put_back_frame_hiding_an_item_stands_only_if_the_item_set_down_covers_it(
    after: FrameObservation,
) -> None:
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    back = acc.add(after, put_back=OUT, guard=HEAVY)
    assert back.new_items is None and acc.awaiting_second_look() == OUT
    assert acc.total() is None


def hid_item_1() -> InsertionAccumulator:
    """Item 0 taken out and set down squarely over item 1 (standing): 3 counted, 2 in view."""
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    assert (
        acc.add(frame((302, 98), (500, 100), looks=(0, 2)), put_back=OUT, guard=HEAVY).new_items
        == 0
    )
    return acc


def test_an_item_a_put_back_hid_is_not_new_when_seen_again() -> None:
    """Item 0 slid a little off item 1 (no weight step) before a unit goes in: item 1, where it
    was and looking as it did, is not new (by place alone it would pass for item 0, which would
    then count as new); the unit is."""
    acc = hid_item_1()
    after = acc.add(frame((312, 110), (500, 100), (300, 100), (200, 300), looks=(0, 2, 1, 3)))
    assert after.new_items == 1 and after.visible == 4
    assert acc.total() == 4


def test_a_later_put_back_answers_for_the_items_still_hidden() -> None:
    """Item 1 stays hidden under item 0; item 0 comes out again (item 1 under it, unseen) and
    goes back with fill of item 1's weight: the frame shows the items as before, so the guard
    must rule out a unit swapped for material for every item still hidden."""
    acc = hid_item_1()
    back = acc.add(frame((100, 100), (500, 100), looks=(0, 2)), put_back=OUT, guard=HEAVY)
    assert back.new_items == 0 and back.hid == 1 and not back.all_in_view
    assert vetted([back], guard(300)) == [back]
    assert vetted([back], guard(30))[0].new_items is None
    # Told the carton's guard, it asks for a second look at once.
    acc = hid_item_1()
    asked = acc.add(frame((100, 100), (500, 100), looks=(0, 2)), put_back=lifted(), guard=guard(30))
    assert asked.new_items is None and "packing material" in asked.reason


def test_without_the_cartons_guard_no_frame_takes_items_for_hidden() -> None:
    acc = InsertionAccumulator()
    acc.add(LOOKED)
    back = acc.add(frame((302, 98), (500, 100), looks=(0, 2)), put_back=lifted())
    assert back.new_items is None and acc.awaiting_second_look() == lifted()


def test_the_place_an_item_was_lifted_from_must_look_like_it_even_under_it() -> None:
    """An 80 px item moved 40 px onto its neighbour: its own old box lies half under its new
    one. The neighbour is hidden only if what is gone includes one looking like the item."""
    before = frame((100, 100, 80), (140, 100), (500, 100), looks=(0, 1, 2))
    for looks, stands in (((0, 2), True), ((3, 2), False)):
        acc = InsertionAccumulator()
        acc.add(before)
        back = acc.add(frame((140, 100, 80), (500, 100), looks=looks), put_back=OUT, guard=HEAVY)
        assert (back.new_items == 0) is stands


def test_an_item_seen_again_where_a_hidden_one_was_but_unlike_it_is_new() -> None:
    """A unit of another look set down where item 1 lies hidden, or one whose look is not
    known: new (a hidden item is only recognised by its look)."""
    for unit in ((300, 100), None):
        acc = hid_item_1()
        shown = frame((302, 98), (500, 100), (300, 100), looks=(0, 2, 3) if unit else ())
        assert acc.add(shown).new_items == 1


def test_the_item_lifted_again_off_what_it_hid_is_put_back_as_before() -> None:
    """Item 0 comes out again and goes back beside: item 1 shows again, the frame shows the
    items as before (item 0 moved), so it stands; item 1 is seen, no longer hidden."""
    acc = hid_item_1()
    again = acc.add(
        frame((300, 100), (500, 100), (100, 300), looks=(1, 2, 0)), put_back=OUT, guard=HEAVY
    )
    assert again.new_items == 0 and again.visible == 3 and again.all_in_view
    assert acc.total() == 3 and acc.awaiting_second_look() is None
    # Seen again, item 1 is an item of the last frame like any other.
    assert acc.add(frame((300, 100), (500, 100), (100, 300), (400, 400))).new_items == 1


def test_looks_measure_an_items_colours_and_unknown_looks_are_alike() -> None:
    red, blue = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
    red[:] = (30, 30, 220)
    blue[:] = (220, 60, 30)
    box = (40.0, 30.0, 120.0, 90.0)
    assert looks_alike(look_of(red, box), look_of(red.copy(), box))
    assert not looks_alike(look_of(red, box), look_of(blue, box))
    assert looks_alike(look_of(red, box), None) and looks_alike(None, None)
    assert look_of(red, (500.0, 500.0, 600.0, 600.0)) is None  # off the frame: no look
    assert 0 < LOOK_CHANGED < 1


def test_without_the_guard_the_count_never_claims_more_than_the_put_back_frame_shows() -> None:
    """Why no weights are needed then. The box set down right over the mug passes for it (one
    to one, nearest centres): two counted, three in the carton. Lifted with the mug hidden
    under it, the mug left out, the box set down beside: the frame shows the two counted, so
    the put-back stands unguarded, and the count (2) is what is left (the box and the book)."""
    acc = InsertionAccumulator()
    acc.add(frame((100, 100), (300, 100)))  # the mug and the book
    assert acc.add(frame((102, 100), (300, 100))).new_items == 0  # the box over the mug
    back = acc.add(frame((300, 100), (500, 300)), put_back=OUT)
    assert back.new_items == 0 and back.all_in_view
    assert vetted(acc.observations, guard(5.0, "MUG")) == acc.observations
    assert acc.total() == 2


def test_a_settled_put_back_is_vetted_where_its_frame_shows_less_than_the_count() -> None:
    """A counted unit hidden under another: the settling frame shows three of the four counted,
    so each settled put-back stands only where the order's weights allow."""
    acc = with_one_hidden()
    acc.add(frame((110, 100), (230, 330)), put_back=lifted())  # over the one at (100, 100)
    acc.add(frame((100, 100), (500, 300), (230, 330)), put_back=lifted())
    assert [o.new_items for o in acc.observations] == [3, 1, 0, 0]
    assert not any(o.all_in_view for o in acc.observations)
    kept = vetted(acc.observations, guard(5.0, "EAR"))
    assert uncounted(kept) == [kept[2], kept[3]]
    assert vetted(acc.observations, guard(100.0)) == acc.observations


def test_set_down_over_another_twice_then_beside_settles_both() -> None:
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    acc.add(OVER, put_back=lifted())
    acc.add(frame((90, 110)), put_back=lifted(299))
    acc.add(BESIDE, put_back=lifted())
    assert [o.new_items for o in acc.observations] == [2, 0, 0, 0]


@pytest.mark.parametrize(
    "second_look",
    [
        pytest.param((BESIDE, lifted(320)), id="another-weight-lifted"),
        pytest.param((BESIDE, TakeOut(1500, 1200)), id="weight-error-unknown"),
        pytest.param((frame((100, 100), (500, 300), (300, 400)), lifted()), id="more-items"),
        pytest.param((frame((500, 300), (300, 400)), lifted()), id="two-moved"),
        pytest.param((frame(readable=False), lifted()), id="unreadable"),
    ],
)
def test_a_second_look_settles_nothing_unless_the_same_item_shows_all_as_before(
    second_look: tuple[FrameObservation, TakeOut],
) -> None:
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    acc.add(OVER, put_back=lifted())
    acc.add(*second_look[:1], put_back=second_look[1])
    assert acc.observations[1].new_items is None
    assert acc.total() is None


def test_a_second_look_must_come_next() -> None:
    """An insertion in between, one no frame was taken of, or the close shows the carton as it
    now is: what the earlier frame hid cannot be told from what went in since."""
    beside_again = frame((100, 100), (500, 300))  # would settle it, were it next
    for between in (
        lambda acc: acc.add(frame((110, 100), (300, 400))),
        lambda acc: acc.add_unseen("no still frame from the camera in time", True),
        lambda acc: acc.add_unseen("inference failed", False),
        lambda acc: acc.add(OVER),  # the close frame
    ):
        acc = InsertionAccumulator()
        acc.add(BEFORE)
        acc.add(OVER, put_back=lifted())
        between(acc)
        assert acc.awaiting_second_look() is None
        acc.add(beside_again, put_back=lifted())
        assert acc.observations[1].new_items is None and acc.total() is None


def test_a_second_look_at_another_item_settles_only_from_there_on() -> None:
    """The book fails, then a 320 g item fails: a look at the book's weight settles neither."""
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    acc.add(OVER, put_back=lifted())
    acc.add(OVER, put_back=lifted(320))
    assert acc.awaiting_second_look() == lifted(320)
    acc.add(BESIDE, put_back=lifted())
    assert [o.new_items for o in acc.observations] == [2, None, None, 0]


def test_a_settled_put_back_proves_no_code_its_frame_read() -> None:
    """A hand over the carton held a unit whose code the unreadable frame read: settled, that
    frame adds no item and proves no unit either."""
    code = CodeRead("EAN13", "4006381333931", "]E0", b"", (5, 5), (), gtin="04006381333931")
    held = frame(readable=False)
    held = FrameObservation(held.result, (code,), 0.0)
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    acc.add(held, put_back=lifted())
    acc.add(BESIDE, put_back=lifted())
    assert acc.observations[1].new_items == 0 and acc.observations[1].codes == ()


def test_a_new_carton_forgets_the_look_it_was_waiting_for() -> None:
    acc = InsertionAccumulator()
    acc.add(BEFORE)
    acc.add(OVER, put_back=lifted())
    acc.reset()
    assert acc.awaiting_second_look() is None
    acc.add(BEFORE)
    acc.add(BESIDE, put_back=lifted())
    assert [o.new_items for o in acc.observations] == [2, 0]


def test_take_outs_record_the_scales_error_so_the_same_item_can_be_recognised() -> None:
    outs = take_outs()
    outs.taken_out(1500, 1200)
    first = outs.puts_back(1200, 1500)
    outs.taken_out(1502, 1201)
    again = outs.puts_back(1201, 1501)
    assert first is not None and again is not None and again.weighs_as(first)
    outs.taken_out(1501, 1150)
    other = outs.puts_back(1150, 1501)
    assert other is not None and not other.weighs_as(first)
