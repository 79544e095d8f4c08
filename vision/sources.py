"""Camera sources and the grabber thread that always holds the newest frame.

A source is something with `open()`, `read() -> frame | None` and `close()`; `open_source`
picks the class from the config's `type`. The `Grabber` owns one source in a thread: it reads as
fast as the source delivers, keeps only the newest frame (a slow consumer never sees a backlog),
reports health on change only, and reopens a failed or silent source with exponential backoff and
jitter (the scale supervisor's pattern).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from vision.config import (
    FileSourceConfig,
    FolderSourceConfig,
    SimulatorSourceConfig,
    SourceConfig,
    UrlSourceConfig,
    V4l2SourceConfig,
)

log = logging.getLogger("packstation.vision")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class FrameSource(Protocol):
    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The next frame (BGR uint8), or None when the source failed or ended."""

    def close(self) -> None: ...


class OpenCvSource:
    """V4L2 device, RTSP/HTTP URL or video file through cv2.VideoCapture."""

    def __init__(self, config: V4l2SourceConfig | UrlSourceConfig | FileSourceConfig) -> None:
        self.config = config
        self._cap: cv2.VideoCapture | None = None
        self._period = 0.0
        self._next = 0.0

    def open(self) -> None:
        c = self.config
        if isinstance(c, V4l2SourceConfig):
            target: int | str = int(c.device) if c.device.isdigit() else c.device
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            if c.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
        elif isinstance(c, UrlSourceConfig):
            cap = cv2.VideoCapture(c.url, cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(str(c.path))
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open {self.describe()}")
        if c.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        if c.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        if c.fps:
            cap.set(cv2.CAP_PROP_FPS, c.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
        if isinstance(c, FileSourceConfig) and c.realtime:
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            self._period = 1.0 / fps
        self._cap = cap
        self._next = time.monotonic()

    def describe(self) -> str:
        c = self.config
        return getattr(c, "device", None) or getattr(c, "url", None) or str(c.path)  # type: ignore[union-attr]

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        if self._period:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + self._period, time.monotonic() - self._period)
        ok, frame = self._cap.read()
        if not ok and isinstance(self.config, FileSourceConfig) and self.config.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource:
    """Images of a folder in name order (the technician's replay of captured frames)."""

    def __init__(self, config: FolderSourceConfig) -> None:
        self.config = config
        self._paths: list[Path] = []
        self._i = 0

    def open(self) -> None:
        folder = self.config.path
        if not folder.is_dir():
            raise OSError(f"{folder} is not a folder")
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise OSError(f"no images in {folder}")
        self._i = 0

    def read(self) -> np.ndarray | None:
        if self._i >= len(self._paths):
            if not self.config.loop:
                return None
            self._i = 0
        path = self._paths[self._i]
        self._i += 1
        if self.config.interval_s:
            time.sleep(self.config.interval_s)
        return cv2.imread(str(path), cv2.IMREAD_COLOR)

    def close(self) -> None:
        self._paths = []


class SimulatorSource:
    """Frames from simulators.camera. In-process, `sequence` is the carton being packed (tests
    insert into it); with `scene_file`, another process (the simulated packing table) says what
    is in the carton and each change is rendered once: between changes the frames are the same,
    as a still carton under a steady light nearly is."""

    def __init__(self, config: SimulatorSourceConfig) -> None:
        from simulators.camera import InsertionSequence

        self.config = config
        self.sequence = InsertionSequence(config.seed, width=self._width, height=self._height)
        self.hand = False  # set True to put a hand over the carton
        self._scene: object = None  # the scene file's last content, as rendered
        self._rendered: np.ndarray | None = None

    @property
    def _width(self) -> int:
        return self.config.width or 640

    @property
    def _height(self) -> int:
        return self.config.height or 480

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        if self.config.interval_s:
            time.sleep(self.config.interval_s)
        if self.config.scene_file is not None:
            return self._from_scene_file(self.config.scene_file)
        frame, _ = self.sequence.frame(hand=self.hand)
        return frame

    def _from_scene_file(self, path: Path) -> np.ndarray | None:
        from simulators.camera import InsertionSequence
        from simulators.camera_scene import CameraScene, read_scene

        # A missing or unreadable file keeps the last scene (an empty carton before the first).
        scene = read_scene(path) or self._scene or CameraScene()
        assert isinstance(scene, CameraScene)
        if scene.unplugged:  # no frames: the grabber finds the camera down, as with a cable out
            return None
        if scene != self._scene or self._rendered is None:
            # The same carton number and units always lay out the same way: replayed from the
            # start, the units put in earlier stay where they were.
            sequence = InsertionSequence(
                self.config.seed * 1_000 + scene.carton, width=self._width, height=self._height
            )
            placed = [sequence.place(unit.sku, gtin=unit.gtin) for unit in scene.units]
            for item, unit in zip(placed, scene.units, strict=True):
                under = None if unit.over is None else placed[unit.over]
                if item is not None and under is not None:
                    sequence.lay_over(item, under)
            self._rendered, _ = sequence.frame(hand=scene.hand)
            self._scene = scene
        return self._rendered

    def close(self) -> None:
        pass


SOURCES: dict[str, Callable[[SourceConfig], FrameSource]] = {
    "v4l2": OpenCvSource,  # type: ignore[dict-item]
    "url": OpenCvSource,  # type: ignore[dict-item]
    "file": OpenCvSource,  # type: ignore[dict-item]
    "folder": FolderSource,  # type: ignore[dict-item]
    "simulator": SimulatorSource,  # type: ignore[dict-item]
}


def open_source(config: SourceConfig) -> FrameSource:
    return SOURCES[config.type](config)


CameraState = Literal["connecting", "up", "down"]


@dataclass(frozen=True, slots=True)
class CameraHealth:
    state: CameraState
    detail: str
    since_monotonic: float


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray
    number: int
    monotonic: float


class Grabber:
    """One thread per camera; `latest()` returns the newest frame (or None when stale)."""

    def __init__(
        self,
        config: SourceConfig,
        on_health: Callable[[CameraHealth], None] | None = None,
        *,
        source: FrameSource | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.source = source or open_source(config)
        self._on_health = on_health
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._new = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.health = CameraHealth("connecting", "starting", time.monotonic())
        self.frames = 0
        self.reconnects = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camera-grabber", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        self._stop.set()
        with self._new:
            self._new.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def latest(self, max_age_s: float | None = None) -> Frame | None:
        with self._lock:
            frame = self._frame
        age = self.config.stale_after_s if max_age_s is None else max_age_s
        if frame is None or time.monotonic() - frame.monotonic > age:
            return None
        return frame

    def wait_newer(self, than: int, timeout_s: float) -> Frame | None:
        """Block until a frame numbered above `than` arrives (for callers off the event loop)."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while (self._frame is None or self._frame.number <= than) and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._new.wait(remaining)
            return self._frame

    def _set_health(self, state: CameraState, detail: str) -> None:
        if state == self.health.state and detail == self.health.detail:
            return
        if state != self.health.state:
            log.log(
                logging.WARNING if state == "down" else logging.INFO, "camera %s: %s", state, detail
            )
        self.health = CameraHealth(state, detail, time.monotonic())
        if self._on_health is not None:
            self._on_health(self.health)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.source.open()
                detail = self._serve()
            except OSError as exc:
                detail = str(exc)
            finally:
                self.source.close()
            if self._stop.is_set():
                return
            failures = 1 if self.health.state == "up" else failures + 1
            self._set_health("down", detail or "camera stopped delivering frames")
            self.reconnects += 1
            c = self.config
            ceiling = min(c.reconnect_max_s, c.reconnect_min_s * 2 ** (failures - 1))
            self._stop.wait(self._rng.uniform(max(c.reconnect_min_s, ceiling / 2), ceiling))

    def _serve(self) -> str:
        last = time.monotonic()
        while not self._stop.is_set():
            image = self.source.read()
            now = time.monotonic()
            if image is None:
                if now - last > self.config.stale_after_s:
                    return f"no frame for {now - last:.1f} s"
                return "camera returned no frame"
            last = now
            with self._new:
                self.frames += 1
                self._frame = Frame(image, self.frames, now)
                self._new.notify_all()
            self._set_health("up", "frames arriving")
        return ""
