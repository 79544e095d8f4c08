"""Overhead camera simulator: procedural top-down carton scenes, rendered insertion by insertion.

Geometry lives in normalised frame units, so the same scene renders at the model's input size
(training, fast) or at 1920x1080 (barcode reading, benchmarks). Everything is drawn with OpenCV
and numpy; one `random.Random`/`numpy.Generator` pair seeded per scene makes every scene
reproducible from `(seed, index)`.

What varies (domain randomisation): carton type and colour, flaps, fill material (crumpled paper,
air pillows), item kind (box, bottle, pouch, polybag, folded garment), item design (colour,
texture, label, barcode), rotation, scale jitter, partial overlap, drop shadows, glare, blur,
noise, JPEG, white balance, exposure, and hands in view.

Item designs come in two disjoint families: `train` (solid, stripes, checker, noise textures) and
`holdout` (dots, waves, plaid textures and a different hue grid), so evaluation can use designs the
model never saw. The ground truth per scene: visible item count, SKUs, boxes (full and visible),
centres of the visible part, and whether a hand is over the carton (scene unreadable).

    packstation simulate camera --out DIR -n 200 [--family holdout] [--level hard] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

Family = Literal["train", "holdout"]
Level = Literal["normal", "hard"]
ItemKind = Literal["box", "bottle", "pouch", "polybag", "garment"]
KINDS: tuple[ItemKind, ...] = ("box", "bottle", "pouch", "polybag", "garment")
TEXTURES: dict[str, tuple[str, ...]] = {
    "train": ("solid", "stripes", "checker", "noise"),
    "holdout": ("dots", "waves", "plaid"),
}
# A visible fraction below this and an item is not counted (it is buried, not "in view").
MIN_VISIBLE = 0.55


@dataclass(frozen=True, slots=True)
class ItemDesign:
    """What one product looks like: shared by every unit of a SKU."""

    kind: ItemKind
    color: tuple[int, int, int]  # BGR
    accent: tuple[int, int, int]
    texture: str
    size: tuple[float, float]  # width, height as fraction of the frame's short side
    label: bool
    gtin: str | None = None  # EAN-13 printed on the label, if any
    gs1: str | None = None  # GS1 element string printed as DataMatrix, e.g. "(01)...(21)..."
    sku: str | None = None


@dataclass(slots=True)
class PlacedItem:
    design: ItemDesign
    center: tuple[float, float]  # normalised 0..1 (x, y)
    angle: float  # degrees
    scale: float
    seed: int


@dataclass(frozen=True, slots=True)
class ItemTruth:
    sku: str | None
    kind: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 of the whole item, pixels
    visible_box: tuple[int, int, int, int]
    center: tuple[float, float]  # centroid of the visible part, pixels
    visible: float  # visible fraction 0..1
    counted: bool


@dataclass(frozen=True, slots=True)
class SceneTruth:
    width: int
    height: int
    count: int  # items counted (visible fraction >= MIN_VISIBLE)
    skus: dict[str, int]
    items: tuple[ItemTruth, ...]
    hand: bool
    unreadable: bool
    codes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class Carton:
    rect: tuple[float, float, float, float]  # normalised x1, y1, x2, y2 of the inner floor
    color: tuple[int, int, int]
    fill: Literal["none", "paper", "pillows"]
    flaps: bool
    bench: tuple[int, int, int]
    seed: int


@dataclass(slots=True)
class Look:
    """Photometric randomisation applied to the whole frame."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 1.0
    contrast: float = 1.0
    blur: float = 0.0
    motion: int = 0
    noise: float = 0.0
    jpeg: int = 0  # 0 = no JPEG round trip
    glare: tuple[float, float, float, float] | None = None  # x, y, radius, strength
    light_angle: float = 0.0
    light_strength: float = 0.0


@dataclass(slots=True)
class Hand:
    origin: tuple[float, float]  # where the arm enters (normalised, on an edge)
    tip: tuple[float, float]
    color: tuple[int, int, int]
    width: float


@dataclass(slots=True)
class Scene:
    carton: Carton
    items: list[PlacedItem] = field(default_factory=list)
    look: Look = field(default_factory=Look)
    hands: list[Hand] = field(default_factory=list)


# -- designs ------------------------------------------------------------------------------------


