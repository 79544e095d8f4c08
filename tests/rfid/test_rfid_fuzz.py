"""Property tests: every engine survives any bytes in any chunking (never raises, never hangs,
buffers stay bounded, bad frames are counted), and valid frames survive corruption around them."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.config import rfid_reader_config_from
from rfid.protocols import chafon, llrp, new_engine, thingmagic
from rfid.reads import TagReport

EPC = bytes.fromhex("E28068940000400A9D22A9EB")
CAPTURED = bytes.fromhex("150001030101 0CE28068940000400A9D22A9EB5DF9C3".replace(" ", ""))
TM_TAGS = thingmagic.reply(0x29, 0, thingmagic.encode_tag_buffer([TagReport(EPC, 1, -50.0, 2)]))
LLRP_REPORT = llrp.message(61, 3, llrp.tag_report_data(EPC, 1, -50, 0, 10, 2))
SAMPLES = {
    "chafon": [CAPTURED, chafon.command(0x01, b"\x01\x01\x00"), b"\x04\x00\x01\xdb\x4b"],
    "thingmagic": [TM_TAGS, thingmagic.reply(0x22, 0x400), bytes.fromhex("FF022201F4E776")],
    "llrp": [LLRP_REPORT, llrp.message(62, 1), llrp.reader_event(1, 0)],
    "ascii": [b"E28068940000400A9D22A9EB,1,-50\r\n", b"zz\n", b"\n"],
}
BASE = {"llrp": {"host": "h"}}


def engine_for(protocol: str):
    data = {"protocol": protocol, **BASE.get(protocol, {"port": "/dev/null"})}
    engine = new_engine(rfid_reader_config_from(data))
    engine.start(0.0)
    engine.take_output()
    return engine


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def wire(protocol: str):
    return st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from(SAMPLES[protocol]),
            st.sampled_from(SAMPLES[protocol]).map(lambda f: f[: len(f) // 2]),
            st.tuples(st.sampled_from(SAMPLES[protocol]), st.integers(0, 200)).map(
                lambda t: (
                    t[0][: t[1] % len(t[0])]
                    + bytes([t[0][t[1] % len(t[0])] ^ 0x5A])
                    + t[0][t[1] % len(t[0]) + 1 :]
                )
            ),
        ),
        max_size=25,
    ).map(b"".join)


@pytest.mark.parametrize("protocol", sorted(SAMPLES))
@settings(max_examples=250, deadline=None)
@given(data=st.data(), cuts=st.lists(st.integers(min_value=0), max_size=15))
def test_engines_never_raise_and_stay_bounded(protocol, data, cuts):
    payload = data.draw(wire(protocol))
    engine = engine_for(protocol)
    now = 0.0
    for chunk in chunked(payload, cuts):
        now += 0.01
        for report in engine.feed(chunk, now):
            assert isinstance(report.epc, bytes) and report.seen_count >= 1
        engine.tick(now)
        engine.take_output()
    framer = engine.framer
    assert getattr(framer, "buffered", 0) <= 2048
    assert engine.bad_frames >= 0 and engine.dropped_bytes >= 0


@pytest.mark.parametrize(
    ("protocol", "frame", "expected"),
    [
        ("chafon", CAPTURED, [EPC]),
        ("thingmagic", TM_TAGS, [EPC]),
    ],
)
@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=40), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_a_valid_frame_after_garbage_is_found(protocol, frame, expected, garbage, cuts):
    framer = chafon.new_framer() if protocol == "chafon" else thingmagic.new_reply_framer()
    frames = []
    for chunk in chunked(garbage + frame, cuts):
        frames += framer.feed(chunk)
    assert frames[-1:] == [frame]


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(CAPTURED) - 1), flip=st.integers(1, 255))
def test_any_corrupted_chafon_byte_is_rejected_not_misread(position, flip):
    broken = bytearray(CAPTURED)
    broken[position] ^= flip
    engine = engine_for("chafon")
    reports = engine.feed(bytes(broken), 0.0)
    assert reports == []  # a single flipped byte never yields a tag (CRC-16 catches it)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(TM_TAGS) - 1), flip=st.integers(1, 255))
def test_any_corrupted_thingmagic_byte_is_rejected_not_misread(position, flip):
    broken = bytearray(TM_TAGS)
    broken[position] ^= flip
    framer = thingmagic.new_reply_framer()
    assert framer.feed(bytes(broken)) == []  # SOH gone, length wrong or ThingMagic's CRC fails
    assert framer.feed(TM_TAGS) == [TM_TAGS]  # and the next good frame is still found


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_llrp_param_parser_only_raises_llrp_error(data):
    try:
        llrp.parse_params(data)
        llrp.parse_tag_reports(data)
    except llrp.LlrpError:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_tag_buffer_parser_never_raises(data):
    thingmagic.parse_tag_buffer(data)
    chafon.parse_inventory_tags(data)
