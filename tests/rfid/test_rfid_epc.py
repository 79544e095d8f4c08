"""EPC decoding pinned by the GS1 vectors and cross-checked against epcpy (test-only, MIT)."""

from __future__ import annotations

import contextlib

import epcpy  # a declared test dependency: its absence must fail, not skip the GS1 vectors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.epc import (
    GS3A3,
    SGTIN_PARTITIONS,
    SSCC_PARTITIONS,
    EpcError,
    InvalidEpc,
    UnsupportedScheme,
    decode_epc,
    encode_sgtin96,
    encode_sgtin198,
    encode_sscc96,
    gs1_check_digit,
    normalise_gtin,
)

# hex -> (tag URI, GTIN-14 or SSCC-18), all from the reference file.
VECTORS = {
    "3074257BF7194E4000001A85": ("urn:epc:tag:sgtin-96:3.0614141.812345.6789", "80614141123458"),
    "3034257BF7194E4000001A85": ("urn:epc:tag:sgtin-96:1.0614141.812345.6789", "80614141123458"),
    "30C579D5D4ADB60000000000": ("urn:epc:tag:sgtin-96:6.50712192365.88.0", "85071219236581"),
    "3010f42400186a0003149957": (
        "urn:epc:tag:sgtin-96:0.32000000.25000.51681623",
        "23200000050000",
    ),
    "30012a05f200004000000001": ("urn:epc:tag:sgtin-96:0.320000000000.1.1", "13200000000008"),
    "301800004000004000000001": ("urn:epc:tag:sgtin-96:0.000001.0000001.1", "00000010000014"),
    "3674257BF6B7A659B2C2BF1000000000000000000000000000": (
        "urn:epc:tag:sgtin-198:3.0614141.712345.32a%2Fb",
        "70614141123451",
    ),
    "3114257BF4499602D2000000": (
        "urn:epc:tag:sscc-96:0.0614141.1234567890",
        "106141412345678908",
    ),
}


@pytest.mark.parametrize(("hex_epc", "expected"), VECTORS.items())
def test_gs1_vectors(hex_epc, expected):
    tag_uri, key = expected
    decoded = decode_epc(hex_epc)
    assert decoded.tag_uri == tag_uri
    assert decoded.gs1_key == key
    other = epcpy.hex_to_tag_encodable(hex_epc)
    assert decoded.pure_identity_uri == other.epc_uri
    assert decoded.gs1_key == other.gs1_key()


def test_standard_example_fields():
    decoded = decode_epc("3074257BF7194E4000001A85")
    assert decoded.pure_identity_uri == "urn:epc:id:sgtin:0614141.812345.6789"
    assert (decoded.scheme, decoded.filter, decoded.partition) == ("sgtin-96", 3, 5)
    assert (decoded.company_prefix, decoded.item_reference, decoded.serial) == (
        "0614141",
        "812345",
        "6789",
    )
    assert decoded.gtin14 == "80614141123458" and decoded.sscc18 is None
    assert decoded.filter_name == "reserved"  # the standard's example uses filter 3


def test_sgtin198_fields_and_both_lengths():
    fifty = "3674257BF6B7A659B2C2BF1000000000000000000000000000"
    assert len(fifty) == 50
    a, b = decode_epc(fifty), decode_epc(fifty + "00")
    assert a == b
    assert (a.filter, a.company_prefix, a.item_reference, a.serial) == (
        3,
        "0614141",
        "712345",
        "32a/b",
    )
    assert len(a.epc_hex) == 52
    assert encode_sgtin198(3, "0614141", "712345", "32a/b") == bytes.fromhex(fifty + "00")


def test_sscc_fields():
    decoded = decode_epc("3114257BF4499602D2000000")
    assert decoded.sscc18 == "106141412345678908" and decoded.gtin14 is None
    assert decoded.pure_identity_uri == "urn:epc:id:sscc:0614141.1234567890"


@pytest.mark.parametrize(
    ("hex_epc", "error", "message"),
    [
        ("E28068940000400A9D22A9EB", UnsupportedScheme, "header 0xE2"),
        ("3374257BF7194E4000001A85", UnsupportedScheme, "grai-96"),
        ("0000", UnsupportedScheme, "header 0x00"),
        ("", InvalidEpc, "empty"),
        ("30zz", EpcError, "not hexadecimal"),
        ("3074257BF7194E4000001A", InvalidEpc, "24 hex digits"),
        ("3074257BF7194E4000001A8500", InvalidEpc, "24 hex digits"),
        ("367425", InvalidEpc, "50 or 52"),
        # partition 7
        ("303C257BF7194E4000001A85", InvalidEpc, "partition 7"),
        # partition 0 prefix 2^40-1 > 12 digits? no: 10^12 > 2^40, so use item ref 15 > 1 digit
        ("30000000000003C000000001", InvalidEpc, "does not fit 1 digits"),
        # SSCC with non-zero unallocated bits
        ("3114257BF4499602D2000001", InvalidEpc, "unallocated"),
        # SGTIN-198 with a character outside the GS1 set (0x01) and junk after the serial
        ("3674257BF6B7A6" + "02" + "0" * 36, InvalidEpc, "not in the GS1 set"),
        ("3674257BF6B7A659B2C2BF10000000000000000000000000" + "0100", InvalidEpc, "must be zero"),
        ("3674257BF6B7A600000000000000000000000000000000000000", InvalidEpc, "empty serial"),
    ],
)
def test_invalid_or_unsupported(hex_epc, error, message):
    with pytest.raises(error, match=message):
        decode_epc(hex_epc)