def _hsv_color(rng: random.Random, hue: float, sat: float, val: float) -> tuple[int, int, int]:
    px = np.uint8([[[int(hue) % 180, int(sat * 255), int(val * 255)]]])
    b, g, r = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def random_design(
    rng: random.Random,
    family: Family = "train",
    kind: ItemKind | None = None,
    sku: str | None = None,
    gtin: str | None = None,
    gs1: str | None = None,
) -> ItemDesign:
    kind = kind or rng.choice(KINDS)
    # Hue grids interleave: training hues on even 10-degree steps, holdout on odd ones.
    step = rng.randrange(18) * 10 + (5 if family == "holdout" else 0)
    hue = step + rng.uniform(-2, 2)
    color = _hsv_color(rng, hue, rng.uniform(0.25, 0.95), rng.uniform(0.35, 0.95))
    accent = _hsv_color(rng, hue + rng.uniform(40, 140), rng.uniform(0.2, 1), rng.uniform(0.2, 1))
    size = {
        "box": (rng.uniform(0.14, 0.26), rng.uniform(0.10, 0.20)),
        "bottle": (d := rng.uniform(0.09, 0.15), d),
        "pouch": (rng.uniform(0.12, 0.20), rng.uniform(0.15, 0.24)),
        "polybag": (rng.uniform(0.16, 0.26), rng.uniform(0.18, 0.28)),
        "garment": (rng.uniform(0.18, 0.27), rng.uniform(0.14, 0.22)),
    }[kind]
    return ItemDesign(
        kind=kind,
        color=color,
        accent=accent,
        texture=rng.choice(TEXTURES[family]),
        size=size,
        label=(kind != "bottle" and rng.random() < 0.6) or gtin is not None or gs1 is not None,
        gtin=gtin,
        gs1=gs1,
        sku=sku,
    )


