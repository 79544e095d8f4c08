"""Letterbox and the three YOLO output layouts, on synthetic tensors with known boxes."""

from __future__ import annotations

import numpy as np
import pytest

from vision.detectors.yolo import (
    Letterbox,
    decode,
    detect_layout,
    letterbox,
    parse_names,
)

# Two objects in a 1280x720 frame: (x1, y1, x2, y2, class, score)
FRAME_W, FRAME_H = 1280, 720
OBJECTS = [(100, 200, 300, 400, 0, 0.9), (700, 100, 1000, 600, 2, 0.8)]
NC = 3
INPUT = (640, 640)


def _to_input(box: tuple[float, ...], lb: Letterbox) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (
        x1 * lb.ratio + lb.pad_x,
        y1 * lb.ratio + lb.pad_y,
        x2 * lb.ratio + lb.pad_x,
        y2 * lb.ratio + lb.pad_y,
    )


@pytest.fixture
def lb() -> Letterbox:
    _, lb = letterbox(np.zeros((FRAME_H, FRAME_W, 3), np.uint8), INPUT)
    return lb


def test_letterbox_pads_evenly_and_normalises() -> None:
    frame = np.full((FRAME_H, FRAME_W, 3), (10, 20, 30), np.uint8)  # BGR
    tensor, lb = letterbox(frame, INPUT)
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    assert lb.ratio == pytest.approx(0.5)
    assert (lb.pad_x, lb.pad_y) == (0, 140)
    assert tensor[0, :, 0, 0] == pytest.approx([114 / 255] * 3)  # padding
    assert tensor[0, :, 320, 320] == pytest.approx([30 / 255, 20 / 255, 10 / 255])  # RGB


def _v8(lb: Letterbox, n: int = 8400) -> np.ndarray:
    out = np.zeros((1, 4 + NC, n), np.float32)
    for k, (*box, cls, score) in enumerate(OBJECTS):
        x1, y1, x2, y2 = _to_input(tuple(box), lb)
        for dup, jitter in enumerate((0.0, 2.0, -1.5)):  # duplicates for NMS to remove
            col = k * 10 + dup
            out[0, :4, col] = ((x1 + x2) / 2 + jitter, (y1 + y2) / 2, x2 - x1, y2 - y1)
            out[0, 4 + cls, col] = score - dup * 0.05
    out[0, 4 + 1, 500] = 0.1  # below threshold
    return out


def _v5(lb: Letterbox, n: int = 25200) -> np.ndarray:
    v8 = _v8(lb, n)[0].T  # (N, 4+nc)
    out = np.zeros((1, n, 5 + NC), np.float32)
    out[0, :, :4] = v8[:, :4]
    out[0, :, 4] = v8[:, 4:].max(1) > 0
    out[0, :, 5:] = v8[:, 4:]
    return out


def _e2e(lb: Letterbox) -> np.ndarray:
    out = np.zeros((1, 300, 6), np.float32)
    for k, (*box, cls, score) in enumerate(OBJECTS):
        out[0, k] = (*_to_input(tuple(box), lb), score, cls)
    return out


@pytest.mark.parametrize(
    ("layout", "make"), [("v8", _v8), ("v5", _v5), ("end2end", _e2e)], ids=["v8", "v5", "e2e"]
)
def test_every_layout_decodes_the_known_boxes(layout: str, make, lb: Letterbox) -> None:
    output = make(lb)
    assert detect_layout(output.shape) == layout
    boxes, scores, classes = decode(output, layout, 0.25, 0.5)  # type: ignore[arg-type]
    frame_boxes = lb.to_frame(boxes, FRAME_W, FRAME_H)
    order = np.argsort(frame_boxes[:, 0])
    assert len(order) == 2
    for got, score, cls, want in zip(
        frame_boxes[order], scores[order], classes[order], OBJECTS, strict=True
    ):
        assert got == pytest.approx(want[:4], abs=4.5)
        assert int(cls) == want[4]
        assert float(score) == pytest.approx(want[5], abs=1e-5)


def test_layout_detection_on_common_shapes() -> None:
    assert detect_layout((1, 84, 8400)) == "v8"
    assert detect_layout((1, 5, 3549)) == "v8"
    assert detect_layout((1, 25200, 85)) == "v5"
    assert detect_layout((1, 300, 6)) == "end2end"
    with pytest.raises(ValueError):
        detect_layout((1, 84))


def test_names_metadata_is_a_python_dict_literal() -> None:
    assert parse_names({"names": "{0: 'mug', 1: 'tea-tin'}"}) == {0: "mug", 1: "tea-tin"}
    assert parse_names({"names": "not python"}) == {}
    assert parse_names({}) == {}


def test_boxes_are_clipped_to_the_frame(lb: Letterbox) -> None:
    boxes = np.array([[-50, 100, 700, 900]], np.float32)
    out = lb.to_frame(boxes, FRAME_W, FRAME_H)
    assert out[0, 0] == 0 and out[0, 2] == FRAME_W and out[0, 3] == FRAME_H
