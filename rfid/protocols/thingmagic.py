"""ThingMagic Mercury serial (M6e family, Nano, Micro, USB Pro).

Request `FF Len Opcode Data CRC-hi CRC-lo`, reply `FF Len Opcode Status(2) Data CRC-hi CRC-lo`;
Len counts Data only; the CRC (ThingMagic's own, see framing.crc_thingmagic) covers Len..Data.

A cycle: Read Tag Multiple (0x22) for `inventory_ms`, then Get Tag Buffer (0x29) with metadata
(read count, RSSI, antenna), then Clear Tag Buffer (0x2A). Status 0x0400 "no tags found" ends a
cycle normally; other non-zero status words stop the session with their name.
"""

from __future__ import annotations

from collections import deque

from rfid.config import ThingMagicReaderConfig
from rfid.protocols.framing import EngineBase, LengthFramer, crc_thingmagic
from rfid.reads import TagReport

SOH = 0xFF
OP_VERSION = 0x03
OP_READ_TAG_MULTIPLE = 0x22
OP_GET_TAG_BUFFER = 0x29
OP_CLEAR_TAG_BUFFER = 0x2A
OP_SET_ANTENNA = 0x91
OP_SET_READ_POWER = 0x92
OP_SET_PROTOCOL = 0x93
OP_SET_PROTOCOL_PARAM = 0x9B
PROTOCOL_GEN2 = 0x05
GEN2_SESSION = 0x00
GEN2_TARGET = 0x01
# Target as MercuryAPI writes it: two bytes.
TARGET_CODES = {"A": b"\x01\x00", "B": b"\x01\x01", "AB": b"\x00\x00", "BA": b"\x00\x01"}

STATUS_OK = 0x0000
NO_TAGS_FOUND = 0x0400
# Status words from MercuryAPI's status table: name the problem the way the manual does.
STATUS_TEXT = {
    0x0100: "wrong number of data bytes in the command",
    0x0101: "invalid opcode",
    0x0102: "unimplemented opcode",
    0x0103: "transmit power too high",
    0x0104: "invalid frequency",
    0x0105: "invalid parameter value",
    0x0106: "transmit power too low",
    0x0109: "unimplemented feature",
    0x010A: "invalid baud rate",
    0x010B: "invalid region: set the region first",
    0x010C: "invalid licence key",
    0x0200: "bootloader: application image CRC invalid (module in bootloader mode)",
    0x0201: "bootloader: invalid application end address",
    0x0400: "no tags found",
    0x0401: "no protocol defined: set Gen2 first",
    0x0402: "invalid protocol specified",
    0x0404: "protocol: no data read",
    0x0405: "analogue front end not on",
    0x0500: "invalid frequency for the region",
    0x0501: "channel occupied",
    0x0502: "transmitter already on",
    0x0503: "antenna not connected: check the antenna cable or the antennas setting",
    0x0504: "temperature exceeds limits: the module is too hot",
    0x0505: "high return loss: antenna mismatch or metal close to the antenna",
    0x0507: "invalid antenna configuration",
    0x0600: "tag buffer: not enough tags available",
    0x0601: "tag buffer full",
    0x7F01: "firmware assertion failed: power-cycle the module",
}
# Metadata flags of Get Tag Buffer, in the order their fields appear, with their sizes.
META_READ_COUNT = 0x0001
META_RSSI = 0x0002
META_ANTENNA = 0x0004
_META_FIELDS = [
    (0x0001, 1),  # read count
    (0x0002, 1),  # RSSI, signed dBm
    (0x0004, 1),  # antenna (tx << 4 | rx on some modules)
    (0x0008, 3),  # frequency kHz
    (0x0010, 4),  # timestamp ms
    (0x0020, 2),  # phase
    (0x0040, 1),  # protocol
    (0x0080, -1),  # data: 2-byte bit length then data
    (0x0100, 1),  # GPIO status
]
METADATA = META_READ_COUNT | META_RSSI | META_ANTENNA
MAX_FRAME = 7 + 255


def request(opcode: int, data: bytes = b"") -> bytes:
    body = bytes([len(data), opcode]) + data
    return bytes([SOH]) + body + crc_thingmagic(body).to_bytes(2, "big")


def reply(opcode: int, status: int, data: bytes = b"") -> bytes:
    body = bytes([len(data), opcode]) + status.to_bytes(2, "big") + data
    return bytes([SOH]) + body + crc_thingmagic(body).to_bytes(2, "big")


