"""NCI "General Weigh Protocol" (SCP-01) and its NCI-ECR variant: shipping and POS scales.

The host sends b"W\\r"; the scale answers `<LF>[weight<CR><LF>]status<CR><ETX>`:
  SCP-01:  b"\\n0002.75lb\\r\\n00\\r\\x03"   lower-case units, status bytes as is
  NCI-ECR: b"\\n 02.75LB\\r\\nS00\\r\\x03"   upper-case units, status prefixed with S
Both send only the status line when the weight cannot be shown (ECR: negative, moving, out of
range, zero error). Brecknell/Salter scales put ^^^^, ____ or ---- in the weight field instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scale.protocols.framing import BadFrame, Framer, ParseResult, decode_ascii, grams_from_text
from scale.readings import GRAMS_PER_UNIT, ScaleStatus, WeightReading

POLL = b"W\r"
ZERO = b"Z\r"
UNKNOWN_COMMAND_REPLY = "?"

_MARKERS = {
    "^^^^": ScaleStatus.OVERLOAD,
    "____": ScaleStatus.UNDERLOAD,
    "----": ScaleStatus.ZERO_ERROR,
}
_LINE_BREAKS = re.compile(r"[\r\n\x03]+")
_WEIGHT = re.compile(r"([+-]?\s*[\d.]+)\s*([a-z]+)", re.IGNORECASE)
_POUNDS_OUNCES = re.compile(r"(\d+)\s*lb\s+([\d.]+)\s*oz", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _StatusBits:
    motion: bool
    device_error: bool  # RAM, EEPROM, ROM or calibration fault
    under_capacity: bool
    over_capacity: bool
    zero_error: bool
    net: bool

    def status(self) -> ScaleStatus:
        if self.device_error:
            return ScaleStatus.DEVICE_ERROR
        if self.over_capacity:
            return ScaleStatus.OVERLOAD
        if self.under_capacity:
            return ScaleStatus.UNDERLOAD
        if self.zero_error:
            return ScaleStatus.ZERO_ERROR
        return ScaleStatus.MOTION if self.motion else ScaleStatus.OK


def new_framer() -> Framer:
    # The frame starts at the first LF and ends at ETX; the weight line has its own LF inside.
    return Framer(start=b"\n", end=b"\x03")


def parse(frame: bytes) -> ParseResult:
    text = decode_ascii(frame)
    if isinstance(text, BadFrame):
        return text
    lines = [line.strip() for line in _LINE_BREAKS.split(text) if line.strip()]
    if not lines:
        return BadFrame("empty NCI frame")
    if lines[-1] == UNKNOWN_COMMAND_REPLY:
        return WeightReading(None, False, ScaleStatus.COMMAND_ERROR, raw=frame)
    bits = _status_bits(lines[-1])
    if bits is None:
        return BadFrame(f"bad NCI status bytes {lines[-1]!r}")
    status = bits.status()
    if len(lines) == 1:
        return WeightReading(None, not bits.motion, status, net=bits.net, raw=frame)
    weight_line = lines[-2]  # anything earlier is the remains of a frame cut short
    marker = next((code for mark, code in _MARKERS.items() if mark in weight_line), None)
    if marker is not None:
        worst = status if status not in (ScaleStatus.OK, ScaleStatus.MOTION) else marker
        return WeightReading(None, not bits.motion, worst, net=bits.net, raw=frame)
    grams = _weight_grams(weight_line)
    if grams is None:
        return BadFrame(f"bad NCI weight {weight_line!r}")
    return WeightReading(grams, not bits.motion, status, net=bits.net, raw=frame)


def _status_bits(line: str) -> _StatusBits | None:
    """Status bytes carry flags in bits 0-3 with bits 4-5 set ('0'..'?'); ECR prefixes an S."""
    codes = [ord(char) for char in (line[1:] if line[:1] in "Ss" else line)]
    if len(codes) < 2 or any(code & 0x30 != 0x30 or code > 0x7F for code in codes):
        return None
    first, second = codes[0], codes[1]
    # Bit 6 of the second byte announces a third: bit 2 net, bit 3 initial zero error.
    third = codes[2] if second & 0x40 and len(codes) > 2 else 0
    return _StatusBits(
        motion=bool(first & 0x01),
        device_error=bool(first & 0x0C or second & 0x0C),
        under_capacity=bool(second & 0x01),
        over_capacity=bool(second & 0x02),
        zero_error=bool(third & 0x08),
        net=bool(third & 0x04),
    )


def _weight_grams(line: str) -> float | None:
    pounds_ounces = _POUNDS_OUNCES.fullmatch(line)
    if pounds_ounces:
        ounces = grams_from_text(pounds_ounces[2], "oz")
        return None if ounces is None else int(pounds_ounces[1]) * GRAMS_PER_UNIT["lb"] + ounces
    weight = _WEIGHT.fullmatch(line)
    if weight is None:
        return None
    return grams_from_text(weight[1].replace(" ", ""), weight[2])
