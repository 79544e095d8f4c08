"""Spec and hardware frames through each protocol's framer and parser."""

from __future__ import annotations

import pytest

from scale.protocols import PROTOCOLS, mtsics, nci, toledo
from scale.protocols.framing import BadFrame, Framer
from scale.readings import ScaleStatus, WeightReading

LB = 453.59237


def decode(protocol: str, *chunks: bytes) -> list[WeightReading]:
    decoder = PROTOCOLS[protocol].new_decoder()
    return [reading for chunk in chunks for reading in decoder.feed(chunk)]


# --- MT-SICS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "grams", "stable", "status"),
    [
        (b"S S     100.00 g\r\n", 100.0, True, ScaleStatus.OK),  # the manual's example
        (b"S D     100.05 g\r\n", 100.05, False, ScaleStatus.MOTION),
        (b"S S    -12.345 kg\r\n", -12345.0, True, ScaleStatus.OK),  # sign glued to the digits
        (b"S S       2.50 lb\r\n", 2.5 * LB, True, ScaleStatus.OK),
        (b"S S 1.5 oz\n", 1.5 * LB / 16, True, ScaleStatus.OK),  # no CR, single spaces
        (b"s s 7 G\r\n", 7.0, True, ScaleStatus.OK),  # tolerant of case
    ],
)
def test_mtsics_weight_replies(frame, grams, stable, status):
    (reading,) = decode("mtsics", frame)
    assert reading.grams == pytest.approx(grams)
    assert (reading.device_stable, reading.status, reading.raw) == (stable, status, frame)


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (b"S +\r\n", ScaleStatus.OVERLOAD),
        (b"S -\r\n", ScaleStatus.UNDERLOAD),
        (b"S I\r\n", ScaleStatus.COMMAND_ERROR),
        (b"ES\r\n", ScaleStatus.COMMAND_ERROR),
        (b"ET\r\n", ScaleStatus.COMMAND_ERROR),
        (b"EL\r\n", ScaleStatus.COMMAND_ERROR),
        (b"EI\r\n", ScaleStatus.COMMAND_ERROR),
    ],
)
def test_mtsics_status_only_replies(frame, status):
    assert mtsics.parse(frame) == WeightReading(None, False, status, raw=frame)


@pytest.mark.parametrize(
    "frame", [b"Z A\r\n", b"T S     12.345 g\r\n", b'I4 A "0123456789"\r\n', b"\r\n"]
)
def test_mtsics_acknowledgements_are_valid_but_carry_no_weight(frame):
    assert mtsics.parse(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        b"S S 100.00\r\n",  # no unit
        b"S S 100.00 furlong\r\n",
        b"S S nan g\r\n",
        b"S S 1e3 g\r\n",
        b"S X 100.00 g\r\n",
        b"S_A 100.00 g\r\n",  # RADWAG's look-alike, not MT-SICS
        b"S S 100.00 \xb5g\r\n",
        b"XYZ\r\n",
    ],
)
def test_mtsics_rejects_malformed_replies(frame):
    assert isinstance(mtsics.parse(frame), BadFrame)


def test_mtsics_frames_split_merged_and_after_garbage():
    frame = b"S S     100.00 g\r\n"
    one_byte_at_a_time = [frame[i : i + 1] for i in range(len(frame))]
    assert [r.grams for r in decode("mtsics", *one_byte_at_a_time)] == [100.0]
    merged = frame + b"S D     101.00 g\r\n" + frame
    assert [r.grams for r in decode("mtsics", merged)] == [100.0, 101.0, 100.0]
    decoder = PROTOCOLS["mtsics"].new_decoder()
    assert [r.grams for r in decoder.feed(b"\x00\xff#junk\r\n" + frame)] == [100.0]
    assert (decoder.frames, decoder.bad_frames) == (2, 1)


