"""What a scanned string means at the packing table. Pure: no I/O, never raises on input.

A scan is one of: a packer badge, an order/carton label, a box code from the catalog, the close
code, a carrier shipping label, an item barcode, the logout code, the weigh-one-unit code, the
remove-unit code, or something unknown. Station codes (badge, order, close, logout, weigh-unit,
remove-unit, tracking labels) are
regexes in `CodePatternsConfig`; boxes and
items come from the catalog.

GS1 symbols arrive in several shapes depending on the scanner: with an AIM symbology identifier
(`]C1` GS1-128, `]d2` GS1 DataMatrix, `]Q3` GS1 QR, `]e0` GS1 DataBar), with the FNC1 group
separator as `\\x1d`, as some other character a keyboard wedge substituted, or with the separator
dropped altogether. Element strings are split on the separator and, inside each chunk, on the
predefined fixed lengths of the AIs we know, so the GTIN (01) and SSCC (00) that lead almost every
label survive a lost separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from station.domain import Catalog

GROUP_SEPARATOR = "\x1d"
# AIM identifiers `]` + symbology flag + modifier; these four announce GS1 element strings.
_SYMBOLOGY_ID = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_GS1_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0"})
# Data lengths of the fixed-length AIs (GS1 General Specifications, predefined-length table);
# variable-length AIs take the rest of their chunk.
_FIXED_AI_LENGTHS = {
    "00": 18,  # SSCC
    "01": 14,  # GTIN
    "02": 14,  # GTIN of contained items
    "11": 6,  # production date
    "12": 6,  # due date
    "13": 6,  # packaging date
    "15": 6,  # best before
    "16": 6,  # sell by
    "17": 6,  # expiry
    "20": 2,  # variant
}
_VARIABLE_AIS = frozenset({"10", "21", "22", "30", "37", *(str(n) for n in range(90, 100))})
_GTIN_LENGTHS = frozenset({8, 12, 13, 14})


@dataclass(frozen=True, slots=True)
class BadgeCode:
    badge_id: str


@dataclass(frozen=True, slots=True)
class OrderCartonCode:
    order_id: str
    carton_id: str


@dataclass(frozen=True, slots=True)
class BoxCode:
    box_code: str


@dataclass(frozen=True, slots=True)
class CloseCode:
    pass


@dataclass(frozen=True, slots=True)
class ShippingLabelCode:
    value: str


@dataclass(frozen=True, slots=True)
class ItemCode:
    sku: str
    units: int
    # The unit's serial number, AI (21), when a GS1 symbol carries one: two scans of the same
    # serial are one unit scanned twice, not two units.
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class LogoutCode:
    pass


@dataclass(frozen=True, slots=True)
class WeighUnitCode:
    """Enter (or leave) the weigh-one-unit mode that captures master data."""


@dataclass(frozen=True, slots=True)
class RemoveUnitCode:
    """The next item scanned is taken out of the carton: its earlier scan is taken back."""


@dataclass(frozen=True, slots=True)
class UnknownCode:
    raw: str


ScannedCode = (
    BadgeCode
    | OrderCartonCode
    | BoxCode
    | CloseCode
    | ShippingLabelCode
    | ItemCode
    | LogoutCode
    | WeighUnitCode
    | RemoveUnitCode
    | UnknownCode
)


def _compile(pattern: str, required_groups: frozenset[str]) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    missing = required_groups - set(compiled.groupindex)
    if missing:
        raise ValueError(f"the pattern needs the named group(s) {', '.join(sorted(missing))}")
    return compiled


class CodePatternsConfig(BaseModel):
    """How the station recognises its own codes among everything a scanner can read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    badge: str = Field(
        default=r"^BADGE-(?P<badge>[A-Z0-9]+)$",
        description="Regex for a packer badge; the named group `badge` is the badge id.",
    )
    order_carton: str = Field(
        default=r"^ORD-(?P<order>[A-Za-z0-9\-]+)(?:/(?P<carton>[A-Za-z0-9\-]+))?$",
        description=(
            "Regex for an order/carton label; group `order` is required, group `carton` optional."
        ),
    )
    default_carton_id: str = Field(
        default="1",
        min_length=1,
        max_length=64,
        description="Carton id used when the order label carries none.",
    )
    close: str = Field(default=r"^CLOSE$", description="Regex for the close-carton code.")
    logout: str = Field(default=r"^LOGOUT$", description="Regex for the logout code.")
    weigh_unit: str = Field(
        default=r"^WEIGH-UNIT$",
        description="Regex for the code that enters and leaves the weigh-one-unit mode "
        "(master data capture, only while no carton is open).",
    )
    remove_unit: str = Field(
        default=r"^REMOVE$",
        description="Regex for the code the packer scans before the barcode of a unit they "
        "take out of the carton again (a wrong item scanned in): that unit's scan is taken back.",
    )
    shipping_label: str = Field(
        default=r"^(?:1Z[0-9A-Z]{16}|JJD[0-9]{16,20})$",
        description=(
            "Regex for a carrier tracking number that counts as a shipping label. Checked after "
            "item barcodes; keep it from matching bare GTINs, or an unknown product would close "
            "the carton."
        ),
    )
    sscc_is_shipping_label: bool = Field(
        default=True,
        description="A GS1 element string carrying an SSCC, AI (00), counts as a shipping label.",
    )
    group_separator_substitutes: tuple[str, ...] = Field(
        default=(),
        description=(
            "Characters a keyboard-wedge scanner sends in place of the GS1 group separator "
            "(\\x1d), e.g. '~' or '|'; each is turned back into \\x1d before parsing."
        ),
    )
    max_length: int = Field(
        default=512,
        ge=16,
        le=4096,
        description="Longer scans are classified as unknown without being parsed.",
    )

    @field_validator("badge")
    @classmethod
    def _check_badge(cls, pattern: str) -> str:
        _compile(pattern, frozenset({"badge"}))
        return pattern

    @field_validator("order_carton")
    @classmethod
    def _check_order_carton(cls, pattern: str) -> str:
        _compile(pattern, frozenset({"order"}))
        return pattern

    @field_validator("close", "logout", "shipping_label", "weigh_unit", "remove_unit")
    @classmethod
    def _check_plain(cls, pattern: str) -> str:
        _compile(pattern, frozenset())
        return pattern

    @field_validator("group_separator_substitutes")
    @classmethod
    def _single_characters(cls, substitutes: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(s) != 1 for s in substitutes):
            raise ValueError("each substitute must be exactly one character")
        return substitutes

    @model_validator(mode="after")
    def _distinct_control_codes(self) -> Self:
        controls = [self.close, self.logout, self.weigh_unit, self.remove_unit]
        if len(set(controls)) != len(controls):
            raise ValueError(
                "the close, logout, weigh_unit and remove_unit patterns must differ from each other"
            )
        return self


