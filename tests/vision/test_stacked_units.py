"""A unit set down on another's centre while packing: by place it pairs with the unit under it,
by look it is a new unit (vision.observe.InsertionAccumulator._stacked)."""

from __future__ import annotations

import pytest

from simulators.camera import InsertionSequence
from tests.vision.test_take_outs import HEAVY, OUT, UNCOUNTED_G, error, frame
from vision.config import DEFAULT_MODEL, CounterDetectorConfig
from vision.detectors import CounterDetector
from vision.evaluate import INSERTION_RENDER
from vision.observe import InsertionAccumulator, Pipeline, PutBackGuard, new_detections

# Three units with their looks (0, 1, 2).
THREE = frame((100, 100), (300, 100), (500, 100), looks=(0, 1, 2))


def packed(*frames, unit_in: bool = True) -> tuple[InsertionAccumulator, list[int | None]]:
    """THREE, then `frames`, each the frame of a step that brought a unit (`unit_in`)."""
    acc = InsertionAccumulator()
    counts = [acc.add(f, unit_in=unit_in).new_items for f in (THREE, *frames)]
    return acc, counts


def test_a_unit_set_down_squarely_on_another_is_counted_by_its_look() -> None:
    # A unit of look 3, a little larger, on unit 1's centre: unit 1 is no longer seen.
    acc, counts = packed(frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2)))
    assert counts == [3, 1] and acc.total() == 4


def test_the_unit_under_it_seen_again_where_it_was_is_not_new() -> None:
    # The unit on top is nudged aside: unit 1 shows again, looking as it did.
    acc, counts = packed(
        frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2)),
        frame((296, 104), (100, 100), (500, 100), (304, 98, 50), looks=(1, 0, 2, 3)),
    )
    assert counts == [3, 1, 0] and acc.total() == 4


def test_without_the_weights_word_a_changed_look_counts_nothing() -> None:
    # A sheet of paper over one item, a flipped item, the close frame: no unit went in.
    shown = frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2))
    assert packed(shown, unit_in=False)[1] == [3, 0]


def test_a_put_back_frame_is_not_counted_as_a_unit_set_down() -> None:
    acc = InsertionAccumulator()
    acc.add(THREE, unit_in=True)
    shown = frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2))
    assert acc.add(shown, put_back=OUT, guard=HEAVY, unit_in=True).new_items == 0


def test_a_unit_under_a_stacked_one_is_not_asked_about_at_a_later_put_back() -> None:
    # Covered as any unit a later one covers: a put-back elsewhere hides nothing.
    acc, _ = packed(frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2)))
    back = acc.add(
        frame((302, 98, 50), (100, 300), (500, 100), looks=(3, 0, 2)), put_back=OUT, guard=HEAVY
    )
    assert back.new_items == 0 and back.hid == 0 and acc.total() == 4


def test_the_unit_on_top_does_not_take_the_place_of_the_unit_under_it() -> None:
    # The top unit is nudged, unit 1 slides out a little from under it: unit 1, not new.
    acc, counts = packed(
        frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2)),
        frame((304, 98, 50), (100, 100), (500, 100), (296, 104), looks=(3, 0, 2, 1)),
    )
    assert counts == [3, 1, 0] and acc.total() == 4


def test_a_look_unchanged_or_unknown_proves_no_unit() -> None:
    # A unit of the same look stacked on its twin cannot be told from it (the weight can).
    same = frame((302, 98, 50), (100, 100), (500, 100), looks=(1, 0, 2))
    unknown = frame((302, 98, 50), (100, 100), (500, 100))
    for shown in (same, unknown):
        assert packed(shown)[1] == [3, 0]


def test_more_than_one_changed_look_counts_nothing() -> None:
    # Two items look different where they were: a change of light or items moved, not a unit.
    assert packed(frame((300, 100), (100, 100), (500, 100), looks=(3, 0, 4)))[1] == [3, 0]


def test_a_frame_where_an_item_is_gone_counts_nothing_for_a_changed_look() -> None:
    # Something laid over units 0 and 1 (a sheet): one of them gone, the other changed.
    assert packed(frame((300, 100, 300), (500, 100), looks=(3, 2)))[1] == [3, 0]


def test_a_small_unit_on_a_larger_ones_centre_counts_too() -> None:
    # The detector often sees only the unit on top, though the larger one shows around it.
    assert packed(frame((302, 98, 16), (100, 100), (500, 100), looks=(3, 0, 2)))[1] == [3, 1]


def test_a_frame_with_a_new_item_elsewhere_counts_only_that_one() -> None:
    # A new unit beside the others and unit 1's look changed (partly covered by it): one unit.
    shown = frame((300, 100), (100, 100), (500, 100), (330, 300), looks=(3, 0, 2, 4))
    assert packed(shown)[1] == [3, 1]


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="model not committed")
def test_a_rendered_unit_set_down_on_another_is_counted_with_the_shipped_model() -> None:
    """Carton 90 of development seed 7707 (three units): the third unit lands on the second's
    centre. By place the frame shows nothing new; by look, the third unit."""
    pipeline = Pipeline(CounterDetector(CounterDetectorConfig(type="counter", threads=1)))
    sequence = InsertionSequence(
        7707 * 100_000 + 90,
        width=INSERTION_RENDER[0],
        height=INSERTION_RENDER[1],
        level="normal",
        family="holdout",
    )
    acc = InsertionAccumulator()
    counts, live = [], []
    for _ in range(3):
        assert sequence.insert()
        frame_bgr, truth = sequence.frame()
        observed = pipeline.observe(frame_bgr)
        before, live = live, [d for d in observed.result.detections if not d.unsure]
        by_place = new_detections(live, before)
        counts.append(acc.add(observed, unit_in=True).new_items)
    assert truth.count == 3
    assert by_place == [], "the scene no longer stacks the third unit: pick another carton"
    assert counts == [1, 1, 1] and acc.total() == 3


def test_a_step_counts_as_a_unit_only_beyond_all_the_uncounted_material() -> None:
    # UNCOUNTED_G (40 g) of paperwork and fill at most; readings off by up to 2 g and 3 g here.
    socks = PutBackGuard(30.0, error, "SOCK", UNCOUNTED_G)  # the lightest unit counted: 30 g
    assert not socks.counted_unit_in(1000, 1045)
    assert socks.counted_unit_in(1000, 1046)
    assert not socks.counted_unit_in(1000, float("nan"))
    # Lighter than the lightest unit counted (300 g here, less the errors): no unit.
    site_without_materials = PutBackGuard(300.0, error, "MUG", 0.0)
    assert not site_without_materials.counted_unit_in(1000, 1290)
    assert site_without_materials.counted_unit_in(1000, 1296)
    unknown = PutBackGuard(300.0, error, "MUG")  # material of unknown weight: any
    assert not unknown.counted_unit_in(1000, 5000)


def test_the_unit_under_it_uncovered_looking_otherwise_is_not_new() -> None:
    # The unit on top is nudged; unit 1 shows beside it, half covered still (its look changed):
    # by place it is unit 1, counted already.
    acc, counts = packed(
        frame((302, 98, 50), (100, 100), (500, 100), looks=(3, 0, 2)),
        frame((304, 98, 50), (100, 100), (500, 100), (296, 104), looks=(3, 0, 2, 5)),
    )
    assert counts == [3, 1, 0] and acc.total() == 4