def _valid(frame: bytes) -> bool:
    return crc_thingmagic(frame[1:-2]) == int.from_bytes(frame[-2:], "big")


def new_reply_framer() -> LengthFramer:
    return LengthFramer(
        header_len=2,
        length_of=lambda h: h[1] + 7,
        valid=_valid,
        start=SOH,
        max_buffer=2 * MAX_FRAME,
    )


def new_request_framer() -> LengthFramer:
    """For the simulator: requests have no status word."""
    return LengthFramer(
        header_len=2,
        length_of=lambda h: h[1] + 5,
        valid=_valid,
        start=SOH,
        max_buffer=2 * MAX_FRAME,
    )


def status_text(status: int) -> str:
    return STATUS_TEXT.get(status, "unknown status")


def antenna_number(value: int) -> int:
    """Modules report `tx << 4 | rx`; monostatic ports have tx == rx."""
    return value & 0x0F if value > 0x0F else value


def parse_tag_buffer(data: bytes) -> list[TagReport] | str:
    """Get Tag Buffer reply data: flags(2) options(1) count(1) then per tag metadata + EPC."""
    if len(data) < 4:
        return f"tag buffer reply too short ({len(data)} bytes)"
    flags, count, offset = int.from_bytes(data[0:2], "big"), data[3], 4
    reports = []
    for _ in range(count):
        fields: dict[int, bytes] = {}
        for flag, size in _META_FIELDS:
            if not flags & flag:
                continue
            if size < 0:
                if offset + 2 > len(data):
                    return "tag buffer truncated in metadata"
                size = 2 + (int.from_bytes(data[offset : offset + 2], "big") + 7) // 8
            if offset + size > len(data):
                return "tag buffer truncated in metadata"
            fields[flag] = data[offset : offset + size]
            offset += size
        if offset + 2 > len(data):
            return "tag buffer truncated before the EPC length"
        bits = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        length = bits // 8
        if bits % 8 or length < 4 or offset + length > len(data):
            return f"tag EPC length {bits} bits does not fit the reply"
        epc = data[offset + 2 : offset + length - 2]  # without PC word and CRC
        offset += length
        rssi = fields.get(META_RSSI)
        reports.append(
            TagReport(
                epc=epc,
                antenna=antenna_number(fields[META_ANTENNA][0]) if META_ANTENNA in fields else 0,
                rssi_dbm=float(int.from_bytes(rssi, "big", signed=True)) if rssi else None,
                seen_count=fields[META_READ_COUNT][0] if META_READ_COUNT in fields else 1,
            )
        )
    if offset != len(data):
        return f"{len(data) - offset} bytes left after {count} tags"
    return reports


