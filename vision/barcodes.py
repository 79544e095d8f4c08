"""Codes in the frame: zxing-cpp reads, biip parses GS1, the catalog says which SKU a GTIN is.

Formats are restricted (every extra format costs decode time). Codes whose centre lies in an
ignore region (the packing slip) are dropped. GS1 symbols come back from zxing-cpp with their
symbology identifier (]d2, ]C1, ]Q3) and FNC1 separators kept in `.bytes`; biip parses the element
strings (GTIN with check digit, serial, lot, dates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vision.config import BarcodeConfig, Region

try:  # zxing-cpp is a runtime dependency, but a station without it must still count items
    import zxingcpp
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    zxingcpp = None


@dataclass(frozen=True, slots=True)
class CodeRead:
    format: str
    text: str
    symbology: str  # e.g. "]E0", "]d2"
    raw: bytes
    center: tuple[float, float]  # frame pixels
    polygon: tuple[tuple[int, int], ...]
    gtin: str | None = None  # GTIN-14, zero-padded, check digit verified
    serial: str | None = None
    lot: str | None = None

    @property
    def unit_key(self) -> str:
        """What identifies one physical unit: GTIN+serial when serialised, else the text."""
        if self.gtin and self.serial:
            return f"{self.gtin}/{self.serial}"
        return self.gtin or self.text


def gtin14(code: str) -> str | None:
    """Normalise an EAN-8/UPC-A/EAN-13/GTIN-14 to 14 digits; None if it is not one."""
    if code.isdigit() and len(code) in (8, 12, 13, 14):
        return code.zfill(14)
    return None


def parse_gs1(symbology: str, raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(gtin14, serial, lot) from a code's symbology identifier + bytes, via biip."""
    try:
        import biip
    except ImportError:  # pragma: no cover
        return None, None, None
    text = raw.decode("latin-1")
    try:
        result = biip.parse(symbology + text if symbology else text)
    except Exception:  # biip raises ParseError on codes that are not GS1 at all
        return None, None, None
    gtin = result.gtin.value.zfill(14) if result.gtin is not None else None
    serial = lot = None
    if result.gs1_message is not None:
        for element in result.gs1_message.element_strings:
            if element.ai.ai == "21":
                serial = element.value
            elif element.ai.ai == "10":
                lot = element.value
    return gtin, serial, lot


def _formats(names: Sequence[str]) -> list[object]:
    if zxingcpp is None:
        return []
    out = []
    for name in names:
        fmt = getattr(zxingcpp.BarcodeFormat, name, None)
        if fmt is None:
            raise ValueError(f"unknown barcode format {name!r}")
        out.append(fmt)
    return out


class BarcodeReader:
    def __init__(self, config: BarcodeConfig) -> None:
        self.config = config
        self.formats = _formats(config.formats)
        self.available = zxingcpp is not None

    def read(self, frame_bgr: np.ndarray) -> list[CodeRead]:
        if not self.config.enabled or zxingcpp is None:
            return []
        import cv2

        height, width = frame_bgr.shape[:2]
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        scale = 1.0
        limit = self.config.downscale_to
        if limit and max(width, height) > limit:
            scale = limit / max(width, height)
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cfg = self.config
        results = zxingcpp.read_barcodes(
            gray,
            formats=tuple(self.formats),
            try_rotate=cfg.try_rotate,
            try_invert=cfg.try_invert,
            try_downscale=cfg.try_downscale,
        )
        codes = []
        for r in results:
            p = r.position
            pts = [
                (p.top_left.x, p.top_left.y),
                (p.top_right.x, p.top_right.y),
                (p.bottom_right.x, p.bottom_right.y),
                (p.bottom_left.x, p.bottom_left.y),
            ]
            pts = [(int(x / scale), int(y / scale)) for x, y in pts]
            cx = sum(x for x, _ in pts) / 4
            cy = sum(y for _, y in pts) / 4
            if in_regions(cx, cy, self.config.ignore_regions, width, height):
                continue
            raw = bytes(r.bytes)
            symbology = r.symbology_identifier or ""
            gtin, serial, lot = parse_gs1(symbology, raw)
            if gtin is None:
                gtin = gtin14(r.text)
            codes.append(
                CodeRead(
                    r.format.name, r.text, symbology, raw, (cx, cy), tuple(pts), gtin, serial, lot
                )
            )
        return codes


def in_regions(x: float, y: float, regions: Iterable[Region], width: int, height: int) -> bool:
    return any(r.contains(x, y, width, height) for r in regions)


def code_index(barcodes: Mapping[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """Catalog barcode index (code -> (sku, units)) keyed also by GTIN-14, so a GS1 DataMatrix
    `(01)04012345000016` matches the catalog's EAN-13 `4012345000016`."""
    out = dict(barcodes)
    for code, value in barcodes.items():
        g = gtin14(code)
        if g is not None:
            out.setdefault(g, value)
    return out


def sku_for(code: CodeRead, index: Mapping[str, tuple[str, int]]) -> tuple[str, int] | None:
    for key in (code.gtin, code.text):
        if key is not None and key in index:
            return index[key]
    return None
