"""YoloDetector end to end on real onnxruntime sessions: tiny fixed-output graphs per layout.

The graphs are built by fixtures/make_yolo_fixtures.py (onnx.helper); frames are 640x480, so the
320x320 letterbox has ratio 0.5 and 40 px of padding top and bottom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision.config import YoloDetectorConfig
from vision.detectors import YoloDetector, create_detector

FIXTURES = Path(__file__).parent / "fixtures"
FRAME = np.zeros((480, 640, 3), np.uint8)
# Fixture boxes mapped back to the frame: (x / 0.5, (y - 40) / 0.5)
MUG = (100, 100, 300, 300)
SOCK = (400, 40, 600, 200)


def detector(name: str, **kw) -> YoloDetector:
    config = YoloDetectorConfig(type="yolo", model=FIXTURES / f"{name}.onnx", threads=1, **kw)
    det = create_detector(config)
    assert isinstance(det, YoloDetector)
    return det


@pytest.mark.parametrize(
    ("name", "layout"), [("yolo_v8", "v8"), ("yolo_v5", "v5"), ("yolo_e2e", "end2end")]
)
def test_each_layout_maps_boxes_back_to_the_frame(name: str, layout: str) -> None:
    det = detector(name, class_map={"mug": "MUG-BLUE"})
    assert det.layout == layout
    assert det.info.input_size == (320, 320) and len(det.info.sha256) == 64
    result = det.detect(FRAME)
    assert result.readable and result.count == 2
    by_label = {d.label: d for d in result.detections}
    assert set(by_label) == {"MUG-BLUE", "sock"}
    assert by_label["MUG-BLUE"].box == pytest.approx(MUG, abs=2.5)
    assert by_label["sock"].box == pytest.approx(SOCK, abs=2.5)
    assert result.labels() == {"MUG-BLUE": 1, "sock": 1}


def test_a_hand_class_makes_the_frame_unreadable() -> None:
    result = detector("yolo_v8_hand").detect(FRAME)
    assert result.unreadable and not result.readable
    assert {d.label for d in result.detections} == {"mug", "sock"}


def test_scores_near_the_threshold_are_unsure() -> None:
    # sock scores 0.8: with confidence 0.75 and a 0.1 band it is too close to call
    result = detector("yolo_v8", confidence=0.75, unsure_band=0.1).detect(FRAME)
    assert result.unsure and not result.readable
    assert result.count == 1
