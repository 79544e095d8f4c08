"""Camera sources and the grabber against a real video file and an image folder."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.config import FileSourceConfig, FolderSourceConfig, SimulatorSourceConfig
from vision.observe import StillnessGate
from vision.sources import FolderSource, Grabber, SimulatorSource


def _frames(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((120, 160, 3), np.uint8)
        cv2.putText(img, str(i), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        out.append(img)
    return out


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (160, 120))
    assert writer.isOpened()
    for frame in _frames(20):
        writer.write(frame)
    writer.release()
    return path


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_grabber_holds_the_newest_frame_of_a_video_file(video: Path) -> None:
    healths = []
    grabber = Grabber(FileSourceConfig(type="file", path=video), on_health=healths.append)
    grabber.start()
    try:
        assert _wait(lambda: grabber.frames >= 25)  # looped past the end of a 20-frame clip
        frame = grabber.latest()
        assert frame is not None and frame.image.shape == (120, 160, 3)
        newer = grabber.wait_newer(frame.number, 2.0)
        assert newer is not None and newer.number > frame.number
        assert grabber.health.state == "up"
    finally:
        assert grabber.stop()
    assert [h.state for h in healths] == ["up"]


def test_a_missing_file_is_down_and_retried(tmp_path: Path) -> None:
    config = FileSourceConfig(
        type="file", path=tmp_path / "nope.avi", reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    grabber = Grabber(config)
    grabber.start()
    try:
        assert _wait(lambda: grabber.reconnects >= 3)
        assert grabber.health.state == "down" and "cannot open" in grabber.health.detail
        assert grabber.latest() is None
    finally:
        grabber.stop()


def test_folder_source_serves_images_in_name_order_and_ends(tmp_path: Path) -> None:
    for i, img in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    source = FolderSource(
        FolderSourceConfig(type="folder", path=tmp_path, loop=False, interval_s=0)
    )
    source.open()
    got = [source.read() for _ in range(4)]
    assert [g is None for g in got] == [False, False, False, True]
    assert np.array_equal(got[1], _frames(3)[1])


def test_grabber_reports_a_folder_that_runs_dry_as_down(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "only.png"), _frames(1)[0])
    config = FolderSourceConfig(
        type="folder",
        path=tmp_path,
        loop=False,
        interval_s=0,
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    states = []
    grabber = Grabber(config, on_health=lambda h: states.append(h.state))
    grabber.start()
    try:
        assert _wait(lambda: "down" in states and grabber.frames >= 2)  # reopened after the end
    finally:
        grabber.stop()
    assert states[:2] == ["up", "down"]


def test_simulator_source_and_stillness_gate() -> None:
    source = SimulatorSource(SimulatorSourceConfig(type="simulator", seed=3, interval_s=0))
    gate = StillnessGate(settle_frames=2)
    assert not gate.update(source.read())  # type: ignore[arg-type]
    assert not gate.update(source.read())  # type: ignore[arg-type]
    assert gate.update(source.read())  # type: ignore[arg-type]  # a still carton settles
    source.sequence.insert("A")
    assert not gate.update(source.read())  # type: ignore[arg-type]  # the new item is motion
