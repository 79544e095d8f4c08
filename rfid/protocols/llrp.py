"""A minimal LLRP 1.0.1 client (and the encoders our simulator shares), written from the standard.

Message: 16 bits (3 reserved, 3 version = 1, 10 type), 32-bit length of the whole message, 32-bit
message ID, then the body. Parameters are TLV (6 reserved bits, 10-bit type, 16-bit length of
the whole parameter) or TV (1 bit set, 7-bit type, a value whose size the type fixes). We parse
strictly by these lengths; an unknown TV type cannot be skipped, so it makes the message bad.

The session: wait for READER_EVENT_NOTIFICATION (ConnectionAttemptEvent success), read the
capabilities (antenna count, transmit power table), delete every ROSpec, set the keepalive, (for
an Impinj search mode: IMPINJ_ENABLE_EXTENSIONS), add our ROSpec (antennas, per-antenna power,
Gen2 session / target or Impinj search mode / population / mode, report trigger), enable and
start it. Then RO_ACCESS_REPORTs carry the tags and each KEEPALIVE is answered with
KEEPALIVE_ACK. On stop: STOP_ROSPEC, DELETE_ROSPEC, CLOSE_CONNECTION.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rfid.config import LlrpReaderConfig
from rfid.protocols.framing import EngineBase
from rfid.reads import TagReport

VERSION = 1
HEADER_LEN = 10
MAX_MESSAGE = 1 << 20

# Message types.
GET_READER_CAPABILITIES = 1
GET_READER_CONFIG = 2
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
GET_READER_CONFIG_RESPONSE = 12
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
DISABLE_ROSPEC = 25
ADD_ROSPEC_RESPONSE = 30
DELETE_ROSPEC_RESPONSE = 31
START_ROSPEC_RESPONSE = 32
STOP_ROSPEC_RESPONSE = 33
ENABLE_ROSPEC_RESPONSE = 34
DISABLE_ROSPEC_RESPONSE = 35
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100
CUSTOM_MESSAGE = 1023
RESPONSE_TO = {
    CUSTOM_MESSAGE: CUSTOM_MESSAGE,  # the only one we send: IMPINJ_ENABLE_EXTENSIONS
    GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE,
    SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
    ADD_ROSPEC: ADD_ROSPEC_RESPONSE,
    DELETE_ROSPEC: DELETE_ROSPEC_RESPONSE,
    START_ROSPEC: START_ROSPEC_RESPONSE,
    STOP_ROSPEC: STOP_ROSPEC_RESPONSE,
    ENABLE_ROSPEC: ENABLE_ROSPEC_RESPONSE,
    DISABLE_ROSPEC: DISABLE_ROSPEC_RESPONSE,
    CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE,
}
MESSAGE_NAMES = {
    CUSTOM_MESSAGE: "IMPINJ_ENABLE_EXTENSIONS",
    GET_READER_CAPABILITIES: "GET_READER_CAPABILITIES",
    SET_READER_CONFIG: "SET_READER_CONFIG",
    ADD_ROSPEC: "ADD_ROSPEC",
    DELETE_ROSPEC: "DELETE_ROSPEC",
    START_ROSPEC: "START_ROSPEC",
    STOP_ROSPEC: "STOP_ROSPEC",
    ENABLE_ROSPEC: "ENABLE_ROSPEC",
    DISABLE_ROSPEC: "DISABLE_ROSPEC",
    CLOSE_CONNECTION: "CLOSE_CONNECTION",
}

# TV parameter types -> value size in bytes.
TV_ANTENNA_ID = 1
TV_FIRST_SEEN_UTC = 2
TV_FIRST_SEEN_UPTIME = 3
TV_LAST_SEEN_UTC = 4
TV_LAST_SEEN_UPTIME = 5
TV_PEAK_RSSI = 6
TV_CHANNEL_INDEX = 7
TV_TAG_SEEN_COUNT = 8
TV_ROSPEC_ID = 9
TV_EPC96 = 13
TV_SIZES = {
    1: 2,
    2: 8,
    3: 8,
    4: 8,
    5: 8,
    6: 1,
    7: 2,
    8: 2,
    9: 4,
    10: 2,
    11: 2,
    12: 2,
    13: 12,
    14: 2,
    15: 2,
    16: 4,
    17: 2,
    18: 4,
    19: 2,
    20: 2,
}

# TLV parameter types.
P_UTC_TIMESTAMP = 128
P_UPTIME = 129
P_GENERAL_DEVICE_CAPABILITIES = 137
P_REGULATORY_CAPABILITIES = 143
P_UHF_BAND_CAPABILITIES = 144
P_TRANSMIT_POWER_LEVEL_ENTRY = 145
P_ROSPEC = 177
P_RO_BOUNDARY_SPEC = 178
P_ROSPEC_START_TRIGGER = 179
P_ROSPEC_STOP_TRIGGER = 182
P_AISPEC = 183
P_AISPEC_STOP_TRIGGER = 184
P_INVENTORY_PARAMETER_SPEC = 186
P_KEEPALIVE_SPEC = 220
P_ANTENNA_CONFIGURATION = 222
P_RF_TRANSMITTER = 224
P_EVENTS_AND_REPORTS = 226
P_RO_REPORT_SPEC = 237
P_TAG_REPORT_CONTENT_SELECTOR = 238
P_TAG_REPORT_DATA = 240
P_EPC_DATA = 241
P_READER_EVENT_NOTIFICATION_DATA = 246
P_READER_EXCEPTION_EVENT = 252
P_ANTENNA_EVENT = 255
P_CONNECTION_ATTEMPT_EVENT = 256
P_CONNECTION_CLOSE_EVENT = 257
P_LLRP_STATUS = 287
P_C1G2_INVENTORY_COMMAND = 330
P_C1G2_RF_CONTROL = 335
P_C1G2_SINGULATION_CONTROL = 336
P_C1G2_STATE_AWARE_ACTION = 337
P_CUSTOM = 1023

# Impinj Octane extensions (IANA private enterprise number 25882): the custom message that
# switches them on for this connection, its response, and the inventory search mode parameter.
IMPINJ_VENDOR = 25882
IMPINJ_ENABLE_EXTENSIONS = 21
IMPINJ_ENABLE_EXTENSIONS_RESPONSE = 22
IMPINJ_INVENTORY_SEARCH_MODE = 23
IMPINJ_SEARCH_MODES = {
    "single_target": 1,
    "dual_target": 2,
    "single_target_with_suppression": 3,
    "single_target_b_to_a": 5,
    "dual_target_b_to_a_select": 6,
}

PROTOCOL_C1G2 = 1
RO_REPORT_UPON_N_TAGS_OR_END_OF_ROSPEC = 2
# TagReportContentSelector: AntennaID, PeakRSSI, FirstSeen, LastSeen, TagSeenCount.
CONTENT_SELECTOR = (1 << 12) | (1 << 10) | (1 << 9) | (1 << 8) | (1 << 7)
STATUS_NAMES = {
    0: "M_Success",
    100: "M_ParameterError",
    101: "M_FieldError",
    102: "M_UnexpectedParameter",
    103: "M_MissingParameter",
    104: "M_DuplicateParameter",
    105: "M_OverflowParameter",
    106: "M_OverflowField",
    107: "M_UnknownParameter",
    108: "M_UnknownField",
    109: "M_UnsupportedMessage",
    110: "M_UnsupportedVersion",
    111: "M_UnsupportedParameter",
    200: "P_ParameterError",
    201: "P_FieldError",
    202: "P_UnexpectedParameter",
    203: "P_MissingParameter",
    204: "P_DuplicateParameter",
    205: "P_OverflowParameter",
    206: "P_OverflowField",
    207: "P_UnknownParameter",
    208: "P_UnknownField",
    209: "P_UnsupportedParameter",
    300: "A_Invalid",
    301: "A_OutOfRange",
    401: "R_DeviceError",
}
CONNECTION_ATTEMPT_STATUS = {
    0: "success",
    1: "a reader-initiated connection already exists",
    2: "another client is already connected (close it: only one LLRP client at a time)",
    3: "refused for a reason other than an existing connection",
    4: "another connection was attempted",
}


class LlrpError(ValueError):
    """A message or parameter that breaks the framing rules."""


@dataclass(frozen=True, slots=True)
class Param:
    type: int
    body: bytes  # the value, without the parameter header
    tv: bool = False

    def children(self, offset: int = 0) -> list[Param]:
        return parse_params(self.body[offset:])


@dataclass(frozen=True, slots=True)
class Message:
    type: int
    id: int
    body: bytes


# --- encoding ----------------------------------------------------------------------------------


def message(msg_type: int, msg_id: int, body: bytes = b"") -> bytes:
    return struct.pack(">HII", VERSION << 10 | msg_type, HEADER_LEN + len(body), msg_id) + body


def tlv(ptype: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def tv(ptype: int, value: bytes) -> bytes:
    if TV_SIZES.get(ptype) != len(value):
        raise ValueError(f"TV type {ptype} takes {TV_SIZES.get(ptype)} bytes")
    return bytes([0x80 | ptype]) + value


def llrp_status(code: int = 0, description: str = "") -> bytes:
    text = description.encode()
    return tlv(P_LLRP_STATUS, struct.pack(">HH", code, len(text)), text)


def tag_report_data(
    epc: bytes,
    antenna: int,
    rssi_dbm: int | None,
    first_seen_us: int,
    last_seen_us: int,
    seen_count: int,
) -> bytes:
    epc_param = (
        tv(TV_EPC96, epc)
        if len(epc) == 12
        else tlv(P_EPC_DATA, struct.pack(">H", len(epc) * 8), epc)
    )
    parts = [epc_param, tv(TV_ANTENNA_ID, struct.pack(">H", antenna))]
    if rssi_dbm is not None:
        parts.append(tv(TV_PEAK_RSSI, struct.pack(">b", rssi_dbm)))
    parts += [
        tv(TV_FIRST_SEEN_UTC, struct.pack(">Q", first_seen_us)),
        tv(TV_LAST_SEEN_UTC, struct.pack(">Q", last_seen_us)),
        tv(TV_TAG_SEEN_COUNT, struct.pack(">H", seen_count)),
    ]
    return tlv(P_TAG_REPORT_DATA, *parts)


def reader_event(msg_id: int, timestamp_us: int, *events: bytes) -> bytes:
    data = tlv(
        P_READER_EVENT_NOTIFICATION_DATA,
        tlv(P_UTC_TIMESTAMP, struct.pack(">Q", timestamp_us)),
        *events,
    )
    return message(READER_EVENT_NOTIFICATION, msg_id, data)


def connection_attempt_event(status: int = 0) -> bytes:
    return tlv(P_CONNECTION_ATTEMPT_EVENT, struct.pack(">H", status))


def capabilities_response(
    msg_id: int, max_antennas: int, power_table: list[tuple[int, int]], model: str = "SIM"
) -> bytes:
    """GET_READER_CAPABILITIES_RESPONSE with general and regulatory capabilities.

    `power_table`: (index, dBm x 100) entries.
    """
    firmware = model.encode()
    general = tlv(
        P_GENERAL_DEVICE_CAPABILITIES,
        struct.pack(">HHII", max_antennas, 0x4000, 25882, 1),
        struct.pack(">H", len(firmware)),
        firmware,
    )
    entries = [
        tlv(P_TRANSMIT_POWER_LEVEL_ENTRY, struct.pack(">Hh", index, value))
        for index, value in power_table
    ]
    regulatory = tlv(
        P_REGULATORY_CAPABILITIES,
        struct.pack(">HH", 840, 1),
        tlv(P_UHF_BAND_CAPABILITIES, *entries),
    )
    return message(GET_READER_CAPABILITIES_RESPONSE, msg_id, llrp_status() + general + regulatory)


# --- decoding ----------------------------------------------------------------------------------


def parse_params(data: bytes) -> list[Param]:
    """Every parameter in `data`, strictly by their lengths; LlrpError if they do not add up."""
    params, offset = [], 0
    while offset < len(data):
        first = data[offset]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None:
                raise LlrpError(f"unknown TV parameter type {ptype}")
            end = offset + 1 + size
            if end > len(data):
                raise LlrpError(f"TV parameter {ptype} cut short")
            params.append(Param(ptype, data[offset + 1 : end], tv=True))
        else:
            if offset + 4 > len(data):
                raise LlrpError("parameter header cut short")
            ptype, length = struct.unpack_from(">HH", data, offset)
            ptype &= 0x3FF
            end = offset + length
            if length < 4 or end > len(data):
                raise LlrpError(f"parameter {ptype} length {length} does not fit")
            params.append(Param(ptype, data[offset + 4 : end]))
        offset = end
    return params


def find(params: list[Param], ptype: int) -> Param | None:
    return next((p for p in params if p.type == ptype), None)


def parse_status(param: Param | None) -> tuple[int, str]:
    if param is None or len(param.body) < 4:
        return -1, "no LLRPStatus"
    code, length = struct.unpack_from(">HH", param.body)
    text = param.body[4 : 4 + length].decode("utf-8", "replace")
    return code, text


def status_text(code: int, description: str) -> str:
    name = STATUS_NAMES.get(code, f"status {code}")
    return f"{name}: {description}" if description else name


class MessageFramer:
    """Cuts the TCP stream into messages; a header that cannot be LLRP desynchronises the stream
    for good (TCP does not lose bytes), which `error` reports so the session reconnects."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self.dropped_bytes = 0
        self.error: str | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        if self.error is not None:
            self.dropped_bytes += len(data)
            return []
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER_LEN:
            word, length, msg_id = struct.unpack_from(">HII", self._buffer)
            version, msg_type = (word >> 10) & 0x7, word & 0x3FF
            if version != VERSION or not HEADER_LEN <= length <= self.max_message:
                self.error = (
                    f"not an LLRP {VERSION} message header: {bytes(self._buffer[:10]).hex(' ')}"
                )
                self.dropped_bytes += len(self._buffer)
                self._buffer.clear()
                break
            if len(self._buffer) < length:
                break
            messages.append(Message(msg_type, msg_id, bytes(self._buffer[HEADER_LEN:length])))
            del self._buffer[:length]
        return messages


