"""GS1 EPC Tag Data Standard: decode (and, for tests and simulators, encode) SGTIN-96, SGTIN-198
and SSCC-96 binary EPCs. Pure; no I/O, no third-party code.

`decode_epc` takes the EPC as bytes or hex (any case, spaces allowed) and returns a `DecodedEpc`
or raises `UnsupportedScheme` (a header we do not decode: a vendor TID, a private EPC, GRAI, ...)
or `InvalidEpc` (a GS1 header whose fields break the standard). Both are `EpcError`, a ValueError.

Validation is strict: partition 7 is invalid, a company prefix or reference whose value does not
fit its digit count is rejected, SGTIN-96 serials are 38-bit integers, SGTIN-198 serials are up to
20 characters of the GS1 7-bit set followed only by zero bits, and the SSCC-96's 24 unallocated
bits must be zero. SGTIN-198 is 198 bits: tag memory holds it as 13 words (52 hex digits) while
some tools print 50 digits; both are accepted and `epc_hex` is always the 52-digit word-aligned
form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["sgtin-96", "sgtin-198", "sscc-96"]

HEADER_SGTIN96 = 0x30
HEADER_SSCC96 = 0x31
HEADER_SGTIN198 = 0x36

# partition -> (company prefix bits, digits, reference bits, digits); 7 is invalid.
SGTIN_PARTITIONS: dict[int, tuple[int, int, int, int]] = {
    0: (40, 12, 4, 1),
    1: (37, 11, 7, 2),
    2: (34, 10, 10, 3),
    3: (30, 9, 14, 4),
    4: (27, 8, 17, 5),
    5: (24, 7, 20, 6),
    6: (20, 6, 24, 7),
}
SSCC_PARTITIONS: dict[int, tuple[int, int, int, int]] = {
    0: (40, 12, 18, 5),
    1: (37, 11, 21, 6),
    2: (34, 10, 24, 7),
    3: (30, 9, 28, 8),
    4: (27, 8, 31, 9),
    5: (24, 7, 34, 10),
    6: (20, 6, 38, 11),
}
FILTER_NAMES = {  # SGTIN
    0: "other",
    1: "point-of-sale item",
    2: "full case for transport",
    3: "reserved",
    4: "inner pack",
    5: "reserved",
    6: "unit load",
    7: "unit inside a trade item / component",
}
SSCC_FILTER_NAMES = {
    0: "other",
    1: "reserved",
    2: "case / shipping unit",
    3: "reserved",
    4: "reserved",
    5: "reserved",
    6: "unit load",
    7: "reserved",
}
SERIAL96_MAX = 2**38 - 1
SERIAL198_MAX_CHARS = 20
# GS1 AI encodable character set 82, the only characters an SGTIN-198 serial may hold.
GS3A3 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
# Characters of that set that a URI must escape (TDS section 6.3.2 / appendix A).
_URI_ESCAPES = {c: f"%{ord(c):02X}" for c in '"%&/<>?'}
_HEX = re.compile(r"[0-9A-Fa-f]*")
_KNOWN_HEADERS = {
    0x2C: "gdti-96",
    0x2D: "gsrn-96",
    0x2E: "gsrnp-96",
    0x32: "sgln-96",
    0x33: "grai-96",
    0x34: "giai-96",
    0x35: "gid-96",
    0x37: "grai-170",
    0x38: "giai-202",
    0x39: "sgln-195",
    0x3A: "gdti-113",
    0x3B: "adi-var",
    0x3C: "cpi-96",
    0x3D: "cpi-var",
    0x3E: "gdti-174",
    0x3F: "sgcn-96",
    0xE2: "E2: a factory-default EPC or TID-style number, not GS1",
}


class EpcError(ValueError):
    """The EPC cannot be decoded; the message names the problem."""


class UnsupportedScheme(EpcError):
    """A header this decoder does not handle (not an error in the tag: map it with a site table)."""

    def __init__(self, header: int, message: str) -> None:
        super().__init__(message)
        self.header = header


class InvalidEpc(EpcError):
    """A GS1 header whose contents break the Tag Data Standard."""


@dataclass(frozen=True, slots=True)
class DecodedEpc:
    """One decoded EPC. For SSCC-96 `item_reference` is the serial reference and `serial` is ""."""

    scheme: Scheme
    epc_hex: str  # upper-case, canonical length (24 or 52 digits)
    filter: int
    partition: int
    company_prefix: str
    item_reference: str
    serial: str
    gs1_key: str  # GTIN-14 for SGTIN, SSCC-18 for SSCC

    @property
    def filter_name(self) -> str:
        table = SSCC_FILTER_NAMES if self.scheme == "sscc-96" else FILTER_NAMES
        return table[self.filter]

    @property
    def gtin14(self) -> str | None:
        return self.gs1_key if self.scheme != "sscc-96" else None

    @property
    def sscc18(self) -> str | None:
        return self.gs1_key if self.scheme == "sscc-96" else None

    @property
    def tag_uri(self) -> str:
        return f"urn:epc:tag:{self.scheme}:{self.filter}.{self._uri_body()}"

    @property
    def pure_identity_uri(self) -> str:
        kind = "sscc" if self.scheme == "sscc-96" else "sgtin"
        return f"urn:epc:id:{kind}:{self._uri_body()}"

    def _uri_body(self) -> str:
        if self.scheme == "sscc-96":
            return f"{self.company_prefix}.{self.item_reference}"
        return f"{self.company_prefix}.{self.item_reference}.{uri_escape(self.serial)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "epc": self.epc_hex,
            "scheme": self.scheme,
            "filter": self.filter,
            "filter_name": self.filter_name,
            "partition": self.partition,
            "company_prefix": self.company_prefix,
            "item_reference": self.item_reference,
            "serial": self.serial,
            "gtin14": self.gtin14,
            "sscc18": self.sscc18,
            "tag_uri": self.tag_uri,
            "pure_identity_uri": self.pure_identity_uri,
        }


# --- helpers -----------------------------------------------------------------------------------


def gs1_check_digit(digits: str) -> int:
    """GS1 mod-10 check digit for the digits before it (weights 3,1,3,... from the right)."""
    if not digits.isdigit():
        raise ValueError(f"not digits: {digits!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def normalise_gtin(code: str) -> str | None:
    """A GTIN-8/12/13/14 (or UPC-A / EAN-13 barcode) as GTIN-14; None if it is not a valid GTIN."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (8, 12, 13, 14):
        return None
    if gs1_check_digit(code[:-1]) != int(code[-1]):
        return None
    return code.zfill(14)