def test_prefix_that_does_not_fit_its_digits_is_rejected():
    # partition 6: 20-bit prefix, 6 digits; 2^20-1 = 1048575 has 7 digits.
    value = (0x30 << 3 | 0) << 3 | 6
    value = (value << 20 | (2**20 - 1)) << 24
    epc = ((value << 38) | 1).to_bytes(12, "big")
    with pytest.raises(InvalidEpc, match="company prefix 1048575 does not fit 6 digits"):
        decode_epc(epc)


def test_check_digit_and_gtin_normalisation():
    assert gs1_check_digit("8061414112345") == 8
    assert normalise_gtin("036000291452") == "00036000291452"  # UPC-A
    assert normalise_gtin("036000291453") is None  # wrong check digit
    assert normalise_gtin("ABC") is None


# --- hypothesis round trips against epcpy ------------------------------------------------------


@st.composite
def sgtin_fields(draw, table=SGTIN_PARTITIONS):
    partition = draw(st.sampled_from(sorted(table)))
    _, prefix_digits, _, ref_digits = table[partition]
    prefix = draw(st.integers(0, 10**prefix_digits - 1))
    reference = draw(st.integers(0, 10**ref_digits - 1))
    return (
        draw(st.integers(0, 7)),
        f"{prefix:0{prefix_digits}d}",
        f"{reference:0{ref_digits}d}",
    )


@settings(max_examples=300, deadline=None)
@given(fields=sgtin_fields(), serial=st.integers(0, 2**38 - 1))
def test_sgtin96_round_trip_matches_epcpy(fields, serial):
    filter_value, prefix, reference = fields
    epc = encode_sgtin96(filter_value, prefix, reference, serial)
    ours = decode_epc(epc.hex())
    theirs = epcpy.hex_to_tag_encodable(epc.hex().upper())
    assert (ours.filter, ours.company_prefix, ours.item_reference, ours.serial) == (
        filter_value,
        prefix,
        reference,
        str(serial),
    )
    assert ours.pure_identity_uri == theirs.epc_uri
    assert ours.gtin14 == theirs.gtin()
    assert ours.tag_uri == theirs.tag_uri(
        theirs.BinaryCodingScheme.SGTIN_96,
        epcpy.epc_schemes.sgtin.SGTINFilterValue(str(filter_value)),
    )


@settings(max_examples=300, deadline=None)
@given(
    fields=sgtin_fields(),
    serial=st.text(st.sampled_from(sorted(GS3A3)), min_size=1, max_size=20),
)
def test_sgtin198_round_trip_matches_epcpy(fields, serial):
    filter_value, prefix, reference = fields
    epc = encode_sgtin198(filter_value, prefix, reference, serial)
    ours = decode_epc(epc)
    assert decode_epc(epc.hex()[:50]) == ours  # the 50-digit form decodes the same
    assert ours.serial == serial
    try:
        theirs = epcpy.hex_to_tag_encodable(epc.hex().upper()[:50])
    except (epcpy.ConvertException, ValueError):
        # epcpy 0.1.8 rejects its own output for some serials with URI-escaped characters
        # ("<0", "0&<0"); only those may fail, and our escaping is pinned by the GS1 vector.
        assert any(c in '"%&/<>?' for c in serial)
        return
    assert ours.pure_identity_uri == theirs.epc_uri
    assert ours.gtin14 == theirs.gtin()


@settings(max_examples=300, deadline=None)
@given(fields=sgtin_fields(SSCC_PARTITIONS))
def test_sscc96_round_trip_matches_epcpy(fields):
    filter_value, prefix, reference = fields
    epc = encode_sscc96(filter_value, prefix, reference)
    ours = decode_epc(epc)
    theirs = epcpy.hex_to_tag_encodable(epc.hex().upper())
    assert ours.pure_identity_uri == theirs.epc_uri
    assert ours.sscc18 == theirs.gs1_key()


@settings(max_examples=500, deadline=None)
@given(data=st.binary(min_size=0, max_size=40))
def test_any_bytes_decode_or_raise_epc_error(data):
    with contextlib.suppress(EpcError):
        decode_epc(data)
