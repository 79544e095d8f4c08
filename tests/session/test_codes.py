from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    CodeClassifier,
    CodePatternsConfig,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    RemoveUnitCode,
    ShippingLabelCode,
    UnknownCode,
    gtin14,
    has_valid_check_digit,
    parse_gs1,
)

from .conftest import CASE_OF_SIX_TEA, EAN13_MUG, SSCC, UPCA_TEA, make_catalog

GS = "\x1d"


@pytest.fixture
def classify():
    return CodeClassifier(CodePatternsConfig(), make_catalog()).classify


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BADGE-P42", BadgeCode("P42")),
        ("ORD-A-100/2", OrderCartonCode("A-100", "2")),
        ("ORD-A-100", OrderCartonCode("A-100", "1")),
        ("CLOSE", CloseCode()),
        ("LOGOUT", LogoutCode()),
        ("REMOVE", RemoveUnitCode()),
        ("BOX-S", BoxCode("BOX-S")),
        ("BOX-XL", UnknownCode("BOX-XL")),
        ("SP1", ItemCode("SPOON-1", 1)),
        (EAN13_MUG, ItemCode("MUG-1", 1)),
        ("0" + EAN13_MUG, ItemCode("MUG-1", 1)),  # GTIN-14 of an EAN-13 catalog code
        (UPCA_TEA, ItemCode("TEA-1", 1)),
        ("0" + UPCA_TEA, ItemCode("TEA-1", 1)),  # EAN-13 form of a UPC-A catalog code
        (CASE_OF_SIX_TEA, ItemCode("TEA-1", 6)),
        ("1Z999AA10123456784", ShippingLabelCode("1Z999AA10123456784")),
        ("4006381333948", UnknownCode("4006381333948")),  # a GTIN the catalog does not know
        ("CLOSE\r\n", CloseCode()),
        ("", UnknownCode("")),
    ],
)
def test_classifies_station_and_catalog_codes(classify, raw, expected):
    assert classify(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        f"]C101{CASE_OF_SIX_TEA}10LOT7{GS}17261231",
        f"]d201{CASE_OF_SIX_TEA}17261231{GS}21SERIAL",
        f"]Q301{CASE_OF_SIX_TEA}",
        f"]e001{CASE_OF_SIX_TEA}",
        f"{GS}01{CASE_OF_SIX_TEA}10LOT7",  # FNC1 sent literally, no identifier
        f"01{CASE_OF_SIX_TEA}1726123110LOT7",  # separator lost: fixed-length AIs still split
        f"01{CASE_OF_SIX_TEA}10LOT717261231",  # lost after a variable AI: GTIN still leads
    ],
)
def test_gs1_element_strings_find_the_gtin(classify, raw):
    code = classify(raw)
    assert isinstance(code, ItemCode) and (code.sku, code.units) == ("TEA-1", 6)


def test_gs1_serial_is_kept_so_a_second_scan_of_one_unit_is_recognised(classify):
    assert classify(f"]d201{CASE_OF_SIX_TEA}21SN-0042{GS}17261231") == ItemCode(
        "TEA-1", 6, serial="SN-0042"
    )
    assert classify(f"]d201{CASE_OF_SIX_TEA}17261231").serial is None


def test_gs1_with_an_ean13_catalog_code(classify):
    assert classify(f"]d201{'0' + EAN13_MUG}") == ItemCode("MUG-1", 1)


def test_substituted_group_separator_is_repaired():
    patterns = CodePatternsConfig(group_separator_substitutes=("~",))
    classify = CodeClassifier(patterns, make_catalog()).classify
    assert classify(f"]C110LOT7~01{CASE_OF_SIX_TEA}") == ItemCode("TEA-1", 6)
    # without the substitute the lot swallows the rest of the string
    assert isinstance(
        CodeClassifier(CodePatternsConfig(), make_catalog()).classify(
            f"]C110LOT7~01{CASE_OF_SIX_TEA}"
        ),
        UnknownCode,
    )


def test_sscc_is_a_shipping_label_unless_disabled(classify):
    assert classify(f"]C100{SSCC}") == ShippingLabelCode(SSCC)
    assert classify(f"00{SSCC}") == ShippingLabelCode(SSCC)
    no_sscc = CodeClassifier(CodePatternsConfig(sscc_is_shipping_label=False), make_catalog())
    assert no_sscc.classify(f"]C100{SSCC}") == UnknownCode(f"]C100{SSCC}")


def test_a_bad_check_digit_is_not_trusted(classify):
    wrong = CASE_OF_SIX_TEA[:-1] + "0"
    assert isinstance(classify(f"]d201{wrong}"), UnknownCode)
    assert isinstance(classify(f"]C100{SSCC[:-1]}0"), UnknownCode)


def test_overlong_scans_are_unknown(classify):
    raw = "BADGE-" + "A" * 600
    assert classify(raw) == UnknownCode(raw)


def test_parse_gs1_stops_at_an_unknown_ai():
    assert parse_gs1(f"01{CASE_OF_SIX_TEA}99ABC") == {"01": CASE_OF_SIX_TEA, "99": "ABC"}
    assert parse_gs1(f"01{CASE_OF_SIX_TEA}4XYZ") == {"01": CASE_OF_SIX_TEA}
    assert parse_gs1("0112") == {}


def test_gtin_helpers():
    assert gtin14(UPCA_TEA) == "00" + UPCA_TEA
    assert gtin14("12345") is None
    assert gtin14("١٢٣٤٥٦٧٨") is None  # non-ASCII digits are not a GTIN
    assert has_valid_check_digit(EAN13_MUG)
    assert not has_valid_check_digit("4006381333932")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("badge", "^BADGE-(?P<id>.+)$", "badge"),
        ("order_carton", "^ORD-(.+)$", "order"),
        ("close", "^(CLOSE$", "regular expression"),
        ("group_separator_substitutes", ("~~",), "one character"),
        ("surprise", "x", "Extra inputs"),
    ],
)
def test_patterns_are_validated_at_load(field, value, message):
    with pytest.raises(ValidationError, match=message):
        CodePatternsConfig(**{field: value})


def test_close_and_logout_must_differ():
    with pytest.raises(ValidationError, match="must differ"):
        CodePatternsConfig(close="^X$", logout="^X$")


def test_every_field_is_described():
    assert all(f.description for f in CodePatternsConfig.model_fields.values())


@given(st.text(max_size=600))
def test_arbitrary_strings_never_raise(raw):
    classifier = CodeClassifier(
        CodePatternsConfig(group_separator_substitutes=("~",)), make_catalog()
    )
    classifier.classify(raw)


@given(st.text(alphabet="0123456789\x1d]Cd12", max_size=80))
def test_gs1_like_strings_never_raise(raw):
    CodeClassifier(CodePatternsConfig(), make_catalog()).classify(raw)
