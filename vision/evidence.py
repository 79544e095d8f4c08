"""Evidence frames: privacy masks first, then annotations, then a JPEG and its SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.config import Region
from vision.observe import FrameObservation


@dataclass(frozen=True, slots=True)
class EvidenceImage:
    jpeg: bytes
    sha256: str
    masked_regions: tuple[str, ...]
    path: str | None = None


def apply_masks(frame_bgr: np.ndarray, regions: Iterable[Region]) -> tuple[np.ndarray, list[str]]:
    """Black out every region (a copy); returns the image and the names masked."""
    out = frame_bgr.copy()
    h, w = out.shape[:2]
    names = []
    for region in regions:
        x1, y1, x2, y2 = region.pixels(w, h)
        out[y1:y2, x1:x2] = 0
        names.append(region.name)
    return out, names


def annotate(frame_bgr: np.ndarray, obs: FrameObservation, caption: str = "") -> np.ndarray:
    out = frame_bgr.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    for d in obs.result.detections:
        x1, y1, x2, y2 = (int(v) for v in d.box)
        color = (0, 200, 255) if d.unsure else (0, 220, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        cx, cy = (int(v) for v in d.center)
        cv2.circle(out, (cx, cy), thick * 3, color, -1)
        text = f"{d.label or 'item'} {d.score:.2f}"
        cv2.putText(
            out, text, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thick, color, thick
        )
    for code in obs.codes:
        pts = np.array(code.polygon, np.int32)
        cv2.polylines(out, [pts], True, (255, 80, 0), thick)
        cv2.putText(
            out, code.text[:24], pts[0], cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thick, (255, 80, 0), thick
        )
    status = f"items {obs.result.count}" if obs.readable else f"NOT APPLICABLE: {obs.result.reason}"
    banner = f"{status}  codes {len(obs.codes)}  {caption}".strip()
    cv2.rectangle(out, (0, 0), (w, 14 * thick + 6), (0, 0, 0), -1)
    cv2.putText(
        out, banner, (4, 12 * thick), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (255, 255, 255), thick
    )
    return out


def evidence_jpeg(
    frame_bgr: np.ndarray,
    obs: FrameObservation,
    masks: Iterable[Region] = (),
    *,
    caption: str = "",
    quality: int = 80,
    directory: Path | None = None,
    name: str = "frame",
) -> EvidenceImage:
    """Mask, annotate, encode; optionally write `<directory>/<name>-<sha12>.jpg`."""
    masked, names = apply_masks(frame_bgr, masks)
    ok, buf = cv2.imencode(
        ".jpg", annotate(masked, obs, caption), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    data = buf.tobytes()
    digest = hashlib.sha256(data).hexdigest()
    path = None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{name}-{digest[:12]}.jpg"
        target.write_bytes(data)
        path = str(target)
    return EvidenceImage(data, digest, tuple(names), path)
