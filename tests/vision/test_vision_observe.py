"""Pairing one frame's detections with the previous frame's (vision/observe.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vision.detectors.base import Detection
from vision.observe import new_detections


def item(x: float, y: float, side: float = 40.0, unsure: bool = False) -> Detection:
    return Detection((x - side / 2, y - side / 2, x + side / 2, y + side / 2), 0.9, None, unsure)


def test_an_item_dropped_beside_an_earlier_one_is_new() -> None:
    earlier = item(100, 100)
    # Both centres lie within half a side of the earlier item's: only one of them is that item.
    current = [item(102, 101), item(115, 100)]
    assert new_detections(current, [earlier]) == [current[1]]


def test_the_nearest_detection_keeps_the_earlier_item() -> None:
    earlier = item(100, 100)
    current = [item(116, 100), item(101, 100)]
    assert new_detections(current, [earlier]) == [current[0]]


def test_far_and_unsure_detections() -> None:
    earlier = item(100, 100)
    far, unsure = item(200, 100), item(300, 300, unsure=True)
    assert new_detections([far, unsure], [earlier]) == [far]


centres = st.lists(st.tuples(st.floats(0, 640), st.floats(0, 480), st.floats(8, 120)), max_size=12)


@given(centres, centres)
def test_new_items_are_at_least_the_growth_in_visible_items(current_spec, previous_spec) -> None:
    current = [item(x, y, s) for x, y, s in current_spec]
    previous = [item(x, y, s) for x, y, s in previous_spec]
    new = new_detections(current, previous)
    assert len(current) - len(previous) <= len(new) <= len(current)
    assert all(d in current for d in new)