# --- NCI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "grams", "stable", "status"),
    [
        # Seen on an Avery Berkel 6702 (NCI-ECR, 7E1).
        (b"\n 02.75LB\r\nS00\r\x03", 2.75 * LB, True, ScaleStatus.OK),
        (b"\nS10\r\x03", None, False, ScaleStatus.MOTION),
        (b"\nS30\r\x03", None, False, ScaleStatus.MOTION),
        (b"\nS20\r\x03", None, True, ScaleStatus.OK),  # at zero
        (b"\nS01\r\x03", None, True, ScaleStatus.UNDERLOAD),
        (b"\nS11\r\x03", None, False, ScaleStatus.UNDERLOAD),
        (b"\nS02\r\x03", None, True, ScaleStatus.OVERLOAD),
        # NCI standard (SCP-01): lower-case units, no S prefix.
        (b"\n0002.75lb\r\n00\r\x03", 2.75 * LB, True, ScaleStatus.OK),
        (b"\n0001.25kg\r\n10\r\x03", 1250.0, False, ScaleStatus.MOTION),
        (b"\n-001.25kg\r\n00\r\x03", -1250.0, True, ScaleStatus.OK),
        (b"\n0012.5oz\r\n00\r\x03", 12.5 * LB / 16, True, ScaleStatus.OK),
        (b"\n 1lb 02.5oz\r\n00\r\x03", LB + 2.5 * LB / 16, True, ScaleStatus.OK),
        (b"\n04\r\x03", None, True, ScaleStatus.DEVICE_ERROR),  # RAM error
        (b"\n08\r\x03", None, True, ScaleStatus.DEVICE_ERROR),  # faulty calibration
        (b"\n0p4\r\x03", None, True, ScaleStatus.OK),  # third byte: net
        (b"\n0p8\r\x03", None, True, ScaleStatus.ZERO_ERROR),  # third byte: initial zero error
        # Brecknell/Salter markers in the weight field.
        (b"\n^^^^^^LB\r\nS00\r\x03", None, True, ScaleStatus.OVERLOAD),
        (b"\n______LB\r\nS00\r\x03", None, True, ScaleStatus.UNDERLOAD),
        (b"\n------LB\r\nS00\r\x03", None, True, ScaleStatus.ZERO_ERROR),
        (b"\n?\r\x03", None, False, ScaleStatus.COMMAND_ERROR),  # unknown command
    ],
)
def test_nci_frames(frame, grams, stable, status):
    (reading,) = decode("nci", frame)
    assert reading.grams == (None if grams is None else pytest.approx(grams))
    assert (reading.device_stable, reading.status) == (stable, status)


def test_nci_net_flag_from_third_status_byte():
    (reading,) = decode("nci", b"\n0001.00kg\r\n0p4\r\x03")
    assert (reading.grams, reading.net) == (1000.0, True)


@pytest.mark.parametrize(
    "frame",
    [
        b"\n 02.75XX\r\nS00\r\x03",
        b"\n 02.75LB\r\nSAB\r\x03",
        b"\n\r\x03",
        b"\n 0.2.75LB\r\n00\r\x03",
    ],
)
def test_nci_rejects_malformed_frames(frame):
    assert isinstance(nci.parse(frame), BadFrame)


def test_nci_frames_split_merged_and_after_garbage():
    frame = b"\n 02.75LB\r\nS00\r\x03"
    chunks = [frame[:3], frame[3:11], frame[11:]]
    assert [r.status for r in decode("nci", *chunks)] == [ScaleStatus.OK]
    merged = frame + b"\nS10\r\x03" + frame
    assert [r.status for r in decode("nci", merged)] == [
        ScaleStatus.OK,
        ScaleStatus.MOTION,
        ScaleStatus.OK,
    ]
    decoder = PROTOCOLS["nci"].new_decoder()
    assert len(decoder.feed(b"noise\x03more" + frame)) == 1
    assert decoder.dropped_bytes == len(b"noise\x03more")


def test_nci_frame_cut_short_keeps_the_following_frame():
    # A reply interrupted mid-weight (cable jiggle) followed by a full one still yields the weight.
    (reading,) = decode("nci", b"\n 02.7" + b"\n 02.75LB\r\nS00\r\x03")
    assert reading.grams == pytest.approx(2.75 * LB)


# --- Toledo continuous -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "grams", "stable", "status"),
    [
        (b"\x02,  001234000000\r;", 12.34 * LB, True, ScaleStatus.OK),  # spec example
        (b"\x02,( 001234000000\r3", 12.34 * LB, False, ScaleStatus.MOTION),  # spec example
    ],
)
def test_toledo_spec_frames(frame, grams, stable, status):
    (reading,) = decode("toledo", frame)
    assert reading.grams == pytest.approx(grams)
    assert (reading.device_stable, reading.status, reading.net) == (stable, status, False)


def toledo_frame(swa: int, swb: int, swc: int, weight: bytes, tare: bytes = b"000000") -> bytes:
    body = bytes([toledo.STX, swa, swb, swc]) + weight + tare + b"\r"
    return body + bytes([toledo.checksum(body)])


