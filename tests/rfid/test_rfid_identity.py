from __future__ import annotations

import pytest
from pydantic import ValidationError

from rfid.epc import encode_sgtin96, encode_sscc96
from rfid.identity import EpcSkuResolver, EpcSkuTable

SHIRT = encode_sgtin96(1, "0614141", "812345", 7).hex()  # GTIN 80614141123458
CASE = encode_sgtin96(2, "0614141", "012345", 1).hex()  # GTIN 00614141123452


def resolver(table: EpcSkuTable | None = None) -> EpcSkuResolver:
    index = {
        "80614141123458": ("SHIRT-M", 1),
        "614141123452": ("SOCKS", 6),  # UPC-A on the case: 6 units per scan
        "not-a-gtin": ("OTHER", 1),
    }
    return EpcSkuResolver(index, table)


def test_sgtin_maps_through_catalog_barcodes_normalised_to_gtin14():
    shirt = resolver().resolve(SHIRT)
    assert (shirt.sku, shirt.units, shirt.source, shirt.gtin14) == (
        "SHIRT-M",
        1,
        "gtin",
        "80614141123458",
    )
    case = resolver().resolve(bytes.fromhex(CASE))
    assert (case.sku, case.units) == ("SOCKS", 6)


def test_site_table_exact_then_longest_prefix_then_gs1():
    table = EpcSkuTable(
        exact={"e28068940000400a9d22a9eb": "LABEL-1", SHIRT: "OVERRIDE"},
        prefixes={"E280": "ANY-IMPINJ", "E2806894": "MONZA-R6"},
    )
    r = resolver(table)
    assert r.resolve("E28068940000400A9D22A9EB").sku == "LABEL-1"
    assert r.resolve("E28068940000400A9D22AAAA").sku == "MONZA-R6"
    assert r.resolve("E28011110000400A9D22AAAA").source == "site_prefix"
    assert r.resolve(SHIRT).sku == "OVERRIDE"


def test_unknown_tags_say_why():
    r = resolver()
    assert "header 0xE2" in (r.resolve("E28068940000400A9D22A9EB").problem or "")
    other = r.resolve(encode_sgtin96(1, "0614141", "812399", 7))
    assert other.sku is None and "not a barcode" in (other.problem or "")
    sscc = r.resolve(encode_sscc96(0, "0614141", "1234567890"))
    assert "logistic unit" in (sscc.problem or "")
    assert "not hexadecimal" in (r.resolve("xyz").problem or "")


def test_table_rejects_bad_keys_and_extras():
    with pytest.raises(ValidationError):
        EpcSkuTable(exact={"XYZ": "A"})
    with pytest.raises(ValidationError):
        EpcSkuTable(exact={"AB": "A", "ab": "B"})
    with pytest.raises(ValidationError):
        EpcSkuTable.model_validate({"exacts": {}})