def uri_escape(serial: str) -> str:
    return "".join(_URI_ESCAPES.get(c, c) for c in serial)


def epc_bytes(epc: bytes | bytearray | str) -> bytes:
    """EPC as bytes from bytes or hex text (spaces, dashes and a 0x prefix ignored)."""
    if isinstance(epc, bytes | bytearray):
        return bytes(epc)
    text = re.sub(r"[\s\-:]", "", epc)
    if text[:2].lower() == "0x":
        text = text[2:]
    if not _HEX.fullmatch(text):
        raise EpcError(f"{epc!r} is not hexadecimal")
    if len(text) % 2:
        text += "0"  # 50-digit SGTIN-198 (198 bits rounded to a nibble): pad to whole bytes
    return bytes.fromhex(text)


def epc_hex(epc: bytes | bytearray | str) -> str:
    """Canonical upper-case hex for any EPC (decodable or not)."""
    return epc_bytes(epc).hex().upper()


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.total = len(data) * 8
        self.pos = 0

    def take(self, count: int) -> int:
        shift = self.total - self.pos - count
        self.pos += count
        return (self.value >> shift) & ((1 << count) - 1)

    def rest_is_zero(self) -> bool:
        return self.value & ((1 << (self.total - self.pos)) - 1) == 0


# --- decoding ----------------------------------------------------------------------------------


def decode_epc(epc: bytes | bytearray | str) -> DecodedEpc:
    """Decode an SGTIN-96, SGTIN-198 or SSCC-96 EPC; raises EpcError naming the problem."""
    data = epc_bytes(epc)
    if not data:
        raise InvalidEpc("empty EPC")
    header = data[0]
    if header == HEADER_SGTIN96:
        return _decode_sgtin(_exact_length(data, 12, "SGTIN-96"), "sgtin-96")
    if header == HEADER_SGTIN198:
        return _decode_sgtin(_sgtin198_length(data), "sgtin-198")
    if header == HEADER_SSCC96:
        return _decode_sscc(_exact_length(data, 12, "SSCC-96"))
    known = _KNOWN_HEADERS.get(header)
    what = f"{known}, not decoded here" if known else "not a GS1 scheme we decode"
    raise UnsupportedScheme(
        header,
        f"header 0x{header:02X} ({what}); map it to a SKU with the site EPC table",
    )


def _exact_length(data: bytes, length: int, name: str) -> bytes:
    if len(data) != length:
        raise InvalidEpc(f"{name} EPC must be {length * 2} hex digits, got {len(data) * 2}")
    return data


def _sgtin198_length(data: bytes) -> bytes:
    # 198 bits: 25 bytes (50 digits, as some tools print it) or 26 (13 tag-memory words).
    if len(data) == 25:
        data += b"\x00"
    if len(data) != 26:
        raise InvalidEpc(f"SGTIN-198 EPC must be 50 or 52 hex digits, got {len(data) * 2}")
    return data


def _fields(
    bits: _Bits, table: dict[int, tuple[int, int, int, int]], name: str
) -> tuple[int, int, str, str]:
    filter_value = bits.take(3)
    partition = bits.take(3)
    if partition not in table:
        raise InvalidEpc(f"{name}: partition {partition} is invalid (0-6 only)")
    prefix_bits, prefix_digits, ref_bits, ref_digits = table[partition]
    prefix, reference = bits.take(prefix_bits), bits.take(ref_bits)
    if prefix >= 10**prefix_digits:
        raise InvalidEpc(
            f"{name}: company prefix {prefix} does not fit {prefix_digits} digits "
            f"(partition {partition})"
        )
    if reference >= 10**ref_digits:
        raise InvalidEpc(
            f"{name}: reference {reference} does not fit {ref_digits} digits "
            f"(partition {partition})"
        )
    return filter_value, partition, f"{prefix:0{prefix_digits}d}", f"{reference:0{ref_digits}d}"


