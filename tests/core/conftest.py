"""Shared fixtures for the core tests: a small catalog whose numbers match the worked example in
docs/weight-verification.md."""

from __future__ import annotations

import pytest

from station.domain import BoxType, Catalog, CatalogItem, ItemKind


def example_catalog() -> Catalog:
    return Catalog.from_lists(
        [
            CatalogItem(sku="MUG-BLUE", name="Blue Mug", unit_weight_g=412, weight_spread_g=4),
            CatalogItem(sku="EAR-8", name="Silver Earrings", unit_weight_g=8, weight_spread_g=0.5),
            CatalogItem(
                sku="TEA-250", name="Green Tea 250 g", unit_weight_g=250, weight_spread_g=3
            ),
            CatalogItem(
                sku="CHEESE",
                name="Farm Cheese",
                unit_weight_g=500,
                weight_spread_g=40,
                variable_weight=True,
            ),
            CatalogItem(sku="NOWEIGHT", name="Mystery Item"),
            CatalogItem(
                sku="NOTE",
                name="Gift Note",
                kind=ItemKind.INSERT,
                unit_weight_g=6,
                weight_spread_g=1,
            ),
            CatalogItem(
                sku="KIT-TEA",
                name="Tea and Mug Kit",
                components=({"sku": "MUG-BLUE", "quantity": 1}, {"sku": "TEA-250", "quantity": 2}),
            ),
        ],
        [BoxType(code="BOX-S", name="Small box", tare_g=180, tare_spread_g=5)],
    )


@pytest.fixture
def catalog() -> Catalog:
    return example_catalog()
