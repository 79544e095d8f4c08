"""Items taken out while packing and put back: the frame after adds no item, and only a take-out
still unmatched leaves the count not applicable (vision.observe.TakeOuts, the accumulator)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scale.weighing import scale_error_g
from vision.detectors.base import Detection, DetectionResult
from vision.observe import FrameObservation, InsertionAccumulator, TakeOuts, uncounted

DIVISION_G = 2.0


def take_outs() -> TakeOuts:
    return TakeOuts(lambda grams: scale_error_g(grams, DIVISION_G))


def frame(*centres: tuple[float, float]) -> FrameObservation:
    """A readable frame with a 40-pixel item at each centre."""
    detections = tuple(Detection((x - 20, y - 20, x + 20, y + 20), 0.9) for x, y in centres)
    return FrameObservation(DetectionResult(detections, False, 0.0, False, 640, 480), (), 0.0)


@given(
    level=st.floats(100, 20_000),
    grams=st.floats(5, 5_000),
    back_by=st.floats(-1.0, 1.0),
)
def test_the_weight_back_at_its_level_is_the_item_put_back(
    level: float, grams: float, back_by: float
) -> None:
    tolerance = 2 * scale_error_g(level, DIVISION_G)
    outs = take_outs()
    outs.taken_out(level, level - grams)
    assert outs.puts_back(level + back_by * tolerance)
    assert outs.pending == []  # matched once only
    assert not outs.puts_back(level)


@given(level=st.floats(100, 20_000), off=st.floats(1.01, 50))
def test_a_step_up_to_another_level_is_an_insertion(level: float, off: float) -> None:
    outs = take_outs()
    outs.taken_out(level, level - 300)
    tolerance = 2 * scale_error_g(level, DIVISION_G)
    assert not outs.puts_back(level + off * tolerance)
    assert not outs.puts_back(level - off * tolerance)
    assert outs.pending == [(level, 300)]  # still out: the close makes the count n/a


def test_items_come_back_latest_first() -> None:
    outs = take_outs()
    outs.taken_out(1000, 700)  # a 300 g item out
    outs.taken_out(700, 600)  # then a 100 g one
    assert not outs.puts_back(1000)  # both at once is not one item back: an insertion
    assert outs.puts_back(700)  # the 100 g item back
    assert outs.puts_back(1000)  # then the 300 g one
    assert outs.pending == []


def test_an_item_put_back_elsewhere_adds_nothing_and_the_next_frame_builds_on_it() -> None:
    acc = InsertionAccumulator()
    assert acc.add(frame((100, 100), (300, 100))).new_items == 2
    # The second item comes out and is set down again far from where it was.
    back = acc.add(frame((100, 100), (500, 300)), put_back=True)
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
