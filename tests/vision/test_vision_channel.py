"""The probe command and the VisionChannel facade on the simulator source, with the real model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import pytest

from simulators.camera import InsertionSequence
from station.cli import main
from station.domain import Catalog, CatalogItem
from station.verification import Discrepancy
from vision.channel import VisionChannel
from vision.config import (
    DEFAULT_MODEL,
    CounterDetectorConfig,
    Region,
    SimulatorSourceConfig,
    VisionConfig,
)
from vision.detectors import CounterDetector
from vision.sources import SimulatorSource

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="model not committed")


def test_probe_prints_count_codes_and_annotates(tmp_path: Path, capsys) -> None:
    # Seed 3 lays the EAN-13 out legibly; at 1080p most rotated item-sized EAN-13 labels are not
    # (docs/vision.md gives the read rates): this test is about the probe, not the reader.
    seq = InsertionSequence(3, width=1920, height=1080)
    seq.insert("MUG", gtin="4006381333931")
    seq.insert("TEA")
    frame, _ = seq.frame()
    image = tmp_path / "carton.png"
    cv2.imwrite(str(image), frame)
    direct = CounterDetector(CounterDetectorConfig(type="counter")).detect(frame)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "format": "packstation-catalog/1",
                "items": [{"sku": "MUG", "name": "Mug", "barcodes": [{"code": "4006381333931"}]}],
            }
        )
    )
    out_dir = tmp_path / "annotated"
    code = main(
        ["vision", "count", str(image), "--annotate", str(out_dir), "--catalog", str(catalog)]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == (direct.count if direct.readable else None)
    assert result["not_applicable"] is (not direct.readable)
    assert result["per_sku"] == {"MUG": 1}
    assert [c["text"] for c in result["codes"]] == ["4006381333931"]
    assert Path(result["annotated"]).is_file() and len(result["annotated_sha256"]) == 64
    assert result["model"]["sha256"]


def test_channel_takes_still_frames_per_insertion_and_reports(tmp_path: Path) -> None:
    config = VisionConfig(
        source=SimulatorSourceConfig(type="simulator", seed=31, interval_s=0.02),
        privacy_masks=(Region(name="packer side", x1=0, y1=0.9, x2=1, y2=1),),
        evidence_dir=tmp_path,
    )
    source = SimulatorSource(config.source)  # type: ignore[arg-type]
    channel = VisionChannel(config, source=source)
    channel.start()
    catalog = Catalog.from_lists([CatalogItem(sku=s, name=s) for s in ("A", "B", "C")])
    expected = {"A": 1, "B": 1, "C": 1}

    async def pack() -> list[int | None]:
        seen = []
        for sku in ("A", "B"):  # C is never packed
            source.sequence.insert(sku)
            seen.append((await channel.capture_insertion(timeout_s=5)).new_items)
        return seen

    try:
        channel.begin_carton()
        assert asyncio.run(pack()) == [1, 1]
        report = channel.report(expected, catalog)
        assert report.discrepancy is Discrepancy.DEFICIT
        images = channel.evidence_images(caption="BLOCK")
        assert len(images) == 2 and images[0].masked_regions == ("packer side",)
        assert all(Path(i.path).is_file() for i in images)  # type: ignore[arg-type]
        assert channel.model_info.version.startswith("item_counter")
    finally:
        channel.stop()
