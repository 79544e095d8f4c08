from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from station.catalog_file import CatalogFileError, load_catalog
from station.domain import ItemKind

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "catalog.example.json"


def test_the_example_catalog_loads_with_everything_the_docs_promise() -> None:
    catalog = load_catalog(EXAMPLE)
    assert len(catalog.items) >= 12 and len(catalog.boxes) == 3
    assert catalog.items["KIT-TEA-GIFT"].is_kit
    assert catalog.items["CHEESE-FARM"].variable_weight
    assert catalog.items["NOTE-GIFT"].kind is ItemKind.INSERT
    assert catalog.barcode_index()["14012345000013"] == ("TEA-GREEN-250", 6)


def write(tmp_path: Path, document) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


EXAMPLE_ITEMS = len(json.loads(EXAMPLE.read_text())["items"])  # an appended item's index


def broken(mutate) -> dict:
    document = json.loads(EXAMPLE.read_text())
    mutate(document)
    return document


def _dup_sku(d):
    d["items"].append(copy.deepcopy(d["items"][0]) | {"barcodes": []})


def _dup_barcode(d):
    d["items"][1]["barcodes"].append({"code": "4006381333931"})


@pytest.mark.parametrize(
    ("mutate", "json_path", "words"),
    [
        (
            lambda d: d["items"][2].update(unit_weight_g=-8),
            "$.items[2].unit_weight_g (SKU EAR-SILVER)",
            "greater than or equal to 0 (found -8)",
        ),
        (
            lambda d: d["items"][0].update(colour="blue"),
            "$.items[0].colour (SKU MUG-BLUE)",
            "Extra inputs",
        ),
        (lambda d: d["boxes"][1].pop("tare_g"), "$.boxes[1].tare_g", "Field required"),
        (lambda d: d.update(format="catalog/2"), "$.format", "packstation-catalog/1"),
        (_dup_sku, f"$.items[{EXAMPLE_ITEMS}]", "SKU MUG-BLUE is already defined at $.items[0]"),
        (
            lambda d: d["items"][10]["components"][0].update(sku="MUG-GREEN"),
            "$",
            "kit KIT-TEA-GIFT names unknown component MUG-GREEN",
        ),
        (_dup_barcode, "$", "barcode 4006381333931 is on both MUG-BLUE and TEA-GREEN-250"),
        (
            lambda d: d["items"][0].update(min_unit_weight_g=300),
            "$.items[0] (SKU MUG-BLUE)",
            "min_unit_weight_g is for variable-weight SKUs; MUG-BLUE has a fixed weight",
        ),
        (
            lambda d: d["items"][9].update(min_unit_weight_g=600),
            "$.items[9] (SKU CHEESE-FARM)",
            "min_unit_weight_g 600 g is above the nominal unit_weight_g 500 g",
        ),
    ],
)
def test_errors_name_the_file_and_the_json_path(tmp_path, mutate, json_path, words) -> None:
    path = write(tmp_path, broken(mutate))
    with pytest.raises(CatalogFileError) as caught:
        load_catalog(path)
    assert caught.value.json_path == json_path
    assert words in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {json_path}: ")


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{"format": "packstation-catalog/1",\n  "items": [,]}')
    with pytest.raises(
        CatalogFileError, match=r"catalog.json: \$: is not valid JSON at line 2 column 13"
    ):
        load_catalog(path)


def test_a_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogFileError, match="cannot be read"):
        load_catalog(tmp_path / "nowhere.json")
