"""Toledo continuous output: terminals that stream ~7 frames a second without being asked.

Frame (18 bytes): STX SWA SWB SWC <6 digits weight> <6 digits tare> CR <checksum>, e.g. 12.34 lb
gross stable b"\\x02,  001234000000\\r;". The digits carry no decimal point: SWA says where it goes.
"""

from __future__ import annotations

from scale.protocols.framing import BadFrame, Framer, ParseResult
from scale.readings import ScaleStatus, WeightReading, to_grams

STX, CR = 0x02, 0x0D
FRAME_LENGTH = 18

# Status word bits.
SWA_DECIMAL_POSITION = 0x07  # 0 = XXXX00, 1 = XXXXX0, 2 = XXXXXX, 3 = XXXXX.X ... 7 = X.XXXXX
SWB_NET = 0x01
SWB_NEGATIVE = 0x02
SWB_OUT_OF_RANGE = 0x04
SWB_MOTION = 0x08
SWB_KG = 0x10  # otherwise lb
SWB_NOT_ZEROED = 0x40  # not zeroed since power-up
SWC_GRAMS = 0x01


def new_framer() -> Framer:
    # STX never occurs inside a frame, so a new STX means the previous frame was cut short.
    return Framer(start=b"\x02", end=b"\r", trailer_len=1, start_is_unique=True)


def checksum(body: bytes) -> int:
    """Two's complement of the low 7 bits of the sum of all bytes from STX to CR."""
    return -sum(body) & 0x7F


def parse(frame: bytes) -> ParseResult:
    if len(frame) != FRAME_LENGTH or frame[0] != STX or frame[16] != CR:
        return BadFrame(f"not an 18-byte Toledo frame: {frame!r}")
    if frame[17] != checksum(frame[:17]):
        return BadFrame(f"bad Toledo checksum in {frame!r}")
    swa, swb, swc = frame[1], frame[2], frame[3]
    weight, tare = _digits(frame[4:10]), _digits(frame[10:16])
    if weight is None or tare is None:
        return BadFrame(f"non-digit weight or tare in {frame!r}")
    stable = not swb & SWB_MOTION
    net = bool(swb & SWB_NET)
    if swb & SWB_OUT_OF_RANGE:
        over_or_under = ScaleStatus.UNDERLOAD if swb & SWB_NEGATIVE else ScaleStatus.OVERLOAD
        return WeightReading(None, stable, over_or_under, net=net, raw=frame)
    unit = "g" if swc & SWC_GRAMS else "kg" if swb & SWB_KG else "lb"
    scale = 10.0 ** (2 - (swa & SWA_DECIMAL_POSITION))
    sign = -1 if swb & SWB_NEGATIVE else 1
    return WeightReading(
        grams=to_grams(sign * weight * scale, unit),
        device_stable=stable,
        status=_status(swb),
        net=net,
        tare_grams=to_grams(tare * scale, unit) if net else None,
        raw=frame,
    )


def _status(swb: int) -> ScaleStatus:
    # A terminal never zeroed since power-up may carry any offset: not a weight to trust.
    if swb & SWB_NOT_ZEROED:
        return ScaleStatus.ZERO_ERROR
    return ScaleStatus.MOTION if swb & SWB_MOTION else ScaleStatus.OK


def _digits(field: bytes) -> int | None:
    # Some terminals blank leading zeros with spaces.
    text = field.replace(b" ", b"0")
    return int(text) if text.isdigit() else None
