"""Frames from the reference file and built from the specs, through the pure parsers and engines."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.config import rfid_reader_config_from
from rfid.protocols import chafon, llrp, thingmagic
from rfid.protocols.ascii import AsciiEngine, LineFramer
from rfid.protocols.framing import crc16_mcrf4xx, crc_thingmagic
from rfid.reads import TagReport

CAPTURED = bytes.fromhex("15 00 01 03 01 01 0C E28068940000400A9D22A9EB 5D F9 C3".replace(" ", ""))
EPC = bytes.fromhex("E28068940000400A9D22A9EB")


def config(protocol: str, **settings: object):
    base = {"llrp": {"host": "127.0.0.1"}}.get(protocol, {"port": "/dev/null"})
    return rfid_reader_config_from({"protocol": protocol, **base, **settings})


# --- CRCs --------------------------------------------------------------------------------------


def test_crcs_match_the_reference():
    assert crc16_mcrf4xx(bytes.fromhex("040021")) == 0x6AD9  # sent D9 6A
    assert chafon.command(chafon.CMD_READER_INFO) == bytes.fromhex("040021D96A")
    assert bytes.fromhex("040001DB4B") == chafon.INVENTORY
    assert crc16_mcrf4xx(CAPTURED) == 0
    assert crc_thingmagic(b"\x00\x03") == 0x1D0C


@pytest.mark.parametrize(
    ("frame", "opcode", "data"),
    [
        ("FF00031D0C", 0x03, b""),
        ("FF02930005517D", 0x93, b"\x00\x05"),
        ("FF022201F4E776", 0x22, b"\x01\xf4"),
        ("FF0329000000F422", 0x29, b"\x00\x00\x00"),
    ],
)
def test_thingmagic_reference_frames(frame, opcode, data):
    assert thingmagic.request(opcode, data) == bytes.fromhex(frame)
    assert thingmagic.new_request_framer().feed(bytes.fromhex(frame)) == [bytes.fromhex(frame)]


# --- Chafon ------------------------------------------------------------------------------------


def test_chafon_captured_reply_parses_by_its_length_fields():
    frames = chafon.new_framer().feed(b"\x00\x99" + CAPTURED)  # garbage first
    assert frames == [CAPTURED]
    assert chafon.parse_inventory_tags(CAPTURED[4:-2], "negative_dbm") == (
        [TagReport(EPC, 1, -93.0)],
        True,
    )
    assert chafon.parse_inventory_tags(CAPTURED[4:-2]) == ([TagReport(EPC, 1, None)], True)


def inventory_reply(status: int, ant: int, tags: list[bytes], extra: bool) -> bytes:
    data = bytes([ant, len(tags)])
    for epc in tags:
        data += bytes([len(epc)]) + epc + (b"\x40" if extra else b"")
    return chafon.command(0x01, bytes([status]) + data)  # same framing as a command


@pytest.mark.parametrize("extra", [True, False])
def test_chafon_multi_tag_replies_with_and_without_the_extra_byte(extra):
    epcs = [EPC, bytes(range(12)), bytes.fromhex("3074257BF7194E4000001A85") + b"\x01\x02\x03\x04"]
    frame = inventory_reply(0x01, 0x04, epcs, extra)
    tags, had_extra = chafon.parse_inventory_tags(frame[4:-2], "raw")  # type: ignore[misc]
    assert had_extra is extra
    assert [t.epc for t in tags] == epcs
    assert {t.antenna for t in tags} == {3}  # 0x04 is the bit of port 3
    assert {t.rssi_dbm for t in tags} == ({64.0} if extra else {None})


def test_chafon_wrong_counts_are_named():
    frame = inventory_reply(0x01, 1, [EPC, EPC], False)
    data = bytearray(frame[4:-2])
    data[1] = 3
    assert "does not match" in chafon.parse_inventory_tags(bytes(data))


def test_chafon_reply_that_fits_both_layouts_is_read_by_the_one_the_reader_showed():
    # Without the extra byte, a second EPC starting 0x0A (its length 12 minus 2) also walks as
    # "12-byte EPC, extra byte 0x0C, 10-byte EPC, extra byte": never guess between the two.
    second = bytes([0x0A, *range(1, 12)])
    plain = inventory_reply(0x01, 1, [EPC, second], extra=False)
    assert "fits both layouts" in chafon.parse_inventory_tags(plain[4:-2])
    assert chafon.parse_inventory_tags(plain[4:-2], extra_byte=False) == (
        [TagReport(EPC, 1, None), TagReport(second, 1, None)],
        False,
    )
    engine = chafon.ChafonEngine(config("chafon"))
    assert engine.feed(plain, 0.0) == [] and engine.bad_frames == 1  # layout not known yet
    alone = inventory_reply(0x03, 1, [EPC], extra=False)  # one tag: only one layout fits
    assert engine.feed(alone + plain, 0.1) == [
        TagReport(EPC, 1, None),
        TagReport(EPC, 1, None),
        TagReport(second, 1, None),
    ]
    assert engine.extra_byte is False and engine.bad_frames == 1
    # A reader configured to send the byte reads an ambiguous reply with it.
    told = chafon.ChafonEngine(config("chafon", rssi_byte="negative_dbm"))
    assert told.extra_byte is True


@settings(max_examples=300, deadline=None)
@given(
    epcs=st.lists(st.binary(min_size=1, max_size=62), min_size=1, max_size=6),
    extra=st.booleans(),
    antenna=st.sampled_from([1, 2, 4, 8]),
)
def test_chafon_multi_tag_replies_never_yield_a_wrong_epc(epcs, extra, antenna):
    data = inventory_reply(0x01, antenna, epcs, extra)[4:-2]
    known = chafon.parse_inventory_tags(data, "raw", extra_byte=extra)
    assert not isinstance(known, str)
    assert [t.epc for t in known[0]] == epcs and known[1] is extra
    assert {t.antenna for t in known[0]} == {chafon.antenna_number(antenna)}
    unknown = chafon.parse_inventory_tags(data, "raw")
    assert unknown == known or "fits both layouts" in unknown


def test_chafon_engine_polls_sets_power_and_handles_statuses():
    engine = chafon.ChafonEngine(config("chafon", power_dbm=20, poll_interval_s=0.2))
    engine.start(0.0)
    assert engine.take_output() == chafon.command(0x2F, bytes([20]))
    engine.feed(chafon.command(0x2F, b"\x00"), 0.01)  # status 0x00 reply
    assert engine.take_output() == chafon.INVENTORY
    more = inventory_reply(0x03, 1, [EPC], True)
    done = inventory_reply(0x02, 2, [bytes(12)], True)
    assert engine.feed(more, 0.05) == [TagReport(EPC, 1, None)]
    assert engine.feed(done[:5], 0.06) == []
    assert engine.feed(done[5:], 0.07) == [TagReport(bytes(12), 2, None)]
    assert (engine.overflows, engine.ready, engine.failure) == (1, True, None)
    engine.tick(0.1)
    assert engine.take_output() == b""  # next poll only at 0.2
    engine.tick(0.21)
    assert engine.take_output() == chafon.INVENTORY
    engine.tick(2.0)  # no reply within reply_timeout_s
    assert engine.missed_replies == 1
    assert engine.take_output() == chafon.INVENTORY
    engine.feed(chafon.command(0x01, b"\xfe"), 2.1)
    assert "illegal command" in (engine.failure or "")


def test_chafon_bad_crc_is_counted_and_the_next_frame_still_found():
    engine = chafon.ChafonEngine(config("chafon"))
    broken = bytearray(CAPTURED)
    broken[-1] ^= 0xFF
    reports = engine.feed(bytes(broken) + CAPTURED, 0.0)
    assert [r.epc for r in reports] == [EPC]
    assert engine.bad_frames >= 1


# --- ThingMagic --------------------------------------------------------------------------------


def test_thingmagic_tag_buffer_round_trip():
    tags = [TagReport(EPC, 2, -51.0, 7), TagReport(bytes(range(16)), 1, -70.0, 1)]
    data = thingmagic.encode_tag_buffer(tags)
    assert thingmagic.parse_tag_buffer(data) == tags
    assert "left after" in thingmagic.parse_tag_buffer(data + b"\x00")
    assert "does not fit" in thingmagic.parse_tag_buffer(data[:-3])


def test_thingmagic_engine_cycle_and_status_words():
    engine = thingmagic.ThingMagicEngine(
        config("thingmagic", antennas=[1, 2], read_power_dbm=27, session=1, target="A")
    )
    engine.start(0.0)
    expected = [
        (0x93, b"\x00\x05"),
        (0x91, b"\x02\x01\x01\x02\x02"),
        (0x92, (2700).to_bytes(2, "big")),
        (0x9B, b"\x05\x00\x01"),
        (0x9B, b"\x05\x01\x01\x00"),
        (0x2A, b""),
    ]
    for opcode, data in expected:
        assert engine.take_output() == thingmagic.request(opcode, data)
        engine.feed(thingmagic.reply(opcode, 0), 0.0)
    assert engine.take_output() == thingmagic.request(0x22, (250).to_bytes(2, "big"))
    engine.feed(thingmagic.reply(0x22, 0x0400), 0.3)  # no tags: a normal empty cycle
    assert engine.ready and engine.failure is None
    engine.tick(0.6)
    assert engine.take_output()[2] == 0x22
    engine.feed(thingmagic.reply(0x22, 0, b"\x01"), 0.9)
    assert engine.take_output() == thingmagic.request(0x29, b"\x00\x07\x00")
    tags = [TagReport(EPC, 2, -48.0, 3)]
    got = engine.feed(thingmagic.reply(0x29, 0, thingmagic.encode_tag_buffer(tags)), 0.95)
    assert got == tags
    assert engine.take_output() == thingmagic.request(0x2A)
    engine.feed(thingmagic.reply(0x2A, 0), 0.96)
    engine.tick(1.2)
    engine.feed(thingmagic.reply(0x22, 0x0503), 1.5)
    assert "antenna not connected" in (engine.failure or "")


def sent_opcode(engine: thingmagic.ThingMagicEngine) -> int | None:
    out = engine.take_output()
    return out[2] if out else None


@pytest.mark.parametrize(("mode", "next_at"), [("continuous", 0.5), ("timed", 1.0)])
def test_thingmagic_reads_the_tag_buffer_in_batches_then_cycles_by_mode(mode, next_at):
    engine = thingmagic.ThingMagicEngine(config("thingmagic", mode=mode, poll_interval_s=1.0))
    engine.start(0.0)
    while (opcode := sent_opcode(engine)) != 0x22:  # the setup commands
        assert opcode is not None
        engine.feed(thingmagic.reply(opcode, 0), 0.0)
    tags = [TagReport(bytes([i]) * 12, 1, -50.0, 2) for i in range(3)]
    engine.feed(thingmagic.reply(0x22, 0, b"\x03"), 0.3)  # 3 tags in the module's buffer
    assert sent_opcode(engine) == 0x29
    first = engine.feed(thingmagic.reply(0x29, 0, thingmagic.encode_tag_buffer(tags[:2])), 0.4)
    assert first == tags[:2] and sent_opcode(engine) == 0x29  # one more to fetch
    assert engine.feed(thingmagic.reply(0x29, 0, thingmagic.encode_tag_buffer(tags[2:])), 0.45)
    assert sent_opcode(engine) == 0x2A  # all 3 read: clear the buffer
    engine.feed(thingmagic.reply(0x2A, 0), 0.5)
    # continuous: the next inventory at once; timed: poll_interval_s after the last one began
    assert sent_opcode(engine) == (0x22 if mode == "continuous" else None)
    engine.tick(next_at)
    assert sent_opcode(engine) == (None if mode == "continuous" else 0x22)
    assert engine.failure is None and engine.bad_frames == 0


# --- ASCII -------------------------------------------------------------------------------------


def test_ascii_default_format_and_custom_regex():
    engine = AsciiEngine(config("ascii"))
    engine.start(0.0)
    lines = b"E28068940000400A9D22A9EB,2,-48.5\r\n3074257BF7194E4000001A85\nnot a tag\n"
    reports = engine.feed(lines, 0.0)
    assert reports == [
        TagReport(EPC, 2, -48.5),
        TagReport(bytes.fromhex("3074257BF7194E4000001A85"), 0, None),
    ]
    assert engine.bad_frames == 1
    custom = AsciiEngine(
        config("ascii", line_pattern=r"TAG:(?P<epc>\w+) ANT:(?P<antenna>\d) RSSI:(?P<rssi>\S+)")
    )
    assert custom.feed(b"TAG:E28068940000400A9D22A9EB ANT:3 RSSI:-61\n", 0.0) == [
        TagReport(EPC, 3, -61.0)
    ]


def test_ascii_overlong_lines_are_dropped_whole():
    framer = LineFramer(max_line=16)
    assert framer.feed(b"A" * 40 + b"\nABCD\n") == [b"ABCD"]
    assert framer.overlong == 1


def test_ascii_poll_command():
    engine = AsciiEngine(config("ascii", poll_command="READ", poll_interval_s=0.5))
    engine.start(0.0)
    assert engine.take_output() == b"READ\r\n"
    engine.tick(0.2)
    assert engine.take_output() == b""


# --- LLRP --------------------------------------------------------------------------------------


def test_llrp_tag_report_round_trip_epc96_and_epcdata():
    body = llrp.tag_report_data(EPC, 2, -55, 1_000_000, 1_250_000, 9) + llrp.tag_report_data(
        bytes(range(16)), 1, None, 5, 5, 1
    )
    reports = llrp.parse_tag_reports(body)
    assert reports == [
        TagReport(EPC, 2, -55.0, 9, 0.25),
        TagReport(bytes(range(16)), 1, None, 1, 0.0),
    ]


def test_llrp_report_bytes_written_from_the_standard_parse():
    # Hand-assembled from LLRP 1.0.1, not by our encoder: RO_ACCESS_REPORT (type 61, version 1),
    # one TagReportData (TLV 240, 43 bytes) of TVs: EPC-96 (13), AntennaID (1), PeakRSSI (6),
    # FirstSeenTimestampUTC (2), LastSeenTimestampUTC (4), TagSeenCount (8).
    wire = bytes.fromhex(
        "043D 00000035 0000002A"
        "00F0 002B"
        "8D E28068940000400A9D22A9EB"
        "81 0002"
        "86 C9"
        "82 00000000000F4240"
        "84 000000000013D620"
        "88 0009".replace(" ", "")
    )
    (msg,) = llrp.MessageFramer().feed(wire)
    assert (msg.type, msg.id) == (llrp.RO_ACCESS_REPORT, 42)
    # antenna 2, -55 dBm, seen 9 times between 1.0 s and 1.3 s on the reader's clock
    assert llrp.parse_tag_reports(msg.body) == [TagReport(EPC, 2, -55.0, 9, pytest.approx(0.3))]
    assert llrp.message(61, 42, llrp.tag_report_data(EPC, 2, -55, 10**6, 1_300_000, 9)) == wire


def test_llrp_framer_handles_split_and_glued_messages():
    one = llrp.message(llrp.KEEPALIVE, 7)
    two = llrp.message(llrp.RO_ACCESS_REPORT, 8, llrp.tag_report_data(EPC, 1, -40, 0, 0, 1))
    framer = llrp.MessageFramer()
    stream = one + two
    got = []
    for i in range(0, len(stream), 3):
        got += framer.feed(stream[i : i + 3])
    assert [(m.type, m.id) for m in got] == [(62, 7), (61, 8)]
    bad = llrp.MessageFramer()
    assert bad.feed(b"\x00" * 12) == [] and "not an LLRP" in (bad.error or "")


def test_llrp_parse_is_strict_about_lengths():
    with pytest.raises(llrp.LlrpError):
        llrp.parse_params(struct.pack(">HH", 240, 40) + b"\x00" * 4)
    with pytest.raises(llrp.LlrpError):
        llrp.parse_params(b"\xff\x00")  # unknown TV type 127
    with pytest.raises(llrp.LlrpError):
        llrp.parse_tag_reports(llrp.tlv(240, llrp.tv(1, b"\x00\x01")))  # no EPC


def test_llrp_rospec_carries_antennas_power_and_gen2_settings():
    cfg = config(
        "llrp",
        antennas=[1, 2],
        antenna_power_dbm={2: 25.3},
        session=2,
        target="B",
        tag_population=50,
        mode_index=1002,
        report_every_n_tags=3,
    )
    caps = llrp.Capabilities(max_antennas=4, power_table={1: 1000, 80: 2500, 81: 2525, 90: 3000})
    (rospec,) = llrp.parse_params(llrp.build_rospec(cfg, caps))
    assert struct.unpack(">I", rospec.body[:4])[0] == cfg.rospec_id
    _boundary, aispec, report = rospec.children(6)
    assert struct.unpack(">HHH", aispec.body[:6]) == (2, 1, 2)
    _, inventory = aispec.children(6)
    ant1, ant2 = inventory.children(3)
    assert [p.type for p in ant1.children(2)] == [llrp.P_C1G2_INVENTORY_COMMAND]
    transmitter, command = ant2.children(2)
    assert struct.unpack(">HHH", transmitter.body) == (1, 1, 81)  # 25.25 dBm <= 25.3
    assert command.body[0] == 0x80  # state aware
    rf_control, singulation = command.children(1)
    assert struct.unpack(">H", rf_control.body[:2])[0] == 1002
    assert singulation.body[0] >> 6 == 2
    assert struct.unpack(">H", singulation.body[1:3])[0] == 50
    (action,) = singulation.children(7)
    assert action.body[0] & 0x80  # state B
    assert struct.unpack(">BH", report.body[:3]) == (2, 3)


def inventory_command(rospec: llrp.Param, antenna_index: int = 0) -> llrp.Param:
    _boundary, aispec, _report = rospec.children(6)
    count = struct.unpack(">H", aispec.body[:2])[0]
    _, inventory = aispec.children(2 + 2 * count)
    antenna = inventory.children(3)[antenna_index]
    return next(p for p in antenna.children(2) if p.type == llrp.P_C1G2_INVENTORY_COMMAND)


def test_llrp_impinj_search_mode_is_an_impinj_custom_parameter_after_singulation():
    cfg = config("llrp", impinj_search_mode="single_target_with_suppression", session=1)
    (rospec,) = llrp.parse_params(llrp.build_rospec(cfg, llrp.Capabilities()))
    command = inventory_command(rospec)
    assert command.body[0] == 0x00  # not state aware: Impinj readers do not do that
    singulation, custom = command.children(1)
    assert singulation.type == llrp.P_C1G2_SINGULATION_CONTROL
    assert custom.type == 1023
    assert custom.body == bytes.fromhex("0000651A 00000017 0003".replace(" ", ""))  # 25882, 23, 3
    (plain,) = llrp.parse_params(llrp.build_rospec(config("llrp"), llrp.Capabilities()))
    assert [p.type for p in inventory_command(plain).children(1)] == [336]  # nothing vendor's


def scripted_setup(engine: llrp.LlrpEngine, refuse: int | None = None) -> list[int]:
    """Answer each request of the engine's setup as a reader would (`refuse`: with an
    M_UnsupportedMessage ERROR_MESSAGE to that type); returns the types it sent."""
    engine.start(0.0)
    engine.feed(llrp.reader_event(1, 0, llrp.connection_attempt_event(0)), 0.0)
    sent: list[int] = []
    while engine.failure is None and not engine.ready:
        (msg,) = llrp.MessageFramer().feed(engine.take_output())
        sent.append(msg.type)
        if msg.type == refuse:
            error = llrp.llrp_status(109, "unsupported")
            engine.feed(llrp.message(llrp.ERROR_MESSAGE, msg.id, error), 0.1)
        elif msg.type == llrp.GET_READER_CAPABILITIES:
            engine.feed(llrp.capabilities_response(msg.id, 4, [(1, 1000)]), 0.1)
        elif msg.type == llrp.CUSTOM_MESSAGE:
            assert msg.body == bytes.fromhex("0000651A 15 00000000".replace(" ", ""))
            body = llrp.impinj_message_body(22) + llrp.llrp_status()
            engine.feed(llrp.message(llrp.CUSTOM_MESSAGE, msg.id, body), 0.1)
        else:
            response = llrp.RESPONSE_TO[msg.type]
            engine.feed(llrp.message(response, msg.id, llrp.llrp_status()), 0.1)
    return sent


def test_llrp_engine_enables_impinj_extensions_only_for_a_search_mode():
    impinj = llrp.LlrpEngine(config("llrp", impinj_search_mode="dual_target"))
    assert scripted_setup(impinj) == [1, 21, 3, 1023, 20, 24, 22]
    assert impinj.ready
    assert scripted_setup(llrp.LlrpEngine(config("llrp"))) == [1, 21, 3, 20, 24, 22]
    zebra = llrp.LlrpEngine(config("llrp", impinj_search_mode="dual_target"))
    scripted_setup(zebra, refuse=llrp.CUSTOM_MESSAGE)
    assert zebra.failure == (
        "reader refused IMPINJ_ENABLE_EXTENSIONS: M_UnsupportedMessage: unsupported"
    )


def test_llrp_engine_session_against_scripted_replies():
    engine = llrp.LlrpEngine(config("llrp", antennas=[1]))
    engine.start(0.0)
    engine.feed(llrp.reader_event(1, 0, llrp.connection_attempt_event(0)), 0.0)
    sent: list[int] = []

    def answer(reply_for: dict[int, bytes] | None = None) -> None:
        for msg in llrp.MessageFramer().feed(engine.take_output()):
            sent.append(msg.type)
            if msg.type == llrp.GET_READER_CAPABILITIES:
                engine.feed(llrp.capabilities_response(msg.id, 4, [(1, 1000)]), 0.1)
            else:
                response = llrp.RESPONSE_TO[msg.type]
                engine.feed(llrp.message(response, msg.id, llrp.llrp_status()), 0.1)

    for _ in range(6):
        answer()
    assert sent == [1, 21, 3, 20, 24, 22]
    assert engine.ready and engine.capabilities.max_antennas == 4
    engine.feed(llrp.message(llrp.KEEPALIVE, 99), 0.2)
    assert engine.take_output() == llrp.message(llrp.KEEPALIVE_ACK, 99)
    report = llrp.message(llrp.RO_ACCESS_REPORT, 5, llrp.tag_report_data(EPC, 1, -44, 0, 0, 2))
    assert engine.feed(report, 0.3) == [TagReport(EPC, 1, -44.0, 2)]
    engine.stop()
    assert [m.type for m in llrp.MessageFramer().feed(engine.take_output())] == [23, 21, 14]


def test_llrp_engine_fails_clearly():
    busy = llrp.LlrpEngine(config("llrp"))
    busy.start(0.0)
    busy.feed(llrp.reader_event(1, 0, llrp.connection_attempt_event(2)), 0.0)
    assert "another client is already connected" in (busy.failure or "")
    refused = llrp.LlrpEngine(config("llrp", antennas=[1, 8]))
    refused.start(0.0)
    refused.feed(llrp.reader_event(1, 0, llrp.connection_attempt_event(0)), 0.0)
    (msg,) = llrp.MessageFramer().feed(refused.take_output())
    refused.feed(llrp.capabilities_response(msg.id, 4, []), 0.1)
    assert "antennas [8] do not exist" in (refused.failure or "")
    silent = llrp.LlrpEngine(config("llrp"))
    silent.start(0.0)
    silent.tick(1.5)  # greeting skipped: go on
    assert silent.take_output()
    silent.tick(3.0)
    assert "no response to GET_READER_CAPABILITIES" in (silent.failure or "")
    add_refused = llrp.LlrpEngine(config("llrp"))
    add_refused.start(0.0)
    add_refused.feed(llrp.reader_event(1, 0, llrp.connection_attempt_event(0)), 0.0)
    for _ in range(4):
        (msg,) = llrp.MessageFramer().feed(add_refused.take_output())
        if msg.type == llrp.ADD_ROSPEC:
            status = llrp.llrp_status(101, "bad antenna")
            add_refused.feed(llrp.message(llrp.ADD_ROSPEC_RESPONSE, msg.id, status), 0.1)
            break
        reply = llrp.RESPONSE_TO[msg.type]
        if msg.type == llrp.GET_READER_CAPABILITIES:
            add_refused.feed(llrp.capabilities_response(msg.id, 4, []), 0.1)
        else:
            add_refused.feed(llrp.message(reply, msg.id, llrp.llrp_status()), 0.1)
    assert add_refused.failure == "reader refused ADD_ROSPEC: M_FieldError: bad antenna"
