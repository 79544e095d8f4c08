"""Runtime for Ultralytics-style YOLO ONNX exports that sites train on their own SKUs.

Layouts (decided from the output shape unless configured):
    v8       (1, 4+nc, N)  YOLOv8 / YOLO11: cx, cy, w, h, then class scores (no objectness)
    end2end  (1, 300, 6)   NMS in the model (YOLOv10, YOLO26, nms=True): x1, y1, x2, y2, score, cls
    v5       (1, N, 5+nc)  YOLOv5: cx, cy, w, h, objectness, class scores
Boxes are in letterboxed-input pixels; we map them back to the frame. Class names come from the
`names` metadata (a Python dict literal) and are mapped to SKUs or look-alike groups by the config.
The decoders below are pure numpy functions, tested on synthetic tensors.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from vision.config import YoloDetectorConfig
from vision.detectors.base import Detection, DetectionResult, Detector

Layout = Literal["v8", "end2end", "v5"]
PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class Letterbox:
    ratio: float
    pad_x: float
    pad_y: float

    def to_frame(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """xyxy boxes in model-input pixels -> frame pixels, clipped to the frame."""
        out = boxes.astype(np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.ratio
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.ratio
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def letterbox(frame_bgr: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect, pad evenly with 114, BGR->RGB, /255, NCHW float32. size = (w, h)."""
    h, w = frame_bgr.shape[:2]
    tw, th = size
    r = min(th / h, tw / w)
    nw, nh = round(w * r), round(h * r)
    pad_x, pad_y = (tw - nw) / 2, (th - nh) / 2
    resized = (
        frame_bgr
        if (nw, nh) == (w, h)
        else cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    )
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas = cv2.copyMakeBorder(
        resized,
        top,
        th - nh - top,
        left,
        tw - nw - left,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE,) * 3,
    )
    tensor = np.empty((1, 3, th, tw), np.float32)
    np.multiply(canvas.transpose(2, 0, 1)[::-1], 1 / 255.0, out=tensor[0], casting="unsafe")
    return tensor, Letterbox(r, left, top)


def detect_layout(shape: tuple[int, ...]) -> Layout:
    """Guess the layout from the output shape (batch first)."""
    if len(shape) != 3:
        raise ValueError(f"YOLO output must be 3-D, got {shape}")
    _, a, b = shape
    if b == 6 and a <= 1000:
        return "end2end"
    if a < b:  # channels first: (1, 4+nc, N) with N in the thousands
        return "v8"
    return "v5"


def _cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    out[:, 0] = b[:, 0] - b[:, 2] / 2
    out[:, 1] = b[:, 1] - b[:, 3] / 2
    out[:, 2] = b[:, 0] + b[:, 2] / 2
    out[:, 3] = b[:, 1] + b[:, 3] / 2
    return out


def decode_v8(output: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, 4+nc, N) -> xyxy boxes, scores, class ids (before NMS), scores >= min_score."""
    pred = output[0].T  # (N, 4+nc)
    cls_scores = pred[:, 4:]
    cls = cls_scores.argmax(1)
    scores = cls_scores[np.arange(len(cls)), cls]
    keep = scores >= min_score
    return _cxcywh_to_xyxy(pred[keep, :4]), scores[keep], cls[keep]


def decode_v5(output: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, N, 5+nc) -> xyxy boxes, scores (objectness x class), class ids, before NMS."""
    pred = output[0]
    pred = pred[pred[:, 4] >= min_score]  # objectness bounds the final score: cheap pre-filter
    cls_scores = pred[:, 5:] * pred[:, 4:5]
    cls = cls_scores.argmax(1)
    scores = cls_scores[np.arange(len(cls)), cls]
    keep = scores >= min_score
    return _cxcywh_to_xyxy(pred[keep, :4]), scores[keep], cls[keep]


def decode_end2end(
    output: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1, 300, 6) x1, y1, x2, y2, score, class: already suppressed."""
    pred = output[0]
    keep = pred[:, 4] >= min_score
    return pred[keep, :4].copy(), pred[keep, 4], pred[keep, 5].astype(np.int64)


def nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, min_score: float, iou: float
) -> np.ndarray:
    """Per-class NMS with OpenCV; returns kept indices."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = boxes.copy()
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), scores.astype(float).tolist(), classes.astype(int).tolist(), min_score, iou
    )
    return np.asarray(kept, np.int64).reshape(-1)


def decode(
    output: np.ndarray, layout: Layout, min_score: float, iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Any layout -> NMS'd xyxy boxes (input pixels), scores, class ids."""
    if layout == "v8":
        boxes, scores, cls = decode_v8(output, min_score)
    elif layout == "v5":
        boxes, scores, cls = decode_v5(output, min_score)
    else:
        return decode_end2end(output, min_score)
    keep = nms(boxes, scores, cls, min_score, iou)
    return boxes[keep], scores[keep], cls[keep]


def parse_names(meta: Mapping[str, str]) -> dict[int, str]:
    """Ultralytics writes `names` as a Python dict literal: "{0: 'mug', 1: 'tea'}"."""
    raw = meta.get("names")
    if not raw:
        return {}
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return {}
    if isinstance(value, dict):
        return {int(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return dict(enumerate(map(str, value)))
    return {}


class YoloDetector(Detector):
    type_key = "yolo"

    def __init__(self, config: YoloDetectorConfig) -> None:
        super().__init__(config)
        shape = tuple(d if isinstance(d, int) else 1 for d in self.session.get_outputs()[0].shape)
        self.layout: Layout = detect_layout(shape) if config.layout == "auto" else config.layout
        self.names = parse_names(self.metadata)
        self.hand_classes = set(config.hand_classes)

    def input_size(self) -> tuple[int, int]:
        shape = self.session.get_inputs()[0].shape
        h, w = shape[2], shape[3]
        if not isinstance(h, int) or not isinstance(w, int):
            imgsz = ast.literal_eval(self.metadata.get("imgsz", "[640, 640]"))
            h, w = imgsz
        return int(w), int(h)

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Any]:
        return letterbox(
            frame_bgr, self.info.input_size if hasattr(self, "info") else self.input_size()
        )

    def label_for(self, cls: int) -> str:
        name = self.names.get(cls, str(cls))
        return self.config.class_map.get(name, name)

    def postprocess(
        self, outputs: list[np.ndarray], context: Letterbox, width: int, height: int
    ) -> DetectionResult:
        cfg = self.config
        lo = max(1e-3, cfg.confidence - cfg.unsure_band)
        boxes, scores, cls = decode(outputs[0], self.layout, lo, cfg.iou)
        boxes = context.to_frame(boxes, width, height)
        detections = []
        hand_score = 0.0
        for box, score, c in zip(boxes, scores, cls, strict=True):
            name = self.names.get(int(c), str(int(c)))
            if name in self.hand_classes:
                hand_score = max(hand_score, float(score))
                continue
            unsure = bool(score < cfg.confidence + cfg.unsure_band)
            detections.append(
                Detection(
                    tuple(map(float, box)),
                    float(score),  # type: ignore[arg-type]
                    self.label_for(int(c)),
                    unsure,
                )
            )
        unreadable = hand_score >= cfg.confidence
        unsure = any(d.unsure for d in detections)
        reason = (
            "hand over the carton" if unreadable else "a detection is too faint" if unsure else ""
        )
        return DetectionResult(
            tuple(detections), unreadable, hand_score, unsure, width, height, reason=reason
        )
