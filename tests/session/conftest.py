"""Shared master data for the session and scanner tests."""

from __future__ import annotations

import pytest

from station.domain import Barcode, BoxType, Catalog, CatalogItem, KitComponent

EAN13_MUG = "4006381333931"
UPCA_TEA = "036000291452"
CASE_OF_SIX_TEA = "10036000291459"  # GTIN-14 of a case holding six teas
SSCC = "123456789012345675"


def make_catalog() -> Catalog:
    return Catalog.from_lists(
        [
            CatalogItem(
                sku="MUG-1",
                name="Blue mug",
                unit_weight_g=350,
                barcodes=(Barcode(code=EAN13_MUG),),
            ),
            CatalogItem(
                sku="TEA-1",
                name="Green tea",
                unit_weight_g=120,
                barcodes=(
                    Barcode(code=UPCA_TEA),
                    Barcode(code=CASE_OF_SIX_TEA, units=6, level="case"),
                ),
            ),
            CatalogItem(
                sku="SPOON-1", name="Spoon", unit_weight_g=20, barcodes=(Barcode(code="SP1"),)
            ),
            CatalogItem(
                sku="CHEESE-1",
                name="Cheddar by weight",
                unit_weight_g=400,
                variable_weight=True,
                min_unit_weight_g=250,
                barcodes=(Barcode(code="CH1"),),
            ),
            CatalogItem(
                sku="GIFT-SET-1",
                name="Mug and tea gift set",
                components=(
                    KitComponent(sku="MUG-1", quantity=1),
                    KitComponent(sku="TEA-1", quantity=1),
                ),
                barcodes=(Barcode(code="GS1"),),
            ),
        ],
        [
            BoxType(code="BOX-S", name="Small box", tare_g=150),
            BoxType(code="BOX-M", name="Medium box", tare_g=250),
        ],
    )


@pytest.fixture
def catalog() -> Catalog:
    return make_catalog()
