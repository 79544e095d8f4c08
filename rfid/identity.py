"""Which SKU a tag stands for.

Order of lookup, first match wins:
1. the site table's exact EPCs (a tag the site registered by hand, GS1 or not);
2. the site table's EPC prefixes, longest first (vendor TID ranges, private EPC blocks);
3. GS1 decoding: an SGTIN's GTIN-14 looked up in the catalog's barcodes, normalised to GTIN-14
   (so a UPC-A 12-digit barcode matches its SGTIN), with that barcode's units per scan (a case
   GTIN of 6 proves 6 units).
Anything else is an unknown tag: `EpcIdentity.sku` is None and `problem` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rfid.epc import EpcError, decode_epc, epc_hex, normalise_gtin

EpcHex = Annotated[
    str,
    Field(min_length=1, max_length=124, pattern=r"^[0-9A-Fa-f]+$", description="EPC as hex."),
]
SkuText = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-/]+$")]
Source = Literal["site_exact", "site_prefix", "gtin"]


class EpcSkuTable(BaseModel):
    """A site's own EPC -> SKU table, for tags without a GS1 encoding (or to override one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: dict[EpcHex, SkuText] = Field(
        default_factory=dict, description="Whole EPCs (hex, any case) mapped to their SKU."
    )
    prefixes: dict[EpcHex, SkuText] = Field(
        default_factory=dict,
        description="EPC hex prefixes mapped to a SKU; the longest matching prefix wins.",
    )

    @field_validator("exact", "prefixes")
    @classmethod
    def _upper(cls, table: dict[str, str]) -> dict[str, str]:
        upper = {key.upper(): sku for key, sku in table.items()}
        if len(upper) != len(table):
            raise ValueError("the same EPC appears twice (keys differ only in case)")
        return upper

    def lookup(self, epc: str) -> tuple[str, Source] | None:
        """SKU for an upper-case EPC hex, and whether an exact entry or a prefix matched."""
        sku = self.exact.get(epc)
        if sku is not None:
            return sku, "site_exact"
        best = max((p for p in self.prefixes if epc.startswith(p)), key=len, default=None)
        return None if best is None else (self.prefixes[best], "site_prefix")


@dataclass(frozen=True, slots=True)
class EpcIdentity:
    epc: str  # canonical upper-case hex
    sku: str | None
    units: int  # units of `sku` this one tag proves (case GTINs prove several)
    source: Source | None
    gtin14: str | None = None
    scheme: str | None = None
    problem: str | None = None  # why `sku` is None


class EpcSkuResolver:
    """EPC -> SKU for one station; immutable and safe to share between threads. Results cached."""

    def __init__(
        self,
        barcode_index: Mapping[str, tuple[str, int]],
        table: EpcSkuTable | None = None,
        *,
        cache_size: int = 100_000,
    ) -> None:
        self.table = table or EpcSkuTable()
        self._by_gtin: dict[str, tuple[str, int]] = {}
        for code, (sku, units) in barcode_index.items():
            gtin = normalise_gtin(code)
            if gtin is not None:
                self._by_gtin[gtin] = (sku, units)
        self._cache: dict[str, EpcIdentity] = {}
        self._cache_size = cache_size

    @classmethod
    def from_catalog(cls, catalog: object, table: EpcSkuTable | None = None) -> EpcSkuResolver:
        """From a `station.domain.Catalog` (anything with `barcode_index()`)."""
        return cls(catalog.barcode_index(), table)  # type: ignore[attr-defined]

    def resolve(self, epc: bytes | str) -> EpcIdentity:
        try:
            key = epc_hex(epc)
        except EpcError as exc:
            return EpcIdentity(str(epc), None, 0, None, problem=str(exc))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._resolve(key)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    def _resolve(self, key: str) -> EpcIdentity:
        site = self.table.lookup(key)
        if site is not None:
            return EpcIdentity(key, site[0], 1, site[1])
        try:
            decoded = decode_epc(key)
        except EpcError as exc:
            return EpcIdentity(key, None, 0, None, problem=str(exc))
        if decoded.gtin14 is None:
            return EpcIdentity(
                key,
                None,
                0,
                None,
                scheme=decoded.scheme,
                problem=f"{decoded.scheme} {decoded.sscc18} is a logistic unit, not an item",
            )
        match = self._by_gtin.get(decoded.gtin14)
        if match is None:
            return EpcIdentity(
                key,
                None,
                0,
                None,
                gtin14=decoded.gtin14,
                scheme=decoded.scheme,
                problem=f"GTIN {decoded.gtin14} is not a barcode of any catalog SKU",
            )
        return EpcIdentity(key, match[0], match[1], "gtin", decoded.gtin14, decoded.scheme)
