"""Vision config: discriminated unions on `type`, unknown keys refused, regions checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vision.config import Region, V4l2SourceConfig, VisionConfig, YoloDetectorConfig
from vision.detectors import DETECTORS
from vision.sources import SOURCES


def test_source_and_detector_are_picked_by_type() -> None:
    config = VisionConfig.model_validate(
        {
            "source": {"type": "v4l2", "device": "/dev/video2", "width": 1920, "height": 1080},
            "detector": {"type": "yolo", "model": "/m.onnx", "class_map": {"mug": "MUG-BLUE"}},
            "lookalike_groups": {"socks": ["SOCKS-M", "SOCKS-L"]},
        }
    )
    assert isinstance(config.source, V4l2SourceConfig)
    assert isinstance(config.detector, YoloDetectorConfig)
    assert config.detector.class_map == {"mug": "MUG-BLUE"}
    assert config.detector.spin is False and config.detector.threads == 2


def test_unknown_keys_and_types_are_refused_with_their_path() -> None:
    with pytest.raises(ValidationError, match=r"source\.v4l2\.devise"):
        VisionConfig.model_validate({"source": {"type": "v4l2", "devise": "/dev/video0"}})
    with pytest.raises(ValidationError, match="tag"):
        VisionConfig.model_validate({"source": {"type": "webcam"}})
    with pytest.raises(ValidationError):
        VisionConfig.model_validate({"source": {"type": "url", "url": "ftp://cam"}})


def test_regions_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="must exceed"):
        Region(name="slip", x1=0.5, y1=0.1, x2=0.4, y2=0.2)
    r = Region(name="slip", x1=0.5, y1=0.0, x2=1.0, y2=0.5)
    assert r.pixels(200, 100) == (100, 0, 200, 50)
    assert r.contains(150, 10, 200, 100) and not r.contains(50, 10, 200, 100)


def test_every_config_type_has_a_registered_class() -> None:
    assert set(DETECTORS) == {"counter", "yolo"}
    assert set(SOURCES) == {"v4l2", "url", "file", "folder", "simulator"}
    schema = VisionConfig.model_json_schema()
    assert "source" in schema["properties"]
