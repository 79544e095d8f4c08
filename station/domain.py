"""The station's master data and orders: catalog, box types, manifests. Pure: no I/O.

An order may ship in several cartons; a packing session verifies ONE carton against the manifest
lines assigned to it (order id + carton id). Kits are expanded into their components, lines marked
`ship_later` are not expected in this carton, and non-product lines (inserts, gift notes) count in
the expected weight but are not items the packer can be "missing" in the reissue sense.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-/]+$")]
Grams = Annotated[float, Field(ge=0, le=1_000_000)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemKind(StrEnum):
    PRODUCT = "product"
    INSERT = "insert"  # paperwork, gift note, promotional insert: weighed, never "missing stock"


class Barcode(Frozen):
    code: str = Field(min_length=1, max_length=128, description="The code as the scanner reads it.")
    units: int = Field(default=1, ge=1, le=10_000, description="Units one scan of it stands for.")
    level: str = Field(
        default="unit",
        description="Packaging level: unit, inner, case, or alternate after a packaging change.",
    )


class KitComponent(Frozen):
    sku: Sku = Field(description="Component SKU.")
    quantity: int = Field(ge=1, le=10_000, description="Units of the component per kit.")


class CatalogItem(Frozen):
    sku: Sku = Field(description="Stock keeping unit.")
    name: str = Field(min_length=1, max_length=200, description="Name shown to the packer.")
    kind: ItemKind = Field(default=ItemKind.PRODUCT, description="product or insert.")
    barcodes: tuple[Barcode, ...] = Field(default=(), description="Codes that identify this SKU.")
    unit_weight_g: Grams | None = Field(
        default=None, description="Mean weight of one unit in grams; None when unknown."
    )
    weight_spread_g: Grams = Field(
        default=0.0, description="Standard deviation of one unit's weight in grams."
    )
    variable_weight: bool = Field(
        default=False, description="Weight varies per unit (sold by weight): not weight-checked."
    )
    min_unit_weight_g: Grams | None = Field(
        default=None,
        description="For a variable-weight SKU: the lightest a unit is ever sold at (a pack's "
        "minimum), if known. The camera's put-back rule needs it to rule out such a unit going "
        "out unseen with another item.",
    )
    components: tuple[KitComponent, ...] = Field(
        default=(), description="For a kit/bundle: the components it is packed as."
    )
    serial_controlled: bool = Field(default=False, description="Each unit carries a serial number.")
    lot_controlled: bool = Field(default=False, description="Units carry a lot/batch number.")
    rfid_tagged: bool = Field(default=False, description="Units carry a UHF RFID tag.")
    vision_visible: bool = Field(default=True, description="The overhead camera can see the unit.")
    lookalike_group: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Family of look-alikes (sizes, colours of one product) a packer may put in "
        "for each other; the plan checks that some channel tells them apart.",
    )
    image_url: str | None = Field(
        default=None,
        description="Picture shown to the packer: a file (path or file: URL) the daemon serves, "
        "or an http(s) URL the kiosk loads itself.",
    )

    @model_validator(mode="after")
    def _check_min_unit_weight(self) -> CatalogItem:
        low, nominal = self.min_unit_weight_g, self.unit_weight_g
        if low is None:
            return self
        if not self.variable_weight:
            raise ValueError(
                f"min_unit_weight_g is for variable-weight SKUs; {self.sku} has a fixed weight "
                "(unit_weight_g and weight_spread_g describe it)"
            )
        if nominal is not None and low > nominal:
            raise ValueError(
                f"min_unit_weight_g {low:g} g is above the nominal unit_weight_g {nominal:g} g"
            )
        return self

    @property
    def is_kit(self) -> bool:
        return bool(self.components)

    @property
    def weighable(self) -> bool:
        return not self.variable_weight and self.unit_weight_g is not None


class BoxType(Frozen):
    code: str = Field(min_length=1, max_length=64, description="Box code the packer scans.")
    name: str = Field(min_length=1, max_length=200, description="Name shown to the packer.")
    tare_g: Grams = Field(description="Mean empty weight in grams.")
    tare_spread_g: Grams = Field(default=0.0, description="Standard deviation of the tare.")


class Catalog(Frozen):
    items: dict[str, CatalogItem] = Field(description="Items by SKU.")
    boxes: dict[str, BoxType] = Field(default_factory=dict, description="Box types by code.")

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        for key, item in self.items.items():
            if key != item.sku:
                raise ValueError(f"catalog key {key!r} does not match its sku {item.sku!r}")
            for comp in item.components:
                component = self.items.get(comp.sku)
                if component is None:
                    raise ValueError(f"kit {item.sku} names unknown component {comp.sku}")
                if component.is_kit:
                    raise ValueError(f"kit {item.sku} nests kit {comp.sku}; flatten it")
        seen: dict[str, str] = {}
        for item in self.items.values():
            for barcode in item.barcodes:
                other = seen.setdefault(barcode.code, item.sku)
                if other != item.sku:
                    raise ValueError(f"barcode {barcode.code} is on both {other} and {item.sku}")
        for key, box in self.boxes.items():
            if key != box.code:
                raise ValueError(f"box key {key!r} does not match its code {box.code!r}")
        return self

    @classmethod
    def from_lists(cls, items: list[CatalogItem], boxes: list[BoxType] = ()) -> Catalog:
        return cls(items={i.sku: i for i in items}, boxes={b.code: b for b in boxes})

    @cached_property
    def lookalike_groups(self) -> dict[str, tuple[str, ...]]:
        """Look-alike group -> its SKUs (items' `lookalike_group`)."""
        groups: dict[str, list[str]] = {}
        for item in self.items.values():
            if item.lookalike_group is not None:
                groups.setdefault(item.lookalike_group, []).append(item.sku)
        return {name: tuple(skus) for name, skus in groups.items()}

    def lookalikes(self, sku: str) -> tuple[str, ...]:
        """The other SKUs of `sku`'s look-alike group (none when it has no group)."""
        group = self.items[sku].lookalike_group
        if group is None:
            return ()
        return tuple(other for other in self.lookalike_groups[group] if other != sku)

    def barcode_index(self) -> dict[str, tuple[str, int]]:
        """code -> (sku, units per scan)."""
        return {b.code: (i.sku, b.units) for i in self.items.values() for b in i.barcodes}


class ManifestStatus(StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"


class ManifestLine(Frozen):
    line_id: str = Field(min_length=1, max_length=64, description="The WMS's id for the line.")
    sku: Sku = Field(description="SKU ordered on this line (may be a kit).")
    quantity: int = Field(ge=1, le=10_000, description="Units of the SKU in this carton.")
    ship_later: bool = Field(
        default=False, description="Back-ordered: not expected in this carton."
    )


class Manifest(Frozen):
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
    carton_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
    version: int = Field(ge=1, description="Manifest version; a newer one supersedes.")
    status: ManifestStatus = Field(default=ManifestStatus.OPEN)
    lines: tuple[ManifestLine, ...] = Field(min_length=1, max_length=1000)
    picker_id: str | None = Field(default=None, max_length=64, description="Who picked.")
    tote_id: str | None = Field(default=None, max_length=64, description="Tote the items came in.")
    wave_id: str | None = Field(default=None, max_length=64, description="Pick wave.")
    box_code: str | None = Field(
        default=None, description="Box the WMS suggests; the packer still scans or picks it."
    )

    @field_validator("lines")
    @classmethod
    def _unique_line_ids(cls, lines: tuple[ManifestLine, ...]) -> tuple[ManifestLine, ...]:
        ids = Counter(line.line_id for line in lines)
        dupes = sorted(i for i, n in ids.items() if n > 1)
        if dupes:
            raise ValueError(f"duplicate line ids: {', '.join(dupes)}")
        return lines

    @property
    def key(self) -> tuple[str, str]:
        return (self.order_id, self.carton_id)


class UnknownSku(ValueError):
    """A manifest names a SKU the catalog does not know."""


def unknown_skus(manifest: Manifest, catalog: Catalog) -> list[str]:
    return sorted({line.sku for line in manifest.lines if line.sku not in catalog.items})


def expected_units(manifest: Manifest, catalog: Catalog) -> dict[str, int]:
    """Units per SKU expected in this carton: kits expanded, ship-later lines left out."""
    units: Counter[str] = Counter()
    for line in manifest.lines:
        if line.ship_later:
            continue
        item = catalog.items.get(line.sku)
        if item is None:
            raise UnknownSku(line.sku)
        if item.is_kit:
            for comp in item.components:
                units[comp.sku] += comp.quantity * line.quantity
        else:
            units[line.sku] += line.quantity
    return dict(units)
