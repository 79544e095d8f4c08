"""The vision channel: the overhead camera's item count and codes, one frame per insertion.

The camera side (grabber thread, inference worker with its watchdog, the accumulator) is
`vision.channel.VisionChannel`; this adapter ties it to the station:

- A carton's frames start when its order is opened (`FetchManifest`) and end when it leaves the
  station (passed, shadow-recorded, released, aborted, replaced).
- Each settled weight step up (the weight channel's `on_settled_step`) is an insertion: the
  camera waits for a still frame the model can read and counts the items new since the previous
  frame. A step down is an item taken out; the next step, when it brings the weight straight
  back to its level before, is the item put back, and its frame adds no item if it shows the
  items as before, or fewer that lie under it (told apart by their looks), and the weights rule
  out a counted unit gone with it (`vision.observe.TakeOuts`, `PutBackGuard`, with the site's
  packing materials). An item taken out and not so put back leaves the carton's count "not
  applicable" (the weight still decides). Where the frame after a put-back cannot be told
  apart so (a look-alike under it), the packer's screen asks for a second look: lifted again
  and set down beside, the item settles its count (`InsertionAccumulator.awaiting_second_look`).
- At close one more frame is taken (an item too light to step the scale still shows), then the
  report: a carton-level deficit or surplus, SKUs proven by codes, "not applicable" when any
  frame could not be read (a hand over the carton), DOWN when the camera or the worker is down.
- Every report carries the model's hash and version, and the annotated, masked JPEGs of the
  carton's frames (written under the data folder) with their SHA-256.

Nothing here blocks the loop: frames are awaited on threads, inference runs in the worker, JPEG
encoding in a thread. Importing this module loads OpenCV, numpy and onnxruntime, so
`build_channels` imports it only when the config has a [vision] section.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from scale.weighing import scale_error_g
from station.channels.base import ChannelContext, EvidenceChannel, carton_after
from station.channels.weight import WeightChannel
from station.domain import expected_units
from station.evidence import IMAGES_DIR
from station.insertion_check import WeightStep
from station.metrics import Metrics
from station.session import CartonView, CollectEvidence, Effect
from station.verification import ChannelReport, EvidenceFile
from vision.channel import TakenFrame, VisionChannel
from vision.config import VisionConfig
from vision.evidence import EvidenceImage
from vision.observe import InsertionObservation, PutBackGuard, TakeOut, TakeOuts
from vision.report import CHANNEL, barcode_units, build_vision_report, put_back_guard
from vision.sources import CameraHealth, FrameSource

log = logging.getLogger("packstation.vision")

CAMERA = "camera"
INFERENCE_SECONDS = "packstation_inference_seconds"
CAPTURE_SECONDS = "packstation_vision_capture_seconds"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
FrameKind = Literal["insertion", "put_back", "close"]


@dataclass(frozen=True, slots=True)
class _StepUnits:
    """What the carton's `step`-th settled step said about the units the camera counts that
    it brought: at least one (`unit_in`), at most `most_units` (None: it cannot say)."""

    step: int
    unit_in: bool
    most_units: int | None


class VisionEvidenceChannel(EvidenceChannel):
    name = CHANNEL

    def __init__(
        self,
        config: VisionConfig,
        data_dir: Path,
        context: ChannelContext,
        weight: WeightChannel,
        *,
        source: FrameSource | None = None,
    ) -> None:
        """`source` replaces the configured camera source (tests feed frames in-process)."""
        self.config = config
        self._context = context
        self.evidence_root = config.evidence_dir or data_dir / IMAGES_DIR
        model = config.detector.model
        if not model.is_file():
            raise FileNotFoundError(
                f"vision model {model} not found: set [vision.detector] model to the ONNX file "
                "(the shipped one is models/item_counter.onnx)"
            )
        self.camera = VisionChannel(config, on_health=self._health_from_thread, source=source)
        weight.on_settled_step(self.on_weight_step)
        self._weight = weight
        division_g = weight.scale_config.division_g
        self._scale_error_g = lambda grams: scale_error_g(grams, division_g)
        self._materials = weight.check_config.packing_materials()
        self._take_outs = TakeOuts(self._scale_error_g)
        self._frames_asked = 0
        self._steps = 0
        self._empty_at_open = False
        self._carton: tuple[str, str] | None = None
        self._generation = 0  # bumped per carton: a frame taken for an older one is dropped
        self._frames = asyncio.Lock()  # insertions are counted in the order they happened
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics: Metrics | None = None
        # The packer's screen: the newest counted frame of the current carton, annotated and
        # masked; after a close, its final evidence frame (kept until the next carton opens).
        self.latest_image: EvidenceImage | None = None

    @property
    def devices(self) -> tuple[str, ...]:
        return (CAMERA,)

    def start(self) -> None:
        self.camera.start()

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.camera.stop()

    def attach_metrics(self, metrics: Metrics) -> None:
        metrics.histogram(INFERENCE_SECONDS, "Vision model inference per frame, in seconds.")
        metrics.histogram(
            CAPTURE_SECONDS,
            "From a settled weight step (insertion) or a close to the counted frame, in seconds.",
        )
        self._metrics = metrics

    def latest_frame(self) -> tuple[bytes, str] | None:
        image = self.latest_image
        return None if image is None else (image.jpeg, image.sha256)

    def second_look_g(self) -> float | None:
        out = self.camera.accumulator.awaiting_second_look() if self._carton else None
        return None if out is None else out.grams

    def live_units(self, carton: CartonView) -> Mapping[str, int]:
        """Units proven so far by codes read in the insertion frames (a count alone names no
        SKU)."""
        if carton.manifest is None or carton.manifest.key != self._carton:
            return {}
        proven, _ = barcode_units(self.camera.accumulator.observations, self._context.catalog)
        return {sku: n for sku, n in proven.items() if sku in carton.expected_units}

    # -- the carton's life (effects, on the loop) -------------------------------------------------

    def on_effect(self, effect: Effect) -> None:
        carton = carton_after(effect, self._carton)
        if carton != self._carton:
            self._begin(carton)

    def _begin(self, carton: tuple[str, str] | None) -> None:
        self._carton = carton
        self._generation += 1
        self.camera.begin_carton()
        self._take_outs = TakeOuts(self._scale_error_g)
        self._frames_asked = 0  # frames asked for this carton; each adds one observation
        self._steps = 0  # settled steps of this carton so far, up or down
        # Units already on the platter when the carton opened were never framed: its first
        # frame shows them new, which its step did not bring (`_step_units`).
        self._empty_at_open = abs(self._weight.level_g) <= self._weight.scale_config.zero_band_g
        if carton is not None:  # the last carton's frame must not pass for this one's
            self.latest_image = None

    # -- insertions (on the loop; frames on threads) ----------------------------------------------

    def on_weight_step(self, step: WeightStep) -> None:
        """The weight channel's listener (on the loop): an insertion, or an item taken out."""
        if self._carton is None:
            return  # the empty platter, a box put down before its order, a carton going out
        self._steps += 1
        # A frame still to be taken may already show what this step brought.
        due = self._frames_asked > len(self.camera.accumulator.observations)
        if step.delta_g < 0:
            # Then the item taken out may show set down elsewhere: its coming back cannot be
            # matched.
            self._take_outs.taken_out(step.from_g, step.to_g, matchable=not due)
            return
        back = self._take_outs.puts_back(step.from_g, step.to_g)
        kind: FrameKind = "put_back" if back else "insertion"
        self._frames_asked += 1
        said = None if back or due else self._step_units(step)
        self._spawn(self._capture(kind, self.config.capture_timeout_s, back, said))

    def _step_units(self, step: WeightStep) -> _StepUnits | None:
        """What a step up that is no put-back says about the units it brought
        (`InsertionAccumulator.add`'s `unit_in` and `most_units`), for a frame that is the
        first to show them (the caller's: none due before it; no step after it by the time it
        is taken: `_capture`). Nothing while an item is out that has not come back (the step
        may be it, set down elsewhere, with a unit: the count is not applicable then anyway)."""
        if self._take_outs.pending:
            return None
        guard = self._guard()
        if guard is None:
            return None
        unit_in = guard.counted_unit_in(step.from_g, step.to_g)
        first = self._frames_asked == 1
        most_units = (
            None
            if first and not self._empty_at_open
            else guard.counted_units_at_most(step.from_g, step.to_g)
        )
        return _StepUnits(self._steps, unit_in, most_units)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _capture(
        self,
        kind: FrameKind,
        timeout_s: float,
        put_back: TakeOut | None = None,
        said: _StepUnits | None = None,
    ) -> None:
        """Take and count one frame for the current carton (serialised with the others);
        `said`: what its step said about the units it brought, which holds if no later step
        came before the frame (and, for the most it brought, the scale is still settled at
        that step's level: a unit set down since would show in the frame but not the step)."""
        generation, started = self._generation, time.monotonic()
        async with self._frames:
            if generation != self._generation:
                return
            if not self.camera.camera_up:  # no frame can come: say so now, not after the timeout
                taken, failure = None, f"camera down ({self._down_detail()})"
            else:
                taken, failure = await self._take(kind, timeout_s)
            if generation != self._generation:
                return
            took_s = time.monotonic() - started
            if taken is None:
                # A put-back frame nobody saw cannot tell the item from anything else.
                unseen = self.camera.add_not_applicable(failure, carried_over=kind != "put_back")
                self._logged(kind, unseen, took_s)
                return
            guard = self._guard() if put_back is not None else None
            unit_in, most_units = False, None
            if said is not None and said.step == self._steps:
                unit_in = said.unit_in
                if self._weight.settled_at_level():
                    most_units = said.most_units
            counted = self.camera.add_taken(taken, put_back, guard, unit_in, most_units)
            self._logged(kind, counted, took_s, taken)
            preview = await asyncio.to_thread(self.camera.preview_image, taken, counted.index)
            if generation == self._generation:
                self.latest_image = preview

    async def _take(self, kind: FrameKind, timeout_s: float) -> tuple[TakenFrame | None, str]:
        """A still frame, or None and why not."""
        try:
            taken = await self.camera.take_frame(timeout_s)
        except Exception as exc:  # inference stuck or failed: that frame is not seen
            log.error("vision frame failed", extra={"kind": kind, "error": str(exc)})
            return None, f"inference failed ({exc})"
        return taken, "no still frame from the camera in time"

    def _down_detail(self) -> str:
        camera = self.camera
        return camera.worker.down_reason or camera.grabber.health.detail

    def _guard(self) -> PutBackGuard | None:
        """The open carton's put-back guard; None until its manifest is in (no frame may then
        take items for hidden: nothing could vouch for it)."""
        carton = self._context.open_carton()
        if carton is None or carton.manifest is None or carton.manifest.key != self._carton:
            return None
        expected = carton.expected_units
        catalog = self._context.catalog
        return put_back_guard(expected, catalog, self._scale_error_g, self._materials)

    def _logged(
        self,
        kind: FrameKind,
        obs: InsertionObservation,
        took_s: float,
        taken: TakenFrame | None = None,
    ) -> None:
        """One log line per frame (counted or not), and the metrics."""
        infer_ms = taken.observation.result.infer_ms if taken is not None else None
        log.info(
            "vision frame",
            extra={
                "kind": kind,
                "insertion": obs.index + 1,
                "new_items": obs.new_items,
                "visible": obs.visible,
                "codes": len(obs.codes),
                "reason": obs.reason,
                "infer_ms": None if infer_ms is None else round(infer_ms, 1),
                "capture_ms": round(took_s * 1000, 1),
            },
        )
        if self._metrics is not None and infer_ms is not None:
            self._metrics.observe(INFERENCE_SECONDS, infer_ms / 1000)
            self._metrics.observe(CAPTURE_SECONDS, took_s, {"kind": kind})

    # -- the close ------------------------------------------------------------------------------

    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        clock = self._context.clock
        manifest = request.manifest
        if self._carton != manifest.key:  # opened before this daemon started: frames from now
            self._begin(manifest.key)
        camera = self.camera
        budget = clock.real_seconds(deadline - clock.monotonic())
        if camera.camera_up:  # a camera that is down reports DOWN without waiting for it
            self._frames_asked += 1
            try:
                # Earlier insertions' frames first (the lock), then the close frame.
                await asyncio.wait_for(
                    self._capture("close", min(self.config.capture_timeout_s, budget)), budget
                )
            except TimeoutError:
                camera.add_not_applicable(
                    "no frame at close before the verdict was due", carried_over=True
                )
        catalog = self._context.catalog
        expected = expected_units(manifest, catalog)
        report = build_vision_report(
            [*camera.accumulator.observations, *self._not_put_back()],
            expected,
            catalog,
            lookalike_groups=self.config.lookalike_groups,
            camera_up=camera.camera_up,
            camera_detail=self._down_detail(),
            put_back_guard=put_back_guard(expected, catalog, self._scale_error_g, self._materials),
        )
        encoding = time.monotonic()
        images = await asyncio.to_thread(
            camera.evidence_images, _caption(report), self._folder(request)
        )
        encoding_ms = (time.monotonic() - encoding) * 1000
        if images:
            self.latest_image = images[-1]
        info = camera.model_info
        report = _with_evidence(report, info.sha256, info.version, images)
        log.info(
            "vision report",
            extra={
                "order_id": manifest.order_id,
                "carton_id": manifest.carton_id,
                "attempt": request.attempt,
                "state": report.state.value,
                "discrepancy": report.discrepancy.value,
                "measurements": dict(report.measurements),
                "reasons": [r.code for r in report.reasons],
                "images": [f.path for f in report.files],
                "evidence_ms": round(encoding_ms, 1),
                "model_version": info.version,
            },
        )
        return report

    def _not_put_back(self) -> list[InsertionObservation]:
        """An insertion no frame can count per item taken out and not (yet) put back. Not kept:
        the packer may still put it back before the next close."""
        first = len(self.camera.accumulator.observations)
        return [
            InsertionObservation(
                first + i,
                None,
                None,
                {},
                (),
                f"an item was taken out ({out.grams:.0f} g) and not put back: insertion counting "
                "cannot tell which",
                framed=False,
            )
            for i, out in enumerate(self._take_outs.pending)
        ]

    def _folder(self, request: CollectEvidence) -> Path:
        m = request.manifest
        # Ids are [A-Za-z0-9._-]; ".." must not climb out of the evidence folder.
        safe = [_UNSAFE.sub("_", part).replace("..", "__") for part in (m.order_id, m.carton_id)]
        return self.evidence_root / safe[0] / safe[1] / f"attempt-{request.attempt}"

    # -- camera health (grabber thread -> loop) ---------------------------------------------------

    def _health_from_thread(self, health: CameraHealth) -> None:
        if health.state == "connecting":  # the first connect is neither a fault nor a recovery
            return
        up, detail = health.state == "up", health.detail
        self._context.call_soon(lambda: self._context.report_health(CAMERA, up, detail))


def _caption(report: ChannelReport) -> str:
    """What vision concluded, drawn on every frame of the carton (the verdict is decided after
    the channels report, so the frames carry this channel's own conclusion)."""
    m = report.measurements
    if report.reasons:
        return report.reasons[0].message[:80]
    return f"vision: {m.get('items_counted', 0):.0f} of {m.get('expected_visible', 0):.0f} items"


def _with_evidence(
    report: ChannelReport, model_sha256: str, model_version: str, images: list[EvidenceImage]
) -> ChannelReport:
    return replace(
        report,
        provenance={"model_sha256": model_sha256, "model_version": model_version},
        files=tuple(EvidenceFile(i.path or "", i.sha256) for i in images),
    )
