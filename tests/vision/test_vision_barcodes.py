"""Codes read in a rendered 1920x1080 frame: an EAN-13 and a GS1 DataMatrix with a serial."""

from __future__ import annotations

import pytest

from simulators.camera import InsertionSequence, ean13_check_digit, ean13_modules
from vision.barcodes import BarcodeReader, code_index, gtin14, sku_for
from vision.config import BarcodeConfig, Region

pytest.importorskip("zxingcpp")
pytest.importorskip("biip")

EAN = "4006381333931"
GS1 = "(01)04012345000016(21)SN0042"


@pytest.fixture(scope="module")
def frame():
    seq = InsertionSequence(3, width=1920, height=1080)
    assert seq.insert("MUG", gtin=EAN)
    assert seq.insert("TEA", gs1=GS1)
    image, truth = seq.frame()
    assert truth.count == 2
    return image


def test_ean13_and_gs1_datamatrix_are_read_and_parsed(frame) -> None:
    reader = BarcodeReader(BarcodeConfig(formats=("EAN13", "DataMatrix")))
    codes = {c.format: c for c in reader.read(frame)}
    assert set(codes) == {"EAN13", "DataMatrix"}
    ean = codes["EAN13"]
    assert ean.text == EAN and ean.gtin == gtin14(EAN) and ean.serial is None
    dm = codes["DataMatrix"]
    assert dm.symbology == "]d2"
    assert dm.gtin == "04012345000016" and dm.serial == "SN0042"
    assert dm.unit_key == "04012345000016/SN0042"
    # The catalog's EAN-13 matches the DataMatrix's GTIN-14.
    index = code_index({"4012345000016": ("TEA", 1), EAN: ("MUG", 1)})
    assert sku_for(dm, index) == ("TEA", 1)
    assert sku_for(ean, index) == ("MUG", 1)


def test_codes_inside_an_ignore_region_are_dropped(frame) -> None:
    everything = BarcodeReader(BarcodeConfig(formats=("EAN13", "DataMatrix"))).read(frame)
    ean = next(c for c in everything if c.format == "EAN13")
    x, y = ean.center[0] / 1920, ean.center[1] / 1080
    slip = Region(name="slip", x1=max(0, x - 0.02), y1=max(0, y - 0.02), x2=x + 0.02, y2=y + 0.02)
    config = BarcodeConfig(formats=("EAN13", "DataMatrix"), ignore_regions=(slip,))
    assert [c.format for c in BarcodeReader(config).read(frame)] == ["DataMatrix"]


def test_ean13_encoder_matches_the_standard() -> None:
    assert ean13_check_digit("400638133393") == "1"
    bits = ean13_modules(EAN)
    assert len(bits) == 95 and bits.startswith("101") and bits[45:50] == "01010"
    with pytest.raises(ValueError):
        ean13_modules("123")
