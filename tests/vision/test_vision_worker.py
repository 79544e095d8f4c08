"""Inference off the loop: results come back as futures; a hung inference trips the watchdog."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from vision.detectors.base import Detection, DetectionResult
from vision.observe import FrameObservation, InsertionAccumulator, Pipeline
from vision.worker import InferenceStuck, InferenceWorker


class FakeDetector:
    """Stands in for a Detector: counts white squares; hangs while `hang` is set."""

    def __init__(self, hang: threading.Event | None = None) -> None:
        self.hang = hang

    def detect(self, frame: np.ndarray) -> DetectionResult:
        if self.hang is not None and self.hang.is_set():
            threading.Event().wait(5)
        n = int(frame[0, 0, 0])
        dets = tuple(Detection((i * 20.0, 0.0, i * 20.0 + 10, 10.0), 0.9) for i in range(n))
        return DetectionResult(dets, False, 0.0, False, frame.shape[1], frame.shape[0])


def _frame(n: int) -> np.ndarray:
    f = np.zeros((10, 200, 3), np.uint8)
    f[0, 0, 0] = n
    return f


def test_results_arrive_on_the_event_loop() -> None:
    worker = InferenceWorker(lambda: Pipeline(FakeDetector()))  # type: ignore[arg-type]
    worker.start()

    async def main() -> list[Any]:
        return [await asyncio.wrap_future(worker.submit(_frame(n))) for n in (1, 3)]

    try:
        results = asyncio.run(main())
    finally:
        worker.stop()
    assert [r.result.count for r in results] == [1, 3]


def test_watchdog_fails_a_hung_inference_and_restarts() -> None:
    hang = threading.Event()
    made = []

    def make() -> Pipeline:
        made.append(1)
        return Pipeline(FakeDetector(hang if len(made) == 1 else None))  # type: ignore[arg-type]

    worker = InferenceWorker(make, timeout_s=0.2)
    worker.start()
    try:
        hang.set()
        with pytest.raises(InferenceStuck):
            worker.submit(_frame(1)).result(timeout=3)
        assert worker.submit(_frame(2)).result(timeout=3).result.count == 2
        assert len(made) == 2 and worker.healthy
    finally:
        worker.stop()


def test_accumulator_counts_only_new_items_per_insertion() -> None:
    acc = InsertionAccumulator()
    pipeline = Pipeline(FakeDetector())  # type: ignore[arg-type]

    def observe(n: int) -> FrameObservation:
        return pipeline.observe(_frame(n))

    assert acc.add(observe(1)).new_items == 1
    assert acc.add(observe(3)).new_items == 2
    assert acc.add(observe(3)).new_items == 0
    assert acc.total() == 3
