"""Chafon / UHFReader18 / ZK-RFID102 serial readers.

Command `Len Adr Cmd Data CRC-lo CRC-hi`, reply `Len Adr reCmd Status Data CRC-lo CRC-hi`; Len
counts the bytes after itself; CRC-16/MCRF4XX over everything before it (so over a whole frame it
is 0). Inventory (0x01) replies carry `Ant Num` and per tag `EPCLen EPC`, on some firmwares
followed by one more byte (read as RSSI by some); we tell the two layouts apart by the length
fields alone, never by fixed offsets. A multi-tag reply can fit both (without the byte, the next
EPC's first byte can pass for a length): the engine then reads it by the layout an unambiguous
reply of this reader showed (a one-tag reply always is), or by `rssi_byte` when that says the
byte is there, and otherwise refuses it rather than guess a wrong EPC.

Status 0x01 inventory done, 0x02 scan time overflowed (done, some tags may be missing), 0x03 more
frames follow, 0x04 the reader's buffer is full.
"""

from __future__ import annotations

from typing import Literal

from rfid.config import ChafonReaderConfig
from rfid.protocols.framing import EngineBase, LengthFramer, crc16_mcrf4xx
from rfid.reads import TagReport

CMD_INVENTORY = 0x01
CMD_READER_INFO = 0x21
CMD_SET_SCAN_TIME = 0x25
CMD_SET_POWER = 0x2F

STATUS_OK = 0x00
INVENTORY_DONE = 0x01
SCAN_TIME_OVERFLOW = 0x02
MORE_DATA = 0x03
BUFFER_FULL = 0x04
_INVENTORY_STATUSES = {INVENTORY_DONE, SCAN_TIME_OVERFLOW, MORE_DATA, BUFFER_FULL}
STATUS_TEXT = {
    0x00: "success",
    0x01: "inventory done",
    0x02: "inventory scan time overflowed (some tags may be missing: raise scan_time_100ms)",
    0x03: "more data follows",
    0x04: "reader buffer full",
    0x05: "access password error",
    0x09: "kill password error",
    0x0A: "kill password is zero",
    0x0B: "tag does not support the command",
    0x0C: "access password is zero",
    0x0D: "tag is protected",
    0x0E: "tag is unprotected",
    0xF9: "command execution error",
    0xFA: "poor communication with the tag",
    0xFB: "no tag operable",
    0xFC: "tag returned an error code",
    0xFD: "command length wrong",
    0xFE: "illegal command (not this reader family, or wrong firmware)",
    0xFF: "parameter error",
}
RssiByte = Literal["ignore", "raw", "negative_dbm"]
MAX_FRAME = 256  # Len is one byte


def command(cmd: int, data: bytes = b"", address: int = 0x00) -> bytes:
    body = bytes([len(data) + 4, address, cmd]) + data
    return body + crc16_mcrf4xx(body).to_bytes(2, "little")


INVENTORY = command(CMD_INVENTORY)  # 04 00 01 DB 4B


# Reply command bytes a UHFReader18-family reader sends: a header naming another is not a frame.
_KNOWN_COMMANDS = frozenset(range(0x01, 0x10)) | frozenset(range(0x20, 0x40))


def _reply_length(header: bytes) -> int | None:
    # Len counts Adr reCmd Status ... CRC: at least 5; reCmd must be a command we know.
    if header[0] < 5 or header[2] not in _KNOWN_COMMANDS:
        return None
    return header[0] + 1


def new_framer() -> LengthFramer:
    return LengthFramer(
        header_len=3,
        length_of=_reply_length,
        valid=lambda frame: crc16_mcrf4xx(frame) == 0,
        max_buffer=2 * MAX_FRAME,
    )


def antenna_number(ant: int) -> int:
    """The Ant byte is a bit mask on multi-port models (0x01 port 1, 0x02 port 2, 0x04, 0x08)."""
    if ant and ant & (ant - 1) == 0:
        return ant.bit_length()
    return ant


def parse_inventory_tags(
    data: bytes, rssi_byte: RssiByte = "ignore", extra_byte: bool | None = None
) -> tuple[list[TagReport], bool] | str:
    """`Ant Num (EPCLen EPC [extra])*` -> (tag reports, whether each EPC had the extra byte), or
    a string naming the problem. `extra_byte` is the reader's layout when known: a reply that
    fits both layouts is read by it, and refused while it is unknown."""
    if len(data) < 2:
        return f"inventory data too short ({len(data)} bytes)"
    antenna, count, body = antenna_number(data[0]), data[1], data[2:]
    layouts = {
        extra: tags for extra in (True, False) if (tags := _walk(body, count, extra)) is not None
    }
    if not layouts:
        return f"inventory of {count} tags does not match its {len(body)} bytes of tag data"
    if len(layouts) == 1:
        (extra,) = layouts
    elif extra_byte is None:
        return (
            f"inventory of {count} tags fits both layouts (with and without a byte after each "
            "EPC): skipped until a reply shows which this reader uses"
        )
    else:
        extra = extra_byte
    reports = [
        TagReport(epc, antenna, _rssi(rest, rssi_byte) if extra else None)
        for epc, rest in layouts[extra]
    ]
    return reports, extra