def gtin14(code: str) -> str | None:
    """The GTIN-14 form of an EAN-8/UPC-A/EAN-13/GTIN-14 code, or None when it is not one."""
    if not code.isascii() or not code.isdigit() or len(code) not in _GTIN_LENGTHS:
        return None
    return code.zfill(14)


def has_valid_check_digit(digits: str) -> bool:
    """GS1 mod-10 check digit (GTINs, SSCCs)."""
    if not digits.isascii() or not digits.isdigit() or len(digits) < 2:
        return False
    body, check = digits[:-1], int(digits[-1])
    weighted = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == check


def parse_gs1(text: str) -> dict[str, str]:
    """AI -> data for a GS1 element string (separators as \\x1d). Stops at the first AI it does
    not know, keeping what it parsed; returns {} when nothing parses."""
    elements: dict[str, str] = {}
    for chunk in text.split(GROUP_SEPARATOR):
        while chunk:
            ai = chunk[:2]
            if ai in _FIXED_AI_LENGTHS:
                end = 2 + _FIXED_AI_LENGTHS[ai]
                if len(chunk) < end:
                    return elements
                elements[ai] = chunk[2:end]
                chunk = chunk[end:]
            elif ai in _VARIABLE_AIS:
                elements[ai] = chunk[2:]
                chunk = ""
            else:
                return elements
    return elements


