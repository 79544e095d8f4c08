"""Property tests: every framer and parser survives any bytes in any chunking, and readings
encoded by the simulator parse back to the same grams."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scale.protocols import PROTOCOLS
from scale.readings import GRAMS_PER_UNIT, ScaleStatus
from simulators.scale_sim import Display, encode_mtsics, encode_nci, encode_toledo

PROTOCOL_NAMES = sorted(PROTOCOLS)
SAMPLE_FRAMES = {
    "mtsics": [b"S S     100.00 g\r\n", b"S D    -1.5 kg\r\n", b"S +\r\n", b"ES\r\n", b"Z A\r\n"],
    "nci": [b"\n 02.75LB\r\nS00\r\x03", b"\nS10\r\x03", b"\n0002.75lb\r\n00\r\x03", b"\n?\r\x03"],
    "toledo": [b"\x02,  001234000000\r;", b"\x02,( 001234000000\r3"],
}


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# Bytes that matter to the framers show up often, so frames half-form and break.
wire_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\n", b"\r", b"\x02", b"\x03", b"S S 1 g", b"\nS00", b"\x02,  00"]),
        st.sampled_from([frame for frames in SAMPLE_FRAMES.values() for frame in frames]),
    ),
    max_size=30,
).map(b"".join)


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
@settings(max_examples=300, deadline=None)
@given(data=wire_bytes, cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_any_bytes_never_raise_and_every_byte_is_accounted_for(protocol, data, cuts):
    spec = PROTOCOLS[protocol]
    framer = spec.new_framer()
    frame_bytes = 0
    for chunk in chunked(data, cuts):
        for frame in framer.feed(chunk):
            frame_bytes += len(frame)
            spec.parse(frame)  # must not raise, whatever the frame
        assert framer.buffered <= framer.max_buffer
    assert frame_bytes + framer.dropped_bytes + framer.buffered == len(data)


@pytest.mark.parametrize("protocol", PROTOCOL_NAMES)
@settings(max_examples=200, deadline=None)
@given(data=st.data(), cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_valid_frames_survive_any_chunking_and_leading_garbage(protocol, data, cuts):
    frames = data.draw(st.lists(st.sampled_from(SAMPLE_FRAMES[protocol]), min_size=1, max_size=8))
    # Garbage without the protocol's end marker cannot complete a frame of its own.
    end = PROTOCOLS[protocol].new_framer().end
    garbage = data.draw(st.binary(max_size=30).filter(lambda g: end not in g))
    decoder = PROTOCOLS[protocol].new_decoder()
    readings = []
    for chunk in chunked(b"".join(frames), cuts):
        readings += decoder.feed(chunk)
    expected = [
        parsed for frame in frames if (parsed := PROTOCOLS[protocol].parse(frame)) is not None
    ]
    assert readings == expected
    assert decoder.bad_frames == 0
    decoder_with_garbage = PROTOCOLS[protocol].new_decoder()
    after_garbage = decoder_with_garbage.feed(garbage + b"".join(frames))
    # Only the first frame can be spoilt, by garbage that looks like the start of a frame.
    unspoilt = expected[1:]
    assert len(after_garbage) <= len(expected)
    assert after_garbage[len(after_garbage) - len(unspoilt) :] == unspoilt


def resolution_g(display: Display) -> float:
    return GRAMS_PER_UNIT[display.unit] / 10**display.decimals


def displays(units: list[str], max_digits: int, signed: bool) -> st.SearchStrategy[Display]:
    @st.composite
    def build(draw: st.DrawFn) -> Display:
        decimals = draw(st.integers(min_value=0, max_value=4))
        limit = 10 ** (max_digits - decimals) - 1
        counts = draw(st.integers(min_value=-limit if signed else 0, max_value=limit))
        return Display(
            value=counts / 10**decimals,
            unit=draw(st.sampled_from(units)),
            decimals=decimals,
            moving=draw(st.booleans()),
        )

    return build()


def assert_round_trip(protocol: str, display: Display, frame: bytes) -> None:
    (reading,) = PROTOCOLS[protocol].new_decoder().feed(frame)
    expected_g = display.value * GRAMS_PER_UNIT[display.unit]
    assert reading.grams == pytest.approx(expected_g, abs=resolution_g(display) / 2)
    assert reading.device_stable is not display.moving
    assert reading.status is (ScaleStatus.MOTION if display.moving else ScaleStatus.OK)


@given(displays(["g", "kg", "lb", "oz", "mg"], max_digits=7, signed=True))
def test_mtsics_round_trip(display):
    assert_round_trip("mtsics", display, encode_mtsics(display))


@given(displays(["kg", "lb", "oz", "g"], max_digits=5, signed=True))
def test_nci_standard_round_trip(display):
    assert_round_trip("nci", display, encode_nci(display, "standard"))


@given(displays(["kg", "lb", "oz", "g"], max_digits=5, signed=False))
def test_nci_ecr_round_trip_or_status_only_when_moving(display):
    frame = encode_nci(display, "ecr")
    if display.moving:
        assert frame == b"\nS10\r\x03"  # ECR cannot show a moving weight
    else:
        assert_round_trip("nci", display, frame)


@given(displays(["lb", "kg", "g"], max_digits=6, signed=True))
def test_toledo_round_trip(display):
    assert_round_trip("toledo", display, encode_toledo(display))


@pytest.mark.parametrize(
    ("display", "status"),
    [
        (Display(0.0, overload=True), ScaleStatus.OVERLOAD),
        (Display(0.0, underload=True), ScaleStatus.UNDERLOAD),
    ],
)
def test_out_of_range_round_trips_in_every_protocol(display, status):
    lb = Display(0.0, "lb", 2, overload=display.overload, underload=display.underload)
    frames = {
        "mtsics": encode_mtsics(display),
        "nci": encode_nci(lb, "ecr"),
        "toledo": encode_toledo(lb),
    }
    for protocol, frame in frames.items():
        (reading,) = PROTOCOLS[protocol].new_decoder().feed(frame)
        assert (protocol, reading.status, reading.grams) == (protocol, status, None)
    (standard,) = PROTOCOLS["nci"].new_decoder().feed(encode_nci(lb, "standard"))
    assert standard.status is status