def _walk(body: bytes, count: int, extra: bool) -> list[tuple[bytes, int]] | None:
    tags, offset, after = [], 0, 1 if extra else 0
    for _ in range(count):
        if offset >= len(body):
            return None
        length = body[offset]
        end = offset + 1 + length
        if length == 0 or end + after > len(body):
            return None
        tags.append((body[offset + 1 : end], body[end] if extra else 0))
        offset = end + after
    return tags if offset == len(body) else None


def _rssi(value: int, mode: RssiByte) -> float | None:
    if mode == "raw":
        return float(value)
    if mode == "negative_dbm":
        return -float(value)
    return None


class ChafonEngine(EngineBase):
    """Set power and scan time once, then poll inventories one at a time."""

    def __init__(self, config: ChafonReaderConfig) -> None:
        super().__init__()
        self.config = config
        self.framer = new_framer()
        self._setup: list[tuple[int, bytes]] = []
        if config.power_dbm is not None:
            self._setup.append((CMD_SET_POWER, bytes([config.power_dbm])))
        if config.scan_time_100ms is not None:
            self._setup.append((CMD_SET_SCAN_TIME, bytes([config.scan_time_100ms])))
        self._awaiting: int | None = None
        self._sent_at = 0.0
        self._next_poll = 0.0
        self.missed_replies = 0
        self.overflows = 0
        # Whether this reader puts a byte after each EPC: known from `rssi_byte`, else learned
        # from the first reply that only one layout fits.
        self.extra_byte: bool | None = None if config.rssi_byte == "ignore" else True

    @property
    def dropped_bytes(self) -> int:
        return self.framer.dropped_bytes

    def start(self, now: float) -> None:
        self._next_poll = now
        self.tick(now)

    def stop(self) -> None:
        self._awaiting = None

    def tick(self, now: float) -> None:
        if self._awaiting is not None:
            timeout = self.config.reply_timeout_s
            if self.config.scan_time_100ms and self._awaiting == CMD_INVENTORY:
                timeout += self.config.scan_time_100ms / 10
            if now - self._sent_at <= timeout:
                return
            self.missed_replies += 1
            self.last_problem = f"no reply to command 0x{self._awaiting:02X}"
            self.framer.reset()
            self._awaiting = None
        if self._setup:
            cmd, data = self._setup[0]
            self._request(cmd, data, now)
        elif now >= self._next_poll:
            self._next_poll = max(self._next_poll + self.config.poll_interval_s, now)
            self._request(CMD_INVENTORY, b"", now)

    def _request(self, cmd: int, data: bytes, now: float) -> None:
        self._send(command(cmd, data, self.config.address))
        self._awaiting, self._sent_at = cmd, now

    def feed(self, data: bytes, now: float) -> list[TagReport]:
        reports: list[TagReport] = []
        frames = self.framer.feed(data)
        self.bad_frames += self.framer.rejected
        if self.framer.rejected:
            self.last_problem = "frame with a bad CRC"
        self.framer.rejected = 0
        for frame in frames:
            reports += self._on_frame(frame, now)
        return reports

    def _on_frame(self, frame: bytes, now: float) -> list[TagReport]:
        if len(frame) < 6:
            self._bad(f"reply too short: {frame.hex(' ')}")
            return []
        self.frames += 1
        cmd, status, data = frame[2], frame[3], frame[4:-2]
        if cmd == CMD_INVENTORY:
            return self._on_inventory(status, data, now)
        if self._setup and cmd == self._setup[0][0]:
            self._setup.pop(0)
            self._awaiting = None
            if status != STATUS_OK:
                self._fail(
                    f"reader refused command 0x{cmd:02X}: status 0x{status:02X} "
                    f"({STATUS_TEXT.get(status, 'unknown status')})"
                )
            self.tick(now)
        return []

    def _on_inventory(self, status: int, data: bytes, now: float) -> list[TagReport]:
        if status not in (MORE_DATA,):
            self._awaiting = None
        if status == SCAN_TIME_OVERFLOW:
            self.overflows += 1
            self.last_problem = STATUS_TEXT[status]
        if status == 0xFB:  # no tag in the field: a normal empty inventory on some firmwares
            self.ready = True
            return []
        if status not in _INVENTORY_STATUSES:
            text = STATUS_TEXT.get(status, "unknown status")
            if status in (0xFE, 0xFD, 0xFF):
                self._fail(f"reader refused the inventory: status 0x{status:02X} ({text})")
            else:
                self._bad(f"inventory status 0x{status:02X} ({text})")
            return []
        parsed = parse_inventory_tags(data, self.config.rssi_byte, self.extra_byte)
        if isinstance(parsed, str):
            self.frames -= 1
            self._bad(parsed)
            return []
        tags, self.extra_byte = parsed
        self.ready = True
        return tags