def parse_tag_reports(body: bytes) -> list[TagReport]:
    """RO_ACCESS_REPORT body -> tag reports; LlrpError for a malformed report."""
    reports = []
    for param in parse_params(body):
        if param.type != P_TAG_REPORT_DATA:
            continue
        reports.append(_tag_report(param.children()))
    return reports


def _tag_report(fields: list[Param]) -> TagReport:
    epc: bytes | None = None
    antenna, rssi, count = 0, None, 1
    first = last = None
    for p in fields:
        if p.tv and p.type == TV_EPC96:
            epc = p.body
        elif not p.tv and p.type == P_EPC_DATA:
            if len(p.body) < 2:
                raise LlrpError("EPCData without its bit count")
            bits = struct.unpack_from(">H", p.body)[0]
            epc = p.body[2 : 2 + (bits + 7) // 8]
            if len(epc) * 8 < bits:
                raise LlrpError(f"EPCData says {bits} bits but holds {len(p.body) - 2} bytes")
        elif p.tv and p.type == TV_ANTENNA_ID:
            antenna = struct.unpack(">H", p.body)[0]
        elif p.tv and p.type == TV_PEAK_RSSI:
            rssi = float(struct.unpack(">b", p.body)[0])
        elif p.tv and p.type == TV_TAG_SEEN_COUNT:
            count = struct.unpack(">H", p.body)[0]
        elif p.tv and p.type in (TV_FIRST_SEEN_UTC, TV_FIRST_SEEN_UPTIME):
            first = struct.unpack(">Q", p.body)[0]
        elif p.tv and p.type in (TV_LAST_SEEN_UTC, TV_LAST_SEEN_UPTIME):
            last = struct.unpack(">Q", p.body)[0]
    if epc is None:
        raise LlrpError("TagReportData without an EPC")
    span = (last - first) / 1e6 if first is not None and last is not None and last >= first else 0
    return TagReport(epc, antenna, rssi, max(1, count), min(span, 3600.0))


@dataclass(slots=True)
class Capabilities:
    max_antennas: int = 0
    manufacturer: int = 0
    model: int = 0
    firmware: str = ""
    power_table: dict[int, int] = field(default_factory=dict)  # index -> dBm x 100

    def power_index(self, dbm: float) -> int | None:
        """The highest table entry not above `dbm` (or the lowest entry if all are above)."""
        if not self.power_table:
            return None
        target = round(dbm * 100)
        fitting = [(v, i) for i, v in self.power_table.items() if v <= target]
        if fitting:
            return max(fitting)[1]
        return min((v, i) for i, v in self.power_table.items())[1]


def parse_capabilities(params: list[Param]) -> Capabilities:
    caps = Capabilities()
    general = find(params, P_GENERAL_DEVICE_CAPABILITIES)
    if general is not None and len(general.body) >= 14:
        caps.max_antennas, _, caps.manufacturer, caps.model = struct.unpack_from(
            ">HHII", general.body
        )
        length = struct.unpack_from(">H", general.body, 12)[0]
        caps.firmware = general.body[14 : 14 + length].decode("utf-8", "replace")
    regulatory = find(params, P_REGULATORY_CAPABILITIES)
    if regulatory is not None:
        band = find(regulatory.children(4), P_UHF_BAND_CAPABILITIES)
        if band is not None:
            for entry in band.children():
                if entry.type == P_TRANSMIT_POWER_LEVEL_ENTRY and len(entry.body) >= 4:
                    index, value = struct.unpack_from(">Hh", entry.body)
                    caps.power_table[index] = value
    return caps


# --- requests the client sends -----------------------------------------------------------------


def build_rospec(config: LlrpReaderConfig, caps: Capabilities) -> bytes:
    """The ROSpec TLV for ADD_ROSPEC: null start/stop triggers (we start and stop it), one AISpec
    over the configured antennas running until stopped, reports per `report_every_n_tags`."""
    boundary = tlv(
        P_RO_BOUNDARY_SPEC,
        tlv(P_ROSPEC_START_TRIGGER, b"\x00"),
        tlv(P_ROSPEC_STOP_TRIGGER, b"\x00", struct.pack(">I", 0)),
    )
    antenna_configs = [_antenna_configuration(config, caps, a) for a in config.antennas]
    inventory = tlv(
        P_INVENTORY_PARAMETER_SPEC, struct.pack(">HB", 1, PROTOCOL_C1G2), *antenna_configs
    )
    aispec = tlv(
        P_AISPEC,
        struct.pack(">H", len(config.antennas)),
        b"".join(struct.pack(">H", a) for a in config.antennas),
        tlv(P_AISPEC_STOP_TRIGGER, b"\x00", struct.pack(">I", 0)),
        inventory,
    )
    report = tlv(
        P_RO_REPORT_SPEC,
        struct.pack(">BH", RO_REPORT_UPON_N_TAGS_OR_END_OF_ROSPEC, config.report_every_n_tags),
        tlv(P_TAG_REPORT_CONTENT_SELECTOR, struct.pack(">H", CONTENT_SELECTOR)),
    )
    return tlv(P_ROSPEC, struct.pack(">IBB", config.rospec_id, 0, 0), boundary, aispec, report)


def _antenna_configuration(config: LlrpReaderConfig, caps: Capabilities, antenna: int) -> bytes:
    parts = [struct.pack(">H", antenna)]
    dbm = config.antenna_power_dbm.get(antenna)
    index = None if dbm is None else caps.power_index(dbm)
    if index is not None:
        parts.append(
            tlv(
                P_RF_TRANSMITTER,
                struct.pack(">HHH", config.hop_table_id, config.channel_index, index),
            )
        )
    state_aware = config.target is not None
    command_parts = [bytes([0x80 if state_aware else 0x00])]
    if config.mode_index is not None:
        command_parts.append(tlv(P_C1G2_RF_CONTROL, struct.pack(">HH", config.mode_index, 0)))
    singulation = [struct.pack(">BHI", config.session << 6, config.tag_population, 0)]
    if state_aware:
        # I: 0 State_A / 1 State_B; S: 1 Not_SL (tags nobody has Selected).
        inventoried = 0x80 if config.target == "B" else 0x00
        singulation.append(tlv(P_C1G2_STATE_AWARE_ACTION, bytes([inventoried | 0x40])))
    command_parts.append(tlv(P_C1G2_SINGULATION_CONTROL, *singulation))
    if config.impinj_search_mode is not None:
        mode = IMPINJ_SEARCH_MODES[config.impinj_search_mode]
        command_parts.append(impinj_custom(IMPINJ_INVENTORY_SEARCH_MODE, struct.pack(">H", mode)))
    parts.append(tlv(P_C1G2_INVENTORY_COMMAND, *command_parts))
    return tlv(P_ANTENNA_CONFIGURATION, *parts)


def impinj_custom(subtype: int, value: bytes) -> bytes:
    """An Impinj Custom parameter (TLV 1023: vendor, subtype, value)."""
    return tlv(P_CUSTOM, struct.pack(">II", IMPINJ_VENDOR, subtype), value)


def impinj_message_body(subtype: int, rest: bytes = b"") -> bytes:
    """The body of an Impinj CUSTOM_MESSAGE: vendor (32 bits), message subtype (8 bits), data."""
    return struct.pack(">IB", IMPINJ_VENDOR, subtype) + rest


def set_reader_config_body(config: LlrpReaderConfig) -> bytes:
    keepalive = tlv(P_KEEPALIVE_SPEC, struct.pack(">BI", 1, round(config.keepalive_s * 1000)))
    return b"\x00" + keepalive + tlv(P_EVENTS_AND_REPORTS, b"\x00")


# --- the session -------------------------------------------------------------------------------


class LlrpEngine(EngineBase):
    def __init__(self, config: LlrpReaderConfig) -> None:
        super().__init__()
        self.closed_by_reader = True  # CLOSE_CONNECTION_RESPONSE, then the reader closes
        self.config = config
        self.framer = MessageFramer()
        self.capabilities = Capabilities()
        self._next_id = 1
        self._steps: deque[tuple[int, Callable[[], bytes]]] = deque()
        self._awaiting: tuple[int, int, str] | None = None  # (response type, id, request name)
        self._sent_at = 0.0
        self._connected_at = 0.0
        self._greeted = False
        self.keepalives = 0
        self.reader_events: list[str] = []

    @property
    def dropped_bytes(self) -> int:
        return self.framer.dropped_bytes

    def start(self, now: float) -> None:
        self._connected_at = now
        rospec_id = struct.pack(">I", self.config.rospec_id)
        self._steps.extend(
            [
                (GET_READER_CAPABILITIES, lambda: b"\x00"),
                (DELETE_ROSPEC, lambda: struct.pack(">I", 0)),
                (SET_READER_CONFIG, lambda: set_reader_config_body(self.config)),
            ]
        )
        if self.config.impinj_search_mode is not None:
            # A reader without the extensions refuses this: the error names the message.
            enable = impinj_message_body(IMPINJ_ENABLE_EXTENSIONS, struct.pack(">I", 0))
            self._steps.append((CUSTOM_MESSAGE, lambda: enable))
        self._steps.extend(
            [
                (ADD_ROSPEC, lambda: build_rospec(self.config, self.capabilities)),
                (ENABLE_ROSPEC, lambda: rospec_id),
                (START_ROSPEC, lambda: rospec_id),
            ]
        )

    def stop(self) -> None:
        rospec_id = struct.pack(">I", self.config.rospec_id)
        self._steps.clear()
        if self.ready:
            self._request(STOP_ROSPEC, rospec_id, 0.0)
            self._request(DELETE_ROSPEC, rospec_id, 0.0)
        self._request(CLOSE_CONNECTION, b"", 0.0)
        self.ready = False

    def tick(self, now: float) -> None:
        if self.failure is not None:
            return
        if not self._greeted:
            if now - self._connected_at <= self.config.reply_timeout_s:
                return
            # Some readers skip the greeting: go on, but say so.
            self.last_problem = "no READER_EVENT_NOTIFICATION after connecting"
            self._greeted = True
        if self._awaiting is not None:
            if now - self._sent_at > self.config.reply_timeout_s:
                self._fail(
                    f"no response to {self._awaiting[2]} within {self.config.reply_timeout_s:g} s"
                )
            return
        if self._steps:
            msg_type, build = self._steps.popleft()
            self._request(msg_type, build(), now)

    def _request(self, msg_type: int, body: bytes, now: float) -> None:
        msg_id = self._new_id()
        self._send(message(msg_type, msg_id, body))
        self._awaiting = (RESPONSE_TO[msg_type], msg_id, MESSAGE_NAMES[msg_type])
        self._sent_at = now

    def _new_id(self) -> int:
        msg_id = self._next_id
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return msg_id

    def feed(self, data: bytes, now: float) -> list[TagReport]:
        reports: list[TagReport] = []
        for msg in self.framer.feed(data):
            try:
                reports += self._on_message(msg, now)
            except (LlrpError, struct.error) as exc:
                self._bad(f"bad message type {msg.type}: {exc}")
        if self.framer.error is not None:
            self._fail(self.framer.error)
        return reports

    def _on_message(self, msg: Message, now: float) -> list[TagReport]:
        if msg.type == RO_ACCESS_REPORT:
            reports = parse_tag_reports(msg.body)
            self.frames += 1
            return reports
        if msg.type == KEEPALIVE:
            self.frames += 1
            self.keepalives += 1
            self._send(message(KEEPALIVE_ACK, msg.id))
            return []
        if msg.type == READER_EVENT_NOTIFICATION:
            self._on_event(parse_params(msg.body))
            self.frames += 1
        elif self._awaiting is not None and msg.type in (self._awaiting[0], ERROR_MESSAGE):
            self._on_response(msg)
            self.frames += 1
        else:
            self.frames += 1  # a valid message we do not need (custom, GET_READER_CONFIG...)
        self.tick(now)
        return []

    def _on_response(self, msg: Message) -> None:
        assert self._awaiting is not None
        _, _, name = self._awaiting
        self._awaiting = None
        body = msg.body
        if msg.type == CUSTOM_MESSAGE:
            if body[:5] != impinj_message_body(IMPINJ_ENABLE_EXTENSIONS_RESPONSE):
                self._fail(f"unexpected custom reply to {name}: {body[:5].hex(' ')}")
                return
            body = body[5:]
        params = parse_params(body)
        code, description = parse_status(find(params, P_LLRP_STATUS))
        if msg.type == ERROR_MESSAGE or code != 0:
            problem = f"reader refused {name}: {status_text(code, description)}"
            if name == "DELETE_ROSPEC":
                self.last_problem = problem  # nothing to delete is fine
                return
            self._fail(problem)
            return
        if msg.type == GET_READER_CAPABILITIES_RESPONSE:
            self.capabilities = parse_capabilities(params)
            self._check_antennas()
        elif msg.type == START_ROSPEC_RESPONSE:
            self.ready = True

    def _check_antennas(self) -> None:
        limit = self.capabilities.max_antennas
        too_high = [a for a in self.config.antennas if limit and a > limit]
        if too_high:
            self._fail(f"reader has {limit} antenna ports; antennas {too_high} do not exist")

    def _on_event(self, params: list[Param]) -> None:
        data = find(params, P_READER_EVENT_NOTIFICATION_DATA)
        if data is None:
            raise LlrpError("READER_EVENT_NOTIFICATION without its data")
        for event in data.children():
            for text in _describe_event(event):
                self.reader_events.append(text)
                self.last_problem = text
            if event.type == P_CONNECTION_ATTEMPT_EVENT and len(event.body) >= 2:
                status = struct.unpack_from(">H", event.body)[0]
                if status != 0:
                    self._fail(
                        "reader refused the connection: "
                        + CONNECTION_ATTEMPT_STATUS.get(status, f"status {status}")
                    )
                self._greeted = True
            elif event.type == P_CONNECTION_CLOSE_EVENT:
                self._fail("reader closed the connection")


def _describe_event(event: Param) -> Iterator[str]:
    if event.type == P_ANTENNA_EVENT and len(event.body) >= 3:
        kind, antenna = struct.unpack_from(">BH", event.body)
        yield f"antenna {antenna} {'connected' if kind else 'disconnected'}"
    elif event.type == P_READER_EXCEPTION_EVENT and len(event.body) >= 2:
        length = struct.unpack_from(">H", event.body)[0]
        yield "reader exception: " + event.body[2 : 2 + length].decode("utf-8", "replace")
