"""Mettler Toledo MT-SICS: ASCII lines ending CR LF, e.g. b"S S     100.00 g\\r\\n".

A weight reply is `S <status> <value> <unit>`; the value is right-aligned with its sign attached,
so we split on whitespace and never on columns.
"""

from __future__ import annotations

from scale.protocols.framing import BadFrame, Framer, ParseResult, decode_ascii, grams_from_text
from scale.readings import ScaleStatus, WeightReading

POLL = b"SI\r\n"  # immediate weight, stable or not: we judge stability ourselves
STREAM_START = b"SIR\r\n"  # immediate weights, 4-10 per second, until S, SI, SR or @
ZERO = b"Z\r\n"
TARE = b"T\r\n"
RESET = b"@\r\n"  # clears the device tare and cancels SIR

_WEIGHT_STATUS = {"S": ScaleStatus.OK, "D": ScaleStatus.MOTION}
_STATUS_WITHOUT_VALUE = {
    "I": ScaleStatus.COMMAND_ERROR,
    "+": ScaleStatus.OVERLOAD,
    "-": ScaleStatus.UNDERLOAD,
}
_ERROR_REPLIES = {"ES", "ET", "EL", "EI"}
# Replies to zero, tare and reset: valid, but they carry no gross weight.
_ACKNOWLEDGEMENTS = {"Z", "ZI", "T", "TI", "TA", "I4", "@"}


def new_framer() -> Framer:
    # Split on LF alone so a device that drops the CR still works; the parser strips whitespace.
    return Framer(end=b"\n")


def parse(frame: bytes) -> ParseResult:
    text = decode_ascii(frame)
    if isinstance(text, BadFrame):
        return text
    fields = text.split()
    if not fields:
        return None  # a blank line is harmless
    reply_id = fields[0].upper()
    if reply_id in _ERROR_REPLIES and len(fields) == 1:
        return WeightReading(None, False, ScaleStatus.COMMAND_ERROR, raw=frame)
    if reply_id in _ACKNOWLEDGEMENTS:
        return None
    if reply_id != "S" or len(fields) < 2:
        return BadFrame(f"unexpected MT-SICS reply {text.strip()!r}")
    return _parse_weight_reply(fields, frame)


def _parse_weight_reply(fields: list[str], frame: bytes) -> ParseResult:
    status_code = fields[1].upper()
    if status_code in _STATUS_WITHOUT_VALUE and len(fields) == 2:
        return WeightReading(None, False, _STATUS_WITHOUT_VALUE[status_code], raw=frame)
    status = _WEIGHT_STATUS.get(status_code)
    grams = grams_from_text(fields[2], fields[3]) if len(fields) == 4 else None
    if status is None or grams is None:
        return BadFrame(f"bad MT-SICS weight reply {' '.join(fields)!r}")
    return WeightReading(grams, status is ScaleStatus.OK, status, raw=frame)