def _decode_sgtin(data: bytes, scheme: Scheme) -> DecodedEpc:
    name = scheme.upper()
    bits = _Bits(data)
    bits.take(8)
    filter_value, partition, prefix, item_ref = _fields(bits, SGTIN_PARTITIONS, name)
    serial = str(bits.take(38)) if scheme == "sgtin-96" else _serial_198(bits)
    body = item_ref[0] + prefix + item_ref[1:]
    return DecodedEpc(
        scheme=scheme,
        epc_hex=data.hex().upper(),
        filter=filter_value,
        partition=partition,
        company_prefix=prefix,
        item_reference=item_ref,
        serial=serial,
        gs1_key=body + str(gs1_check_digit(body)),
    )


def _serial_198(bits: _Bits) -> str:
    chars = []
    for _ in range(SERIAL198_MAX_CHARS):
        code = bits.take(7)
        if code == 0:
            break
        char = chr(code)
        if char not in GS3A3:
            raise InvalidEpc(f"SGTIN-198: serial character 0x{code:02X} is not in the GS1 set")
        chars.append(char)
    if not chars:
        raise InvalidEpc("SGTIN-198: empty serial")
    if not bits.rest_is_zero():
        raise InvalidEpc("SGTIN-198: bits after the serial's end must be zero")
    return "".join(chars)


def _decode_sscc(data: bytes) -> DecodedEpc:
    bits = _Bits(data)
    bits.take(8)
    filter_value, partition, prefix, serial_ref = _fields(bits, SSCC_PARTITIONS, "SSCC-96")
    if not bits.rest_is_zero():
        raise InvalidEpc("SSCC-96: the 24 unallocated bits must be zero")
    body = serial_ref[0] + prefix + serial_ref[1:]
    return DecodedEpc(
        scheme="sscc-96",
        epc_hex=data.hex().upper(),
        filter=filter_value,
        partition=partition,
        company_prefix=prefix,
        item_reference=serial_ref,
        serial="",
        gs1_key=body + str(gs1_check_digit(body)),
    )


# --- encoding (tests, simulators, site tooling) ------------------------------------------------


def _partition_for(prefix: str, table: dict[int, tuple[int, int, int, int]]) -> int:
    for partition, (_, digits, _, _) in table.items():
        if digits == len(prefix):
            return partition
    raise ValueError(f"company prefix must have 6-12 digits, got {prefix!r}")


def _head(header: int, filter_value: int, prefix: str, reference: str, table: dict) -> int:
    if not 0 <= filter_value <= 7:
        raise ValueError("filter must be 0-7")
    if not (prefix.isdigit() and reference.isdigit()):
        raise ValueError("company prefix and reference must be digits")
    partition = _partition_for(prefix, table)
    prefix_bits, _, ref_bits, ref_digits = table[partition]
    if len(reference) != ref_digits:
        raise ValueError(
            f"reference must have {ref_digits} digits with a {len(prefix)}-digit prefix"
        )
    value = header
    for field, width in ((filter_value, 3), (partition, 3)):
        value = value << width | field
    value = value << prefix_bits | int(prefix)
    return value << ref_bits | int(reference)


def encode_sgtin96(
    filter_value: int, company_prefix: str, item_reference: str, serial: int
) -> bytes:
    if not 0 <= serial <= SERIAL96_MAX:
        raise ValueError("SGTIN-96 serial must fit 38 bits")
    head = _head(HEADER_SGTIN96, filter_value, company_prefix, item_reference, SGTIN_PARTITIONS)
    return (head << 38 | serial).to_bytes(12, "big")


def encode_sgtin198(
    filter_value: int, company_prefix: str, item_reference: str, serial: str
) -> bytes:
    """SGTIN-198 as 26 bytes (13 tag-memory words)."""
    if not 1 <= len(serial) <= SERIAL198_MAX_CHARS or any(c not in GS3A3 for c in serial):
        raise ValueError("SGTIN-198 serial: 1-20 characters of the GS1 set")
    head = _head(HEADER_SGTIN198, filter_value, company_prefix, item_reference, SGTIN_PARTITIONS)
    value = head
    for char in serial.ljust(SERIAL198_MAX_CHARS, "\0"):
        value = value << 7 | ord(char)
    return (value << 10).to_bytes(26, "big")  # 198 bits + 10 padding bits = 13 words


def encode_sscc96(filter_value: int, company_prefix: str, serial_reference: str) -> bytes:
    head = _head(HEADER_SSCC96, filter_value, company_prefix, serial_reference, SSCC_PARTITIONS)
    return (head << 24).to_bytes(12, "big")
