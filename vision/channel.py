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
insertion is recorded as not applicable, never as a count. `take_frame` + `add_taken` split the
two steps for the station's channel (`station.channels.vision`), which counts frames in order and
drops one taken for a carton that has meanwhile left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

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
    PutBackGuard,
    StillnessGate,
    TakeOut,
)
from vision.report import build_vision_report
from vision.sources import CameraHealth, FrameSource, Grabber
from vision.worker import InferenceWorker


@dataclass(frozen=True, slots=True)
class TakenFrame:
    """A still frame and what the model saw in it (not yet counted)."""

    frame: np.ndarray
    observation: FrameObservation


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

    async def take_frame(self, timeout_s: float = 3.0) -> TakenFrame | None:
        """The newest still frame the model can read, or the last still one if none could be
        read before `timeout_s` (a hand that stayed); None without a still frame. Not counted."""
        deadline = time.monotonic() + timeout_s
        gate = StillnessGate(self.config.settle_frames, self.config.motion_threshold)
        last_number = 0
        taken: TakenFrame | None = None
        while time.monotonic() < deadline:
            remaining = deadline - time.monotonic()
            got = await asyncio.to_thread(self.grabber.wait_newer, last_number, remaining)
            if got is None:
                break
            last_number = got.number
            if not gate.update(got.image):
                continue
            observation = await asyncio.wrap_future(self.worker.submit(got.image))
            taken = TakenFrame(got.image, observation)
            if observation.readable:
                break
        return taken

    def add_taken(
        self,
        taken: TakenFrame,
        put_back: TakeOut | None = None,
        guard: PutBackGuard | None = None,
        unit_in: bool = False,
        most_units: int | None = None,
    ) -> InsertionObservation:
        """Count a taken frame as this carton's next insertion (keeps it for the evidence); the
        frame after the item `put_back` came back adds no item (`vision.observe.TakeOuts`;
        `guard`, `unit_in`, `most_units`: `InsertionAccumulator.add`)."""
        obs = self.accumulator.add(taken.observation, put_back, guard, unit_in, most_units)
        self._taken.append(_Taken(taken.frame, taken.observation, obs.index))
        return obs

    def add_not_applicable(self, reason: str, carried_over: bool) -> InsertionObservation:
        """An insertion vision could not see: counted by the next readable frame when
        `carried_over`, otherwise the carton's count becomes 'not applicable'."""
        return self.accumulator.add_unseen(reason, carried_over)

    async def capture_insertion(self, timeout_s: float = 3.0) -> InsertionObservation:
        """Take this insertion's frame (still, readable) and add it to the carton's count."""
        taken = await self.take_frame(timeout_s)
        if taken is None:
            return self.add_not_applicable(
                "no still frame from the camera in time", carried_over=True
            )
        return self.add_taken(taken)

    def add_frame(self, frame: np.ndarray) -> InsertionObservation:
        """Synchronous variant for tools and tests: this frame is the insertion's frame."""
        return self.add_taken(TakenFrame(frame, self.worker.pipeline.observe(frame)))

    def report(self, expected: Mapping[str, int], catalog: Catalog) -> ChannelReport:
        return build_vision_report(
            self.accumulator.observations,
            expected,
            catalog,
            lookalike_groups=self.config.lookalike_groups,
            camera_up=self.camera_up or bool(self.accumulator.observations),
            camera_detail=self.grabber.health.detail,
        )

    def evidence_images(
        self, caption: str = "", directory: Path | None = None
    ) -> list[EvidenceImage]:
        """Every counted frame of the carton: masked, annotated, JPEG-encoded (CPU-bound: call
        from a thread), written to `directory` (default: the config's `evidence_dir`)."""
        return [
            self._jpeg(
                t.frame, t.observation, t.insertion, caption, directory or self.config.evidence_dir
            )
            for t in self._taken
        ]

    def preview_image(self, taken: TakenFrame, insertion: int) -> EvidenceImage:
        """One frame masked and annotated for the packer's screen as it is counted; no file (the
        evidence copies are made at close). CPU-bound: call from a thread."""
        return self._jpeg(taken.frame, taken.observation, insertion, "", None)

    def _jpeg(
        self,
        frame: np.ndarray,
        observation: FrameObservation,
        insertion: int,
        caption: str,
        directory: Path | None,
    ) -> EvidenceImage:
        return evidence_jpeg(
            frame,
            observation,
            self.config.privacy_masks,
            caption=f"insertion {insertion + 1} {caption}".strip(),
            quality=self.config.evidence_jpeg_quality,
            directory=directory,
            name=f"insertion-{insertion + 1}",
        )
