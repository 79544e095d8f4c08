"""Split peaks: one item seen as two maxima is counted once, two items side by side twice."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.config import DEFAULT_MODEL, CounterDetectorConfig
from vision.detectors import CounterDetector
from vision.detectors.counter import split_peaks


def peaks(*rows: tuple[float, float, float, float, float]) -> tuple[np.ndarray, ...]:
    return tuple(np.array(column, float) for column in zip(*rows, strict=True))


def test_a_weaker_peak_on_the_same_item_is_a_split_and_a_neighbour_is_not() -> None:
    # x, y, width, height, score: a 20x10 item with a second maximum 3 cells along it, and
    # another item 12 cells away (touching, not the same).
    found = split_peaks(
        *peaks((10, 10, 20, 10, 0.9), (13, 11, 20, 10, 0.6), (22, 10, 8, 8, 0.7)), 0.25
    )
    assert found.tolist() == [False, True, False]
    # The stronger peak is kept whichever comes first, and no merge at fraction 0.
    swapped = peaks((13, 11, 20, 10, 0.6), (10, 10, 20, 10, 0.9))
    assert split_peaks(*swapped, 0.25).tolist() == [True, False]
    assert not split_peaks(*swapped, 0.0).any()


def test_the_smaller_item_decides_so_a_small_item_on_a_big_one_is_counted() -> None:
    # A 4x4 sachet 2 cells from the centre of a 30x30 box: 2 > 0.25 * 4, so two items.
    found = split_peaks(*peaks((10, 10, 30, 30, 0.9), (12, 10, 4, 4, 0.8)), 0.25)
    assert found.tolist() == [False, False]


coordinate = st.floats(0, 64, allow_nan=False)
size = st.floats(1, 40, allow_nan=False)
score = st.floats(0.05, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(coordinate, coordinate, size, size, score), max_size=30),
    st.sampled_from([0.15, 0.25, 0.35]),
)
def test_kept_peaks_are_apart_and_every_split_lies_on_a_stronger_kept_one(rows, fraction) -> None:
    if not rows:
        assert split_peaks(*(np.array([]),) * 5, fraction).size == 0
        return
    xs, ys, ws, hs, scores = peaks(*rows)
    split = split_peaks(xs, ys, ws, hs, scores, fraction)

    def near(i: int, k: int) -> bool:
        return abs(xs[i] - xs[k]) < fraction * min(ws[i], ws[k]) and abs(
            ys[i] - ys[k]
        ) < fraction * min(hs[i], hs[k])

    kept = [i for i in range(len(rows)) if not split[i]]
    assert kept  # the strongest peak is always kept
    assert not any(near(i, k) for i in kept for k in kept if i < k)
    for i in np.nonzero(split)[0]:
        assert any(near(i, k) and scores[k] >= scores[i] for k in kept)


def test_the_detector_counts_a_split_item_once() -> None:
    detector = CounterDetector(
        CounterDetectorConfig(
            type="counter", model=DEFAULT_MODEL, unsure_margin=0.0, split_fraction=0.25
        )
    )
    heat = np.zeros((1, 1, 48, 64), np.float32)
    sizes = np.zeros((1, 2, 48, 64), np.float32)
    for y, x, score in [(20, 30, 0.95), (21, 32, 0.8), (20, 50, 0.9)]:
        heat[0, 0, y, x] = score
        sizes[0, :, y, x] = (0.25, 0.2)  # 16 x 9.6 cells: the first two are one item
    outputs = [heat, sizes, np.zeros((1, 1), np.float32)]
    assert detector.postprocess(outputs, None, 640, 480).count == 2
    detector.split_fraction = 0.0
    assert detector.postprocess(outputs, None, 640, 480).count == 3