def encode_tag_buffer(tags: list[TagReport], flags: int = METADATA) -> bytes:
    """For tests and the simulator: Get Tag Buffer reply data for `tags` (PC word computed)."""
    out = bytearray(flags.to_bytes(2, "big") + b"\x00" + bytes([len(tags)]))
    for tag in tags:
        if flags & META_READ_COUNT:
            out.append(min(255, tag.seen_count))
        if flags & META_RSSI:
            out += round(tag.rssi_dbm or 0).to_bytes(1, "big", signed=True)
        if flags & META_ANTENNA:
            out.append(tag.antenna << 4 | tag.antenna)
        pc = (len(tag.epc) // 2) << 11
        out += ((len(tag.epc) + 4) * 8).to_bytes(2, "big") + pc.to_bytes(2, "big") + tag.epc
        out += b"\x00\x00"  # tag CRC (not checked here)
    return bytes(out)


class ThingMagicEngine(EngineBase):
    def __init__(self, config: ThingMagicReaderConfig) -> None:
        super().__init__()
        self.config = config
        self.framer = new_reply_framer()
        self._queue: deque[tuple[int, bytes]] = deque(self._setup_commands())
        self._awaiting: int | None = None
        self._sent_at = 0.0
        self._next_cycle = 0.0
        self._expected_tags: int | None = None
        self._read_tags = 0
        self.missed_replies = 0

    def _setup_commands(self) -> list[tuple[int, bytes]]:
        config = self.config
        commands = [(OP_SET_PROTOCOL, bytes([0x00, PROTOCOL_GEN2]))]
        ports = b"".join(bytes([a, a]) for a in config.antennas)
        commands.append((OP_SET_ANTENNA, b"\x02" + ports))
        if config.read_power_dbm is not None:
            centi = round(config.read_power_dbm * 100)
            commands.append((OP_SET_READ_POWER, centi.to_bytes(2, "big", signed=True)))
        if config.session is not None:
            commands.append(
                (OP_SET_PROTOCOL_PARAM, bytes([PROTOCOL_GEN2, GEN2_SESSION, config.session]))
            )
        if config.target is not None:
            target = TARGET_CODES[config.target]
            commands.append((OP_SET_PROTOCOL_PARAM, bytes([PROTOCOL_GEN2, GEN2_TARGET]) + target))
        commands.append((OP_CLEAR_TAG_BUFFER, b""))
        return commands

    @property
    def dropped_bytes(self) -> int:
        return self.framer.dropped_bytes

    def start(self, now: float) -> None:
        self._next_cycle = now
        self.tick(now)

    def stop(self) -> None:
        self._queue.clear()

    def _timeout_for(self, opcode: int) -> float:
        extra = self.config.inventory_ms / 1000 if opcode == OP_READ_TAG_MULTIPLE else 0.0
        return self.config.reply_timeout_s + extra

    def tick(self, now: float) -> None:
        if self._awaiting is not None:
            if now - self._sent_at <= self._timeout_for(self._awaiting):
                return
            self.missed_replies += 1
            self.last_problem = f"no reply to opcode 0x{self._awaiting:02X}"
            self.framer.reset()
            self._awaiting = None
            self._queue.clear()
            self._next_cycle = now
        if not self._queue and now >= self._next_cycle:
            pause = 0.0 if self.config.mode == "continuous" else self.config.poll_interval_s
            self._next_cycle = now + pause
            timeout = self.config.inventory_ms.to_bytes(2, "big")
            self._queue.append((OP_READ_TAG_MULTIPLE, timeout))
        if self._queue:
            opcode, data = self._queue.popleft()
            self._send(request(opcode, data))
            self._awaiting, self._sent_at = opcode, now

    def feed(self, data: bytes, now: float) -> list[TagReport]:
        reports: list[TagReport] = []
        frames = self.framer.feed(data)
        if self.framer.rejected:
            self.bad_frames += self.framer.rejected
            self.last_problem = "frame with a bad CRC"
            self.framer.rejected = 0
        for frame in frames:
            reports += self._on_frame(frame, now)
        return reports

    def _on_frame(self, frame: bytes, now: float) -> list[TagReport]:
        if len(frame) < 7:
            self._bad(f"reply too short: {frame.hex(' ')}")
            return []
        opcode, status, data = frame[2], int.from_bytes(frame[3:5], "big"), frame[5:-2]
        if opcode != self._awaiting:
            self._bad(f"reply to opcode 0x{opcode:02X} while waiting for another")
            return []
        self.frames += 1
        self._awaiting = None
        reports: list[TagReport] = []
        if opcode == OP_READ_TAG_MULTIPLE:
            self._after_inventory(status, data)
        elif status != STATUS_OK:
            self._fail(
                f"opcode 0x{opcode:02X} failed: status 0x{status:04X} ({status_text(status)})"
            )
        elif opcode == OP_GET_TAG_BUFFER:
            reports = self._after_tag_buffer(data)
        self.tick(now)
        return reports

    def _after_inventory(self, status: int, data: bytes) -> None:
        if status == NO_TAGS_FOUND:
            self.ready = True
            return
        if status != STATUS_OK:
            self._fail(f"inventory failed: status 0x{status:04X} ({status_text(status)})")
            return
        self.ready = True
        # 1 byte (count) on older firmware; option, search flags and a count on newer.
        self._expected_tags = data[-1] if len(data) in (1, 4) else None
        self._read_tags = 0
        self._queue.append((OP_GET_TAG_BUFFER, METADATA.to_bytes(2, "big") + b"\x00"))

    def _after_tag_buffer(self, data: bytes) -> list[TagReport]:
        tags = parse_tag_buffer(data)
        if isinstance(tags, str):
            self.frames -= 1
            self._bad(tags)
            self._queue.append((OP_CLEAR_TAG_BUFFER, b""))
            return []
        self._read_tags += len(tags)
        more = (
            self._expected_tags is not None
            and len(tags) > 0
            and self._read_tags < self._expected_tags
        )
        self._queue.append(
            (OP_GET_TAG_BUFFER, METADATA.to_bytes(2, "big") + b"\x00")
            if more
            else (OP_CLEAR_TAG_BUFFER, b"")
        )
        return tags
