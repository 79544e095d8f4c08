"""The vision channel as the daemon uses it: one object per station, one carton at a time.

    channel = VisionChannel(config.vision, on_health=...)     # loads the model, warm-up run
    channel.start()                                           # grabber + inference threads
    channel.begin_carton()                                    # when a carton session opens
    obs = await channel.capture_insertion()                   # after each settled weight step
    report = channel.report(expected, catalog)                # at close -> ChannelReport
    images = channel.evidence_images(caption="PASS")          # masked, annotated JPEGs + SHA-256
    channel.model_info.as_dict()                              # hash + version for the verdict

`capture_insertion` runs on the event loop but never blocks it: it waits for still frames (the
StillnessGate) on a thread, runs inference in the InferenceWorker, and if the model says the scene
is unreadable (a hand still over the carton) it keeps trying until `timeout_s`; then that
insertion is recorded as not applicable, never as a count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from station.domain import Catalog
from station.verification import ChannelReport
from vision.barcodes import BarcodeReader
from vision.config import VisionConfig
from vision.detectors import Detector, ModelInfo, create_detector
from vision.evidence import EvidenceImage, evidence_jpeg
from vision.observe import (
    FrameObservation,
    InsertionAccumulator,
    InsertionObservation,
    Pipeline,
    StillnessGate,
)
from vision.report import build_vision_report
from vision.sources import CameraHealth, FrameSource, Grabber
from vision.worker import InferenceWorker


@dataclass(frozen=True, slots=True)
class _Taken:
    frame: np.ndarray
    observation: FrameObservation
    insertion: int


class VisionChannel:
    def __init__(
        self,
        config: VisionConfig,
        *,
        on_health: Callable[[CameraHealth], None] | None = None,
        source: FrameSource | None = None,
        detector_factory: Callable[[], Detector] | None = None,
    ) -> None:
        self.config = config
        make_detector = detector_factory or (lambda: create_detector(config.detector))
        barcodes = BarcodeReader(config.barcodes)
        self.worker = InferenceWorker(
            lambda: Pipeline(make_detector(), barcodes), timeout_s=config.inference_timeout_s
        )
        self.grabber = Grabber(config.source, on_health=on_health, source=source)
        self.accumulator = InsertionAccumulator()
        self._taken: list[_Taken] = []

    @property
    def model_info(self) -> ModelInfo:
        return self.worker.pipeline.detector.info

    @property
    def camera_up(self) -> bool:
        return self.grabber.health.state == "up" and self.worker.healthy

    def start(self) -> None:
        self.grabber.start()
        self.worker.start()

    def stop(self) -> None:
        self.grabber.stop()
        self.worker.stop()

    def begin_carton(self) -> None:
        self.accumulator.reset()
        self._taken.clear()

    async def capture_insertion(self, timeout_s: float = 3.0) -> InsertionObservation:
        """Take this insertion's frame (still, readable) and add it to the carton's count."""
        deadline = time.monotonic() + timeout_s
        gate = StillnessGate(self.config.settle_frames, self.config.motion_threshold)
        last_number = 0
        observation: FrameObservation | None = None
        frame: np.ndarray | None = None
        while time.monotonic() < deadline:
            remaining = deadline - time.monotonic()
            got = await asyncio.to_thread(self.grabber.wait_newer, last_number, remaining)
            if got is None:
                break
            last_number = got.number
            if not gate.update(got.image):
                continue
            frame = got.image
            observation = await asyncio.wrap_future(self.worker.submit(frame))
            if observation.readable:
                break
        if observation is None or frame is None:
            reason = "no still frame from the camera in time"
            obs = InsertionObservation(
                len(self.accumulator.observations), None, None, {}, (), reason
            )
            self.accumulator.observations.append(obs)
            return obs
        obs = self.accumulator.add(observation)
        self._taken.append(_Taken(frame, observation, obs.index))
        return obs

    def add_frame(self, frame: np.ndarray) -> InsertionObservation:
        """Synchronous variant for tools and tests: this frame is the insertion's frame."""
        observation = self.worker.pipeline.observe(frame)
        obs = self.accumulator.add(observation)
        self._taken.append(_Taken(frame, observation, obs.index))
        return obs

    def report(self, expected: Mapping[str, int], catalog: Catalog) -> ChannelReport:
        return build_vision_report(
            self.accumulator.observations,
            expected,
            catalog,
            lookalike_groups=self.config.lookalike_groups,
            camera_up=self.camera_up or bool(self.accumulator.observations),
            camera_detail=self.grabber.health.detail,
        )

    def evidence_images(self, caption: str = "") -> list[EvidenceImage]:
        return [
            evidence_jpeg(
                t.frame,
                t.observation,
                self.config.privacy_masks,
                caption=f"insertion {t.insertion + 1} {caption}".strip(),
                quality=self.config.evidence_jpeg_quality,
                directory=self.config.evidence_dir,
                name=f"insertion-{t.insertion + 1}",
            )
            for t in self._taken
        ]