@pytest.mark.parametrize(
    ("swa", "swb", "swc", "weight", "grams"),
    [
        (0x20, 0x30, 0x20, b"000012", 1200.0 * 1000),  # dp 0: XXXX00 kg
        (0x21, 0x30, 0x20, b"000012", 120.0 * 1000),  # dp 1: XXXXX0 kg
        (0x22, 0x20, 0x21, b"001234", 1234.0),  # grams bit
        (0x23, 0x30, 0x20, b"001234", 123.4 * 1000),
        (0x25, 0x30, 0x20, b"001234", 1.234 * 1000),
        (0x27, 0x30, 0x20, b"123456", 1.23456 * 1000),
        (0x24, 0x22, 0x20, b"000150", -1.5 * LB),  # negative
        (0x24, 0x20, 0x20, b"   150", 1.5 * LB),  # blanked leading zeros
    ],
)
def test_toledo_decimal_position_units_and_sign(swa, swb, swc, weight, grams):
    (reading,) = decode("toledo", toledo_frame(swa, swb, swc, weight))
    assert reading.grams == pytest.approx(grams)


def test_toledo_net_weight_carries_the_tare():
    (reading,) = decode("toledo", toledo_frame(0x24, 0x31, 0x20, b"001000", b"000250"))
    assert (reading.grams, reading.net, reading.tare_grams) == (10000.0, True, 2500.0)


@pytest.mark.parametrize(
    ("swb", "status", "grams"),
    [
        (0x24, ScaleStatus.OVERLOAD, None),
        (0x26, ScaleStatus.UNDERLOAD, None),
        (0x60, ScaleStatus.ZERO_ERROR, pytest.approx(9999.99 * LB)),
    ],
)
def test_toledo_out_of_range_and_not_zeroed(swb, status, grams):
    (reading,) = decode("toledo", toledo_frame(0x24, swb, 0x20, b"999999"))
    assert (reading.status, reading.grams) == (status, grams)


def test_toledo_bad_checksum_is_counted_and_reading_continues():
    good = b"\x02,  001234000000\r;"
    decoder = PROTOCOLS["toledo"].new_decoder()
    readings = decoder.feed(b"\x02,  001234000000\r:" + good)
    assert len(readings) == 1
    assert decoder.bad_frames == 1
    assert "checksum" in decoder.last_bad_frame.reason


def test_toledo_frames_split_merged_garbage_and_cut_short():
    good = b"\x02,  001234000000\r;"
    assert len(decode("toledo", *(good[i : i + 1] for i in range(len(good))))) == 1
    assert len(decode("toledo", good * 3)) == 3
    decoder = PROTOCOLS["toledo"].new_decoder()
    assert len(decoder.feed(b"\xff\xfe garbage" + good[:7] + good)) == 1
    assert decoder.bad_frames == 0
    assert decoder.dropped_bytes == len(b"\xff\xfe garbage") + 7


def test_toledo_checksum_byte_equal_to_stx_is_not_a_frame_start():
    # Find a valid frame whose checksum is 0x02 and check the framer keeps it whole.
    for digits in range(1000):
        frame = toledo_frame(0x24, 0x31, 0x20, b"%06d" % digits, b"999999")
        if frame[-1] == toledo.STX:
            break
    assert frame[-1] == toledo.STX
    assert len(decode("toledo", frame + frame)) == 2


# --- shared framer -----------------------------------------------------------------------------


def test_framer_drops_an_endless_line_and_stays_bounded():
    framer = Framer(end=b"\n", max_buffer=64)
    assert framer.feed(b"x" * 1000) == []
    assert framer.buffered <= 64
    assert framer.dropped_bytes >= 1000 - 64
    assert framer.feed(b"\nS S 1 g\r\n")[-1] == b"S S 1 g\r\n"


def test_registry_has_one_row_per_protocol():
    assert set(PROTOCOLS) == {"mtsics", "nci", "toledo"}
    assert PROTOCOLS["mtsics"].poll_command == b"SI\r\n"
    assert PROTOCOLS["mtsics"].stream_command == b"SIR\r\n"
    assert PROTOCOLS["nci"].poll_command == b"W\r"
    assert PROTOCOLS["toledo"].poll_command is None
    assert all(spec.name == name for name, spec in PROTOCOLS.items())
