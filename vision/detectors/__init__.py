"""Detector plugins: one small abstract class, one module per runtime, one explicit registry.

A detector turns one BGR frame into a `DetectionResult`: the items it found (boxes in frame
pixels, a score, a label when the model names classes) and whether the scene could be read at
all. "Unreadable" (a hand over the carton) and "unsure" (a detection too close to the threshold)
both mean: do not use this frame as a count.
"""

from __future__ import annotations

from vision.detectors.base import Detection, DetectionResult, Detector, ModelInfo, ort_session
from vision.detectors.counter import CounterDetector
from vision.detectors.yolo import YoloDetector

DETECTORS: dict[str, type[Detector]] = {
    CounterDetector.type_key: CounterDetector,
    YoloDetector.type_key: YoloDetector,
}


def create_detector(config: object) -> Detector:
    """Instantiate the detector class registered for `config.type`."""
    key = getattr(config, "type", None)
    if key not in DETECTORS:
        raise ValueError(f"unknown detector type {key!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[key](config)  # type: ignore[arg-type]


__all__ = [
    "DETECTORS",
    "CounterDetector",
    "Detection",
    "DetectionResult",
    "Detector",
    "ModelInfo",
    "YoloDetector",
    "create_detector",
    "ort_session",
]
