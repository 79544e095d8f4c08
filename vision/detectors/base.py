"""The detector API and the onnxruntime session every plugin shares."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort


@dataclass(frozen=True, slots=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    label: str | None = None  # class name mapped through the config (SKU or group); None = item
    unsure: bool = False  # score within the unsure band around the threshold

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True, slots=True)
class DetectionResult:
    detections: tuple[Detection, ...]
    unreadable: bool  # the scene cannot be read (hand, flaps, glare): never a count
    unreadable_score: float
    unsure: bool  # at least one detection is too close to the threshold to call
    width: int
    height: int
    infer_ms: float = 0.0
    reason: str = ""

    @property
    def readable(self) -> bool:
        return not self.unreadable and not self.unsure

    @property
    def count(self) -> int:
        return sum(1 for d in self.detections if not d.unsure)

    def labels(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.detections:
            if d.label is not None and not d.unsure:
                out[d.label] = out.get(d.label, 0) + 1
        return out


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    sha256: str
    version: str
    input_size: tuple[int, int]  # width, height
    metadata: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "version": self.version,
            "input": f"{self.input_size[0]}x{self.input_size[1]}",
        }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ort_session(path: Path, threads: int, spin: bool = False) -> ort.InferenceSession:
    """A CPU session tuned for a small shared box: explicit threads, no idle spinning."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads  # explicit: also turns off thread pinning
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class Detector(ABC):
    """One runtime. Subclasses set `type_key`, build their session in __init__ and implement
    `preprocess`, `postprocess`; `detect` is the whole per-frame pipeline."""

    type_key: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config
        path = Path(config.model)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found")
        self.session = ort_session(path, config.threads, config.spin)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = meta
        self.info = ModelInfo(
            path=str(path),
            sha256=file_sha256(path),
            version=self._version(meta, path),
            input_size=self.input_size(),
            metadata=meta,
        )
        width, height = self.info.input_size
        for _ in range(config.warmup_runs):  # first runs are slow; do not let them look like hangs
            self.run(np.zeros((1, 3, height, width), np.float32))

    @staticmethod
    def _version(meta: Mapping[str, str], path: Path) -> str:
        return meta.get("packstation.version") or meta.get("version") or path.stem

    @abstractmethod
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model takes."""

    @abstractmethod
    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Any]:
        """Frame -> (input tensor, context needed to map outputs back to the frame)."""

    @abstractmethod
    def postprocess(
        self, outputs: list[np.ndarray], context: Any, width: int, height: int
    ) -> DetectionResult:
        """Raw outputs -> result in frame coordinates."""

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The bare session.run (what the benchmark compares the pipeline against)."""
        return self.session.run(self.output_names, {self.input_name: tensor})

    def detect(self, frame_bgr: np.ndarray) -> DetectionResult:
        height, width = frame_bgr.shape[:2]
        tensor, context = self.preprocess(frame_bgr)
        started = time.perf_counter()
        outputs = self.run(tensor)
        infer_ms = (time.perf_counter() - started) * 1000
        result = self.postprocess(outputs, context, width, height)
        return DetectionResult(
            result.detections,
            result.unreadable,
            result.unreadable_score,
            result.unsure,
            width,
            height,
            infer_ms,
            result.reason,
        )