@dataclass(frozen=True, slots=True)
class _Normalised:
    text: str
    gs1: bool  # the symbology identifier or a separator says this is a GS1 element string


def _normalise(raw: str, substitutes: tuple[str, ...]) -> _Normalised:
    text = raw.strip("\r\n\t ")
    identifier = _SYMBOLOGY_ID.match(text)
    gs1 = bool(identifier) and identifier.group(0) in _GS1_SYMBOLOGIES
    if identifier:
        text = text[identifier.end() :]
    for substitute in substitutes:
        text = text.replace(substitute, GROUP_SEPARATOR)
    if text.startswith(GROUP_SEPARATOR):  # a leading FNC1 some scanners transmit literally
        gs1 = True
        text = text.lstrip(GROUP_SEPARATOR)
    return _Normalised(text, gs1 or GROUP_SEPARATOR in text)


class CodeClassifier:
    """Classifies scans against the station's patterns and one catalog."""

    def __init__(self, patterns: CodePatternsConfig, catalog: Catalog) -> None:
        self._patterns = patterns
        self._badge = re.compile(patterns.badge)
        self._order_carton = re.compile(patterns.order_carton)
        self._close = re.compile(patterns.close)
        self._logout = re.compile(patterns.logout)
        self._weigh_unit = re.compile(patterns.weigh_unit)
        self._remove_unit = re.compile(patterns.remove_unit)
        self._shipping_label = re.compile(patterns.shipping_label)
        self._boxes = frozenset(catalog.boxes)
        self._barcodes = catalog.barcode_index()
        self._by_gtin14 = {
            gtin: entry
            for code, entry in self._barcodes.items()
            if (gtin := gtin14(code)) is not None
        }

    def classify(self, raw: str) -> ScannedCode:
        if len(raw) > self._patterns.max_length:
            return UnknownCode(raw)
        scan = _normalise(raw, self._patterns.group_separator_substitutes)
        if scan.gs1:
            return self._classify_gs1(scan.text) or UnknownCode(raw)
        return self._classify_plain(scan.text) or self._classify_gs1(scan.text) or UnknownCode(raw)

    def _classify_plain(self, text: str) -> ScannedCode | None:
        if self._logout.fullmatch(text):
            return LogoutCode()
        if self._close.fullmatch(text):
            return CloseCode()
        if self._weigh_unit.fullmatch(text):
            return WeighUnitCode()
        if self._remove_unit.fullmatch(text):
            return RemoveUnitCode()
        if badge := self._badge.fullmatch(text):
            return BadgeCode(badge.group("badge"))
        if order := self._order_carton.fullmatch(text):
            carton = order.groupdict().get("carton") or self._patterns.default_carton_id
            return OrderCartonCode(order.group("order"), carton)
        if text in self._boxes:
            return BoxCode(text)
        if text in self._barcodes:
            return ItemCode(*self._barcodes[text])
        if (gtin := gtin14(text)) is not None and gtin in self._by_gtin14:
            return ItemCode(*self._by_gtin14[gtin])
        if self._shipping_label.fullmatch(text):
            return ShippingLabelCode(text)
        return None

    def _classify_gs1(self, text: str) -> ScannedCode | None:
        """A GS1 element string: an SSCC is a shipping label, a GTIN an item. Check digits guard
        against reading a lost-separator string at the wrong offsets."""
        elements = parse_gs1(text)
        sscc = elements.get("00")
        if sscc and self._patterns.sscc_is_shipping_label and has_valid_check_digit(sscc):
            return ShippingLabelCode(sscc)
        gtin = elements.get("01")
        if gtin and has_valid_check_digit(gtin) and gtin in self._by_gtin14:
            return ItemCode(*self._by_gtin14[gtin], serial=elements.get("21"))
        return None