def _texture(design: ItemDesign, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = design.color
    period = max(3, int(min(w, h) * rng.uniform(0.12, 0.35)))
    yy, xx = np.mgrid[0:h, 0:w]
    t = design.texture
    if t == "stripes":
        mask = ((xx + yy * rng.uniform(-1, 1)) // period) % 2 == 0
        img[mask] = design.accent
    elif t == "checker":
        mask = ((xx // period) + (yy // period)) % 2 == 0
        img[mask] = design.accent
    elif t == "noise":
        small = rng.integers(0, 2, (max(1, h // period + 1), max(1, w // period + 1)), np.uint8)
        mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        img[mask] = design.accent
    elif t == "dots":
        r = max(1, period // 4)
        for cy in range(period // 2, h, period):
            for cx in range(period // 2, w, period):
                cv2.circle(img, (cx, cy), r, design.accent, -1, cv2.LINE_AA)
    elif t == "waves":
        mask = np.sin(xx / period * 3.0 + np.sin(yy / period * 2.0) * 2.0) > 0.3
        img[mask] = design.accent
    elif t == "plaid":
        mask = ((xx // period) % 3 == 0) | ((yy // period) % 3 == 0)
        img[mask] = (np.asarray(design.color) * 0.5 + np.asarray(design.accent) * 0.5).astype(
            np.uint8
        )
    return img


def ean13_check_digit(digits12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return str((10 - total % 10) % 10)


_EAN_L = (
    "0001101",
    "0011001",
    "0010011",
    "0111101",
    "0100011",
    "0110001",
    "0101111",
    "0111011",
    "0110111",
    "0001011",
)
_EAN_PARITY = (
    "LLLLLL",
    "LLGLGG",
    "LLGGLG",
    "LLGGGL",
    "LGLLGG",
    "LGGLLG",
    "LGGGLL",
    "LGLGLG",
    "LGLGGL",
    "LGGLGL",
)


def ean13_modules(code: str) -> str:
    """The 95 bar/space modules of an EAN-13 (1 = bar). Pure; no quiet zone."""
    if len(code) != 13 or not code.isdigit():
        raise ValueError(f"EAN-13 needs 13 digits, got {code!r}")
    parity = _EAN_PARITY[int(code[0])]
    bits = "101"
    for i, d in enumerate(code[1:7]):
        pattern = _EAN_L[int(d)]
        if parity[i] == "G":  # G code = reversed complement of L
            pattern = "".join("1" if c == "0" else "0" for c in pattern)[::-1]
        bits += pattern
    bits += "01010"
    for d in code[7:]:
        bits += "".join("1" if c == "0" else "0" for c in _EAN_L[int(d)])  # R code
    return bits + "101"


def render_ean13(code: str, module_px: int = 2, height_px: int | None = None) -> np.ndarray:
    """Black on white EAN-13 with a quiet zone of 10 modules, grey uint8."""
    bits = ean13_modules(code)
    quiet = 10
    row = np.array([0 if b == "1" else 255 for b in "0" * quiet + bits + "0" * quiet], np.uint8)
    row = np.repeat(row, module_px)
    height = height_px or module_px * 40
    return np.tile(row, (height, 1))


def render_datamatrix(gs1: str, module_px: int = 3) -> np.ndarray:
    """A GS1 DataMatrix via zxing-cpp's writer (grey uint8, with quiet zone)."""
    import zxingcpp

    barcode = zxingcpp.create_barcode(gs1, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    img = np.asarray(
        zxingcpp.write_barcode_to_image(barcode, scale=module_px, add_quiet_zones=True)
    )
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img.astype(np.uint8)


def _label(design: ItemDesign, w: int, h: int, rng: np.random.Generator) -> np.ndarray | None:
    """A white label with text-like lines and a barcode (real if the design carries one)."""
    coded = design.gtin is not None or design.gs1 is not None
    lw = int(w * (0.92 if coded else rng.uniform(0.5, 0.8)))
    lh = int(h * (0.6 if coded else rng.uniform(0.35, 0.55)))
    if lw < 6 or lh < 5:
        return None
    label = np.full((lh, lw, 3), 245, np.uint8)
    code_img: np.ndarray | None = None
    if design.gs1 is not None:
        code_img = render_datamatrix(design.gs1, module_px=4)
    elif design.gtin is not None:
        code_img = render_ean13(design.gtin, 3, max(8, int(lh * 0.75)))
    if code_img is not None:
        ch, cw = code_img.shape
        scale = min(1.0, (lw - 2) / cw, (lh - 2) / ch)
        if scale < 1.0:
            code_img = cv2.resize(
                code_img,
                (max(1, int(cw * scale)), max(1, int(ch * scale))),
                interpolation=cv2.INTER_AREA,
            )
            ch, cw = code_img.shape
        y0, x0 = (lh - ch) // 2, (lw - cw) // 2
        label[y0 : y0 + ch, x0 : x0 + cw] = code_img[:, :, None]
    else:
        n_bars = int(rng.integers(12, 30))
        x = int(lw * 0.1)
        bottom = int(lh * 0.8)
        for _ in range(n_bars):
            bw = int(rng.integers(1, 3))
            if x + bw >= lw * 0.9:
                break
            cv2.rectangle(label, (x, int(lh * 0.45)), (x + bw - 1, bottom), (20, 20, 20), -1)
            x += bw + int(rng.integers(1, 3))
        for i in range(2):
            y = int(lh * (0.12 + 0.14 * i))
            cv2.line(label, (int(lw * 0.1), y), (int(lw * rng.uniform(0.4, 0.9)), y), (60,) * 3)
    return label


def item_sprite(item: PlacedItem, px_per_unit: float) -> tuple[np.ndarray, np.ndarray]:
    """The item's top view, unrotated: BGR image and float alpha (0..1)."""
    d = item.design
    rng = np.random.default_rng(item.seed)
    w = max(4, int(d.size[0] * item.scale * px_per_unit))
    h = max(4, int(d.size[1] * item.scale * px_per_unit))
    img = _texture(d, w, h, rng)
    alpha = np.zeros((h, w), np.float32)
    if d.kind == "box":
        alpha[:] = 1.0
        edge = max(1, min(w, h) // 14)
        cv2.rectangle(img, (0, 0), (w - 1, h - 1), tuple(int(c * 0.6) for c in d.color), edge)
        if rng.random() < 0.5:  # tape across the lid
            y = h // 2
            cv2.rectangle(img, (0, y - edge), (w, y + edge), (180, 200, 210), -1)
    elif d.kind == "bottle":
        r = min(w, h) // 2
        cv2.circle(alpha, (w // 2, h // 2), r, 1.0, -1, cv2.LINE_AA)
        shade = np.clip(1.15 - np.hypot(*np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]) * 0.5, 0, 1.3)
        img = np.clip(img * shade[:, :, None], 0, 255).astype(np.uint8)
        cv2.circle(img, (w // 2, h // 2), max(2, r // 3), d.accent, -1, cv2.LINE_AA)
        cv2.circle(img, (w // 2, h // 2), max(2, r // 3), (40, 40, 40), 1, cv2.LINE_AA)
    elif d.kind == "pouch":
        pts = np.array(
            [
                [w * 0.08, 0],
                [w * 0.92, 0],
                [w, h * 0.15],
                [w * 0.95, h],
                [w * 0.05, h],
                [0, h * 0.15],
            ],
            np.int32,
        )
        cv2.fillPoly(alpha, [pts], 1.0, cv2.LINE_AA)
        seal = max(1, h // 12)
        img[:seal] = np.clip(np.asarray(d.color) * 0.75, 0, 255).astype(np.uint8)
        for x in range(0, w, max(2, w // 20)):
            cv2.line(img, (x, 0), (x, seal), (30, 30, 30), 1)
    elif d.kind == "polybag":
        cv2.rectangle(alpha, (0, 0), (w - 1, h - 1), 1.0, -1)
        wrinkle = cv2.GaussianBlur(
            rng.normal(0, 1, (max(2, h // 6), max(2, w // 6))).astype(np.float32), (0, 0), 1.0
        )
        wrinkle = cv2.resize(wrinkle, (w, h))
        sheen = np.clip(200 + wrinkle * 40, 0, 255)
        img = (img * 0.55 + sheen[:, :, None] * 0.45).astype(np.uint8)
        alpha[:] = 0.93
        cv2.rectangle(img, (0, 0), (w - 1, max(1, h // 10)), (230, 230, 235), -1)  # seal strip
    else:  # garment: folded rectangle with soft edges and a fold line
        cv2.rectangle(alpha, (0, 0), (w - 1, h - 1), 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, min(w, h) / 40))
        fold = int(h * rng.uniform(0.3, 0.7))
        cv2.line(img, (0, fold), (w, fold), tuple(int(c * 0.55) for c in d.color), max(1, h // 25))
        cv2.line(img, (w // 2, 0), (w // 2, fold), tuple(int(c * 0.7) for c in d.color), 1)
    if d.label:
        label = _label(d, w, h, rng)
        if label is not None:
            lh, lw = label.shape[:2]
            y0 = int((h - lh) * rng.uniform(0.2, 0.8))
            x0 = int((w - lw) * rng.uniform(0.2, 0.8))
            img[y0 : y0 + lh, x0 : x0 + lw] = label
    return img, alpha


# -- scene composition --------------------------------------------------------------------------


def random_carton(rng: random.Random) -> Carton:
    kind = rng.random()
    if kind < 0.6:  # kraft
        color = _hsv_color(rng, rng.uniform(10, 22), rng.uniform(0.35, 0.6), rng.uniform(0.55, 0.8))
    elif kind < 0.85:  # white mailer
        v = rng.uniform(0.8, 0.95)
        color = _hsv_color(rng, 20, 0.05, v)
    else:  # coloured tote
        color = _hsv_color(rng, rng.choice([100, 110, 0, 60, 20]), 0.6, rng.uniform(0.3, 0.6))
    mx, my = rng.uniform(0.06, 0.14), rng.uniform(0.06, 0.14)
    jx, jy = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    return Carton(
        rect=(mx + jx, my + jy, 1 - mx + jx, 1 - my + jy),
        color=color,
        fill=rng.choice(["none", "none", "paper", "pillows"]),
        flaps=rng.random() < 0.7,
        bench=_hsv_color(rng, rng.uniform(0, 30), rng.uniform(0, 0.3), rng.uniform(0.3, 0.7)),
        seed=rng.randrange(2**31),
    )


def random_look(rng: random.Random, level: Level = "normal") -> Look:
    hard = level == "hard"
    wb = 0.22 if hard else 0.12
    return Look(
        gains=tuple(rng.uniform(1 - wb, 1 + wb) for _ in range(3)),  # type: ignore[arg-type]
        exposure=rng.uniform(0.55, 1.45) if hard else rng.uniform(0.75, 1.2),
        contrast=rng.uniform(0.6, 1.3) if hard else rng.uniform(0.8, 1.15),
        blur=rng.uniform(0.5, 2.0) if hard else rng.choice([0.0, 0.0, rng.uniform(0.3, 1.0)]),
        motion=rng.choice([0, 0, 3, 5]) if hard else 0,
        noise=rng.uniform(4, 12) if hard else rng.uniform(0, 5),
        jpeg=rng.randrange(25, 60) if hard else rng.choice([0, rng.randrange(55, 95)]),
        glare=(
            (
                rng.uniform(0.2, 0.8),
                rng.uniform(0.2, 0.8),
                rng.uniform(0.08, 0.25),
                rng.uniform(0.4, 0.9) if hard else rng.uniform(0.2, 0.55),
            )
            if rng.random() < (0.6 if hard else 0.3)
            else None
        ),
        light_angle=rng.uniform(0, 2 * math.pi),
        light_strength=rng.uniform(0.25, 0.5) if hard else rng.uniform(0, 0.25),
    )


def random_hand(rng: random.Random, carton: Carton) -> Hand:
    edge = rng.choice(["bottom", "left", "right"])
    x1, y1, x2, y2 = carton.rect
    if edge == "bottom":
        origin = (rng.uniform(0.2, 0.8), 1.05)
    elif edge == "left":
        origin = (-0.05, rng.uniform(0.3, 0.9))
    else:
        origin = (1.05, rng.uniform(0.3, 0.9))
    tip = (rng.uniform(x1 + 0.1, x2 - 0.1), rng.uniform(y1 + 0.1, y2 - 0.1))
    skin = rng.random() < 0.6
    if skin:
        color = _hsv_color(rng, rng.uniform(5, 18), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    else:  # glove
        color = _hsv_color(
            rng, rng.choice([105, 110, 0, 30]), rng.uniform(0, 0.8), rng.uniform(0.1, 0.8)
        )
    return Hand(origin, tip, color, rng.uniform(0.09, 0.14))


def place_item(
    scene: Scene,
    design: ItemDesign,
    rng: random.Random,
    *,
    avoid_occlusion: bool = True,
    tries: int = 30,
) -> PlacedItem | None:
    """Drop a unit into the carton at a random pose; None if no pose keeps the others visible."""
    x1, y1, x2, y2 = scene.carton.rect
    for _ in range(tries):
        scale = rng.uniform(0.85, 1.15)
        half = max(design.size) * scale / 2
        cx = rng.uniform(x1 + half * 0.6, x2 - half * 0.6)
        cy = rng.uniform(y1 + half * 0.8, y2 - half * 0.8)
        item = PlacedItem(design, (cx, cy), rng.uniform(0, 360), scale, rng.randrange(2**31))
        if not avoid_occlusion:
            return item
        truth = visibility([*scene.items, item], 128, 96)
        if all(v >= MIN_VISIBLE + 0.1 for v in truth):
            return item
    return None


def _item_mask_and_image(
    item: PlacedItem, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate the sprite into frame coordinates: (image, alpha, full-box corner points)."""
    unit = min(width, height)
    img, alpha = item_sprite(item, unit)
    h, w = alpha.shape
    cx, cy = item.center[0] * width, item.center[1] * height
    m = cv2.getRotationMatrix2D((w / 2, h / 2), item.angle, 1.0)
    m[0, 2] += cx - w / 2
    m[1, 2] += cy - h / 2
    warped = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR)
    walpha = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR)
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float32) @ m.T
    return warped, walpha, corners


def _footprint(item: PlacedItem, width: int, height: int) -> np.ndarray:
    """The item's outline as a filled mask (geometry only, no texture): for cheap overlap tests."""
    unit = min(width, height)
    w = item.design.size[0] * item.scale * unit
    h = item.design.size[1] * item.scale * unit
    center = (item.center[0] * width, item.center[1] * height)
    mask = np.zeros((height, width), np.uint8)
    if item.design.kind == "bottle":
        cv2.circle(mask, (int(center[0]), int(center[1])), int(min(w, h) / 2), 1, -1)
    else:
        pts = cv2.boxPoints((center, (w, h), -item.angle)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask


def visibility(items: Sequence[PlacedItem], width: int, height: int) -> list[float]:
    """Visible fraction of each item after all later ones are stacked on top (cheap, low-res)."""
    top = np.full((height, width), -1, np.int16)
    areas = []
    for i, item in enumerate(items):
        mask = _footprint(item, width, height) > 0
        top[mask] = i
        areas.append(max(1, int(mask.sum())))
    return [float((top == i).sum()) / a for i, a in enumerate(areas)]


def random_scene(
    rng: random.Random,
    n_items: int,
    *,
    family: Family = "train",
    level: Level = "normal",
    hand: bool = False,
    designs: Sequence[ItemDesign] | None = None,
) -> Scene:
    scene = Scene(carton=random_carton(rng), look=random_look(rng, level))
    pool = list(designs) if designs else [random_design(rng, family) for _ in range(n_items)]
    for i in range(n_items):
        design = pool[i % len(pool)] if designs else pool[i]
        item = place_item(scene, design, rng)
        if item is not None:
            scene.items.append(item)
    if hand:
        scene.hands.append(random_hand(rng, scene.carton))
        if rng.random() < 0.3:
            scene.hands.append(random_hand(rng, scene.carton))
    return scene


# -- rendering ----------------------------------------------------------------------------------


def _draw_carton(canvas: np.ndarray, carton: Carton) -> None:
    h, w = canvas.shape[:2]
    rng = np.random.default_rng(carton.seed)
    canvas[:] = carton.bench
    grain = rng.normal(0, 6, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    canvas[:] = np.clip(canvas + cv2.resize(grain, (w, h))[:, :, None], 0, 255)
    x1, y1, x2, y2 = carton.rect
    p1 = (int(x1 * w), int(y1 * h))
    p2 = (int(x2 * w), int(y2 * h))
    wall = max(2, int(min(w, h) * 0.025))
    dark = tuple(int(c * 0.7) for c in carton.color)
    cv2.rectangle(canvas, (p1[0] - wall, p1[1] - wall), (p2[0] + wall, p2[1] + wall), dark, -1)
    cv2.rectangle(canvas, p1, p2, carton.color, -1)
    if carton.flaps:
        fl = int(min(w, h) * 0.06)
        light = tuple(min(255, int(c * 1.1)) for c in carton.color)
        for poly in (
            [
                (p1[0], p1[1] - wall),
                (p2[0], p1[1] - wall),
                (p2[0] - fl, p1[1] - wall - fl),
                (p1[0] + fl, p1[1] - wall - fl),
            ],
            [
                (p1[0], p2[1] + wall),
                (p2[0], p2[1] + wall),
                (p2[0] - fl, p2[1] + wall + fl),
                (p1[0] + fl, p2[1] + wall + fl),
            ],
        ):
            cv2.fillPoly(canvas, [np.array(poly, np.int32)], light, cv2.LINE_AA)
    if carton.fill == "paper":
        for _ in range(int(rng.integers(6, 18))):
            cx = int(rng.uniform(p1[0], p2[0]))
            cy = int(rng.uniform(p1[1], p2[1]))
            axes = (int(rng.uniform(0.02, 0.07) * w), int(rng.uniform(0.02, 0.06) * h))
            shade = int(rng.uniform(150, 215))
            cv2.ellipse(
                canvas, (cx, cy), axes, rng.uniform(0, 180), 0, 360, (shade,) * 3, -1, cv2.LINE_AA
            )
            cv2.ellipse(
                canvas,
                (cx, cy),
                axes,
                rng.uniform(0, 180),
                20,
                200,
                (shade - 40,) * 3,
                1,
                cv2.LINE_AA,
            )
    elif carton.fill == "pillows":
        overlay = canvas.copy()
        for _ in range(int(rng.integers(3, 8))):
            cx = int(rng.uniform(p1[0], p2[0]))
            cy = int(rng.uniform(p1[1], p2[1]))
            pw, ph = int(0.08 * w), int(0.05 * h)
            cv2.rectangle(overlay, (cx - pw, cy - ph), (cx + pw, cy + ph), (235, 235, 240), -1)
        cv2.addWeighted(overlay, 0.35, canvas, 0.65, 0, canvas)


def _draw_hand(canvas: np.ndarray, hand: Hand) -> np.ndarray:
    h, w = canvas.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    unit = min(w, h)
    ox, oy = hand.origin[0] * w, hand.origin[1] * h
    tx, ty = hand.tip[0] * w, hand.tip[1] * h
    width = hand.width * unit
    cv2.line(mask, (int(ox), int(oy)), (int(tx), int(ty)), 255, max(2, int(width * 0.8)))
    angle = math.atan2(ty - oy, tx - ox)
    cv2.ellipse(
        mask,
        (int(tx), int(ty)),
        (int(width * 0.7), int(width * 0.55)),
        math.degrees(angle),
        0,
        360,
        255,
        -1,
    )
    for k in range(-2, 3):  # fingers fan out from the palm
        a = angle + k * 0.28
        fx = tx + math.cos(a) * width * 1.3
        fy = ty + math.sin(a) * width * 1.3
        cv2.line(mask, (int(tx), int(ty)), (int(fx), int(fy)), 255, max(1, int(width * 0.2)))
    thumb = angle + 1.2
    cv2.line(
        mask,
        (int(tx), int(ty)),
        (int(tx + math.cos(thumb) * width), int(ty + math.sin(thumb) * width)),
        255,
        max(1, int(width * 0.22)),
    )
    soft = cv2.GaussianBlur(mask, (0, 0), max(0.8, unit / 300)).astype(np.float32) / 255
    shade = np.linspace(0.85, 1.1, w, dtype=np.float32)[None, :, None]
    colored = np.asarray(hand.color, np.float32) * shade
    canvas[:] = (canvas * (1 - soft[:, :, None]) + colored * soft[:, :, None]).astype(np.uint8)
    return mask


def _apply_look(img: np.ndarray, look: Look, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    f *= np.asarray(look.gains, np.float32)
    f = (f - 128) * look.contrast + 128
    f *= look.exposure
    if look.light_strength:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (xx / w - 0.5) * math.cos(look.light_angle) + (yy / h - 0.5) * math.sin(
            look.light_angle
        )
        f *= (1 + ramp * look.light_strength * 2)[:, :, None]
    if look.glare is not None:
        gx, gy, gr, gs = look.glare
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d2 = ((xx - gx * w) ** 2 + (yy - gy * h) ** 2) / (gr * min(w, h)) ** 2
        f += (np.exp(-d2) * gs * 255)[:, :, None]
    unit = min(w, h) / 192  # blur and noise were tuned at 192 px: keep them scale-matched
    if look.blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), look.blur * unit)
    if look.motion:
        k = np.zeros((look.motion, look.motion), np.float32)
        k[look.motion // 2, :] = 1 / look.motion
        size = max(1, int(look.motion * unit))
        f = cv2.filter2D(
            f, -1, cv2.resize(k, (size, size)) / max(1e-6, cv2.resize(k, (size, size)).sum())
        )
    if look.noise:
        f += rng.normal(0, look.noise, f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if look.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render(scene: Scene, width: int, height: int, seed: int = 0) -> tuple[np.ndarray, SceneTruth]:
    """Render the scene to a BGR uint8 image and compute its ground truth at that size."""
    canvas = np.empty((height, width, 3), np.uint8)
    _draw_carton(canvas, scene.carton)
    top = np.full((height, width), -1, np.int16)
    boxes: list[tuple[int, int, int, int]] = []
    areas: list[int] = []
    unit = min(width, height)
    for i, item in enumerate(scene.items):
        img, alpha, corners = _item_mask_and_image(item, width, height)
        # Drop shadow: the alpha shifted away from the light and blurred, darkening what is below.
        off = unit * 0.012
        shift = np.float32([[1, 0, off], [0, 1, off * 1.3]])
        shadow = cv2.warpAffine(alpha, shift, (width, height))
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.8, unit * 0.01)) * 0.45
        canvas[:] = (canvas * (1 - shadow[:, :, None])).astype(np.uint8)
        a = alpha[:, :, None]
        canvas[:] = (canvas * (1 - a) + img * a).astype(np.uint8)
        mask = alpha > 0.5
        top[mask] = i
        areas.append(max(1, int(mask.sum())))
        xs, ys = corners[:, 0], corners[:, 1]
        boxes.append(
            (
                int(max(0, xs.min())),
                int(max(0, ys.min())),
                int(min(width - 1, xs.max())),
                int(min(height - 1, ys.max())),
            )
        )
    hand_mask = np.zeros((height, width), np.uint8)
    for hand in scene.hands:
        hand_mask |= _draw_hand(canvas, hand)
    image = _apply_look(canvas, scene.look, seed)
    truths = []
    skus: dict[str, int] = {}
    for i, item in enumerate(scene.items):
        vis = top == i
        frac = float(vis.sum()) / areas[i]
        ys, xs = np.nonzero(vis)
        if len(xs):
            vbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
            center = (float(xs.mean()), float(ys.mean()))
        else:
            vbox, center = boxes[i], (item.center[0] * width, item.center[1] * height)
        counted = frac >= MIN_VISIBLE
        if counted and item.design.sku:
            skus[item.design.sku] = skus.get(item.design.sku, 0) + 1
        truths.append(
            ItemTruth(item.design.sku, item.design.kind, boxes[i], vbox, center, frac, counted)
        )
    # A hand covering part of the carton floor makes the scene unreadable.
    x1, y1, x2, y2 = scene.carton.rect
    floor = hand_mask[int(y1 * height) : int(y2 * height), int(x1 * width) : int(x2 * width)]
    hand = bool(scene.hands) and float((floor > 127).mean()) > 0.02
    codes = tuple(c for it in scene.items for c in (it.design.gtin, it.design.gs1) if c is not None)
    truth = SceneTruth(
        width=width,
        height=height,
        count=sum(t.counted for t in truths),
        skus=skus,
        items=tuple(truths),
        hand=hand,
        unreadable=hand,
        codes=codes,
    )
    return image, truth


# -- datasets and insertion sequences ------------------------------------------------------------


def dataset_scene(
    seed: int,
    index: int,
    *,
    family: Family = "train",
    level: Level = "normal",
    max_items: int = 8,
    hand_rate: float = 0.1,
    width: int = 256,
    height: int = 192,
) -> tuple[np.ndarray, SceneTruth]:
    """Scene `index` of the dataset with `seed`: the same pair always renders the same image."""
    rng = random.Random(seed * 1_000_003 + index)
    n = rng.randint(0, max_items)
    scene = random_scene(rng, n, family=family, level=level, hand=rng.random() < hand_rate)
    return render(scene, width, height, seed=seed * 7919 + index)


def write_dataset(
    out: Path,
    n: int,
    *,
    seed: int = 1,
    family: Family = "train",
    level: Level = "normal",
    max_items: int = 8,
    hand_rate: float = 0.1,
    width: int = 256,
    height: int = 192,
) -> list[Path]:
    """Write N labelled scenes: scene_00000.jpg/png + scene_00000.json (ground truth)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image, truth = dataset_scene(
            seed,
            i,
            family=family,
            level=level,
            max_items=max_items,
            hand_rate=hand_rate,
            width=width,
            height=height,
        )
        path = out / f"scene_{i:05d}.png"
        cv2.imwrite(str(path), image)
        (out / f"scene_{i:05d}.json").write_text(json.dumps(truth.as_dict(), indent=1))
        paths.append(path)
    return paths


class InsertionSequence:
    """One carton being packed: a scene that grows by one placed unit per `insert()`.

    `frame()` renders the current state (optionally with a hand over the carton, as while the
    packer is still placing the item). Used directly by tests and served by `SimulatedCamera`.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        width: int = 640,
        height: int = 480,
        level: Level = "normal",
        family: Family = "holdout",
    ) -> None:
        self.rng = random.Random(seed)
        self.scene = Scene(carton=random_carton(self.rng), look=random_look(self.rng, level))
        self.width, self.height = width, height
        self.family: Family = family
        self._frame_no = 0
        self._designs: dict[str, ItemDesign] = {}

    def design_for(
        self, sku: str | None, gtin: str | None = None, gs1: str | None = None
    ) -> ItemDesign:
        key = sku or f"anon-{len(self._designs)}"
        if key not in self._designs:
            self._designs[key] = random_design(self.rng, self.family, sku=sku, gtin=gtin, gs1=gs1)
        return self._designs[key]

    def look_alike(self, sku: str, like: str) -> None:
        """Render units of `sku` as units of `like` look (two SKUs in the same packaging)."""
        self._designs[sku] = replace(self.design_for(like), sku=sku)

    def insert(
        self, sku: str | None = None, *, gtin: str | None = None, gs1: str | None = None
    ) -> bool:
        """Put one unit in; False if it could not be placed without burying another item."""
        return self.place(sku, gtin=gtin, gs1=gs1) is not None

    def place(
        self, sku: str | None = None, *, gtin: str | None = None, gs1: str | None = None
    ) -> PlacedItem | None:
        """`insert`, returning the unit as placed (None if there was no room)."""
        item = place_item(self.scene, self.design_for(sku, gtin, gs1), self.rng)
        if item is not None:
            self.scene.items.append(item)
        return item

    def lay_over(self, item: PlacedItem, under: PlacedItem) -> None:
        """Set `item` down again squarely on `under`: same centre and angle, drawn on top of
        everything. It hides `under` if it is at least as large (a smaller one leaves it in
        view around its edges, as on the bench)."""
        self.scene.items.remove(item)
        self.scene.items.append(replace(item, center=under.center, angle=under.angle))

    def set_down_elsewhere(self, item: PlacedItem) -> PlacedItem:
        """Take `item` out and set it down again at a random pose in the carton, on top of
        everything, whatever it covers there (a unit put back while packing)."""
        self.scene.items.remove(item)
        x1, y1, x2, y2 = self.scene.carton.rect
        half = max(item.design.size) * item.scale / 2
        center = (
            self.rng.uniform(x1 + half * 0.6, x2 - half * 0.6),
            self.rng.uniform(y1 + half * 0.8, y2 - half * 0.8),
        )
        moved = replace(item, center=center, angle=self.rng.uniform(0, 360))
        self.scene.items.append(moved)
        return moved

    def frame(self, hand: bool = False) -> tuple[np.ndarray, SceneTruth]:
        self._frame_no += 1
        # A copy of the items: the camera's thread renders while the test's thread inserts.
        items = list(self.scene.items)
        hands = [random_hand(self.rng, self.scene.carton)] if hand else list(self.scene.hands)
        scene = Scene(self.scene.carton, items, self.scene.look, hands)
        return render(scene, self.width, self.height, seed=self._frame_no)


def iter_dataset(seed: int, n: int, **kwargs: object) -> Iterator[tuple[np.ndarray, SceneTruth]]:
    for i in range(n):
        yield dataset_scene(seed, i, **kwargs)  # type: ignore[arg-type]


# -- CLI ----------------------------------------------------------------------------------------


def add_simulate_command(simulators: argparse._SubParsersAction) -> None:
    p = simulators.add_parser("camera", help="write N labelled overhead-camera scenes to a folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--family", choices=["train", "holdout"], default="holdout")
    p.add_argument("--level", choices=["normal", "hard"], default="normal")
    p.add_argument("--max-items", type=int, default=8)
    p.add_argument("--hand-rate", type=float, default=0.1)
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    width, height = (int(v) for v in args.size.lower().split("x"))
    paths = write_dataset(
        args.out,
        args.n,
        seed=args.seed,
        family=args.family,
        level=args.level,
        max_items=args.max_items,
        hand_rate=args.hand_rate,
        width=width,
        height=height,
    )
    print(json.dumps({"written": len(paths), "folder": str(args.out)}))
    return 0
