"""Vision config: camera source, detector, barcodes, masks. Frigate-style `type` unions.

Every model forbids unknown keys; every field is described so the JSON Schema documents itself.
Adding a source or a detector adds one class here and one entry in its registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "item_counter.onnx"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sources -------------------------------------------------------------------------------------


class _SourceBase(_Model):
    width: int | None = Field(default=None, ge=16, le=8192, description="Requested frame width.")
    height: int | None = Field(default=None, ge=16, le=8192, description="Requested frame height.")
    fps: float | None = Field(default=None, gt=0, le=120, description="Requested frame rate.")
    stale_after_s: float = Field(
        default=2.0, gt=0, description="No new frame for this long: the camera is down."
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=10.0, gt=0, description="Longest reconnect delay.")


class V4l2SourceConfig(_SourceBase):
    type: Literal["v4l2"] = Field(description="A local camera through V4L2.")
    device: str = Field(default="/dev/video0", description="Device path or index.")
    fourcc: str | None = Field(default="MJPG", description="Pixel format asked of the camera.")


class UrlSourceConfig(_SourceBase):
    type: Literal["url"] = Field(description="An IP camera stream (rtsp://, http://).")
    url: str = Field(pattern=r"^(rtsp|rtsps|http|https)://", description="Stream URL.")


class FileSourceConfig(_SourceBase):
    type: Literal["file"] = Field(description="A video file, replayed (for tests and demos).")
    path: Path = Field(description="Video file.")
    loop: bool = Field(default=True, description="Start again at the end.")
    realtime: bool = Field(default=True, description="Pace frames at the file's frame rate.")


class FolderSourceConfig(_SourceBase):
    type: Literal["folder"] = Field(description="Images in a folder, served in name order.")
    path: Path = Field(description="Folder with .jpg/.png images.")
    loop: bool = Field(default=True, description="Start again after the last image.")
    interval_s: float = Field(default=0.1, ge=0, description="Time between images.")


class SimulatorSourceConfig(_SourceBase):
    type: Literal["simulator"] = Field(description="The camera simulator (simulators.camera).")
    seed: int = Field(default=0, description="Scene seed.")
    interval_s: float = Field(default=0.05, ge=0, description="Time between rendered frames.")
    scene_file: Path | None = Field(
        default=None,
        description="JSON file another process (the simulated packing table) rewrites with "
        "what is in the carton; the camera renders it. Absent: the carton is filled in-process.",
    )


SourceConfig = Annotated[
    V4l2SourceConfig
    | UrlSourceConfig
    | FileSourceConfig
    | FolderSourceConfig
    | SimulatorSourceConfig,
    Field(discriminator="type"),
]

# -- detectors -----------------------------------------------------------------------------------


class _DetectorBase(_Model):
    model: Path = Field(default=DEFAULT_MODEL, description="ONNX model file.")
    threads: int = Field(
        default=2, ge=1, le=64, description="onnxruntime intra-op threads (explicit: no pinning)."
    )
    spin: bool = Field(default=False, description="Let idle worker threads busy-spin (burns CPU).")
    warmup_runs: int = Field(default=2, ge=0, le=20, description="Inferences run at load.")


class CounterDetectorConfig(_DetectorBase):
    type: Literal["counter"] = Field(description="Our shipped class-agnostic item counter.")
    peak_threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Override the model's calibrated peak threshold."
    )
    unsure_margin: float | None = Field(
        default=None, ge=0, lt=0.5, description="Override the calibrated 'unsure' band half-width."
    )
    unreadable_threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Override the 'scene unreadable' threshold."
    )
    split_fraction: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Override the calibrated split-peak merge: a weaker peak closer than this "
        "fraction of the item's size to a stronger one is the same item (0: no merge).",
    )


class YoloDetectorConfig(_DetectorBase):
    type: Literal["yolo"] = Field(
        description="An Ultralytics-style YOLO export trained by the site."
    )
    layout: Literal["auto", "v8", "end2end", "v5"] = Field(
        default="auto", description="Output layout; auto decides from the output shape."
    )
    confidence: float = Field(default=0.4, gt=0, lt=1, description="Minimum class score.")
    iou: float = Field(default=0.5, gt=0, lt=1, description="NMS IoU threshold.")
    unsure_band: float = Field(
        default=0.1, ge=0, lt=0.5, description="Scores within this of `confidence` are unsure."
    )
    class_map: dict[str, str] = Field(
        default_factory=dict,
        description="Model class name -> SKU or look-alike group (unmapped names: as is).",
    )
    hand_classes: tuple[str, ...] = Field(
        default=("hand", "person"), description="Classes that make the scene unreadable."
    )


DetectorConfig = Annotated[CounterDetectorConfig | YoloDetectorConfig, Field(discriminator="type")]

# -- the rest ------------------------------------------------------------------------------------


class Region(_Model):
    """A rectangle in normalised frame coordinates (0..1)."""

    name: str = Field(min_length=1, max_length=64, description="What the region is.")
    x1: float = Field(ge=0, le=1, description="Left edge, fraction of frame width.")
    y1: float = Field(ge=0, le=1, description="Top edge, fraction of frame height.")
    x2: float = Field(ge=0, le=1, description="Right edge.")
    y2: float = Field(ge=0, le=1, description="Bottom edge.")

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(f"region {self.name}: x2/y2 must exceed x1/y1")
        return self

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (
            int(self.x1 * width),
            int(self.y1 * height),
            int(self.x2 * width),
            int(self.y2 * height),
        )

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        return self.x1 * width <= x <= self.x2 * width and self.y1 * height <= y <= self.y2 * height


class BarcodeConfig(_Model):
    enabled: bool = Field(default=True, description="Read codes in each frame.")
    formats: tuple[str, ...] = Field(
        default=("EAN13", "EAN8", "UPCA", "UPCE", "Code128", "DataMatrix", "QRCode"),
        description="zxing-cpp format names; fewer formats decode faster.",
    )
    ignore_regions: tuple[Region, ...] = Field(
        default=(), description="Codes inside these (the packing slip) are ignored."
    )
    try_rotate: bool = Field(default=True, description="Also look for rotated codes.")
    try_invert: bool = Field(
        default=False, description="Also look for light-on-dark codes (costs ~50 % more time)."
    )
    try_downscale: bool = Field(default=True, description="Also search downscaled copies.")
    downscale_to: int | None = Field(
        default=None, ge=320, description="Downscale the long side to this before decoding."
    )


class VisionConfig(_Model):
    source: SourceConfig = Field(description="Where frames come from.")
    detector: DetectorConfig = Field(
        default_factory=lambda: CounterDetectorConfig(type="counter"),
        description="The item detector.",
    )
    barcodes: BarcodeConfig = Field(default_factory=BarcodeConfig, description="Codes in view.")
    privacy_masks: tuple[Region, ...] = Field(
        default=(), description="Blacked out before any frame is stored (packer's side, slip)."
    )
    lookalike_groups: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Group name -> SKUs vision must not tell apart (sizes, colours, polybags).",
    )
    inference_timeout_s: float = Field(
        default=2.0, gt=0, description="Watchdog: an inference running longer restarts the worker."
    )
    settle_frames: int = Field(
        default=2, ge=1, le=30, description="Consecutive still frames before a frame is taken."
    )
    motion_threshold: float = Field(
        default=0.004, ge=0, le=1, description="Share of changed pixels that counts as motion."
    )
    evidence_dir: Path | None = Field(
        default=None,
        description="Where annotated JPEGs go; unset: <data_dir>/evidence/images, where the "
        "evidence API serves them and retention prunes them. Relative to the config file.",
    )
    evidence_jpeg_quality: int = Field(default=80, ge=30, le=100, description="JPEG quality.")
    capture_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description="How long the station waits for a still, readable frame after a settled "
        "weight step (and at close); then that insertion is 'not applicable'.",
    )

    def resolve_paths(self, base: Path) -> VisionConfig:
        """Make relative paths (model, evidence folder, file/folder sources) relative to `base`."""
        source = self.source
        for name in ("path", "scene_file"):
            value = getattr(source, name, None)
            if value is not None:
                source = source.model_copy(update={name: base / value})
        detector = self.detector.model_copy(update={"model": base / self.detector.model})
        update: dict[str, object] = {"source": source, "detector": detector}
        if self.evidence_dir is not None:
            update["evidence_dir"] = base / self.evidence_dir
        return self.model_copy(update=update)
