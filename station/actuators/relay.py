"""The LCUS / CH340 USB relay board protocol (docs/hardware/actuators.md has the wire format).

Switching a channel is one 4-byte frame, `A0 <channel> <state> <sum>`: channel from 1, state 0x00
(off) or 0x01 (on), sum = (0xA0 + channel + state) & 0xFF. The board does not answer it. Multi-
channel boards answer the single byte 0xFF with one line per channel, `CH1:ON\\r\\n` or
`CH1:OFF\\r\\n`. Pure: the driver and the simulator share these codecs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

START = 0xA0
STATUS_QUERY = 0xFF
FRAME_LENGTH = 4
_STATUS_LINE = re.compile(rb"CH(\d{1,3}):(ON|OFF)")


def checksum(channel: int, on: bool) -> int:
    return (START + channel + int(on)) & 0xFF


def encode_switch(channel: int, on: bool) -> bytes:
    if not 1 <= channel <= 255:
        raise ValueError(f"relay channel {channel} out of 1..255")
    return bytes((START, channel, int(on), checksum(channel, on)))


def encode_status(states: dict[int, bool]) -> bytes:
    """The board's answer to a status query (for the simulator)."""
    return b"".join(
        f"CH{ch}:{'ON' if on else 'OFF'}\r\n".encode() for ch, on in sorted(states.items())
    )


@dataclass(frozen=True, slots=True)
class Switch:
    channel: int
    on: bool


@dataclass(frozen=True, slots=True)
class StatusQuery:
    pass


RelayCommand = Switch | StatusQuery


class RelayFrameParser:
    """Commands from a byte stream, as the board reads them: a byte that cannot start a frame and
    a frame with a bad state or checksum are counted and skipped (resynchronising on the next
    0xA0), never raised."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.errors = 0

    def feed(self, data: bytes) -> list[RelayCommand]:
        self._buffer += data
        commands: list[RelayCommand] = []
        buffer = self._buffer
        while buffer:
            first = buffer[0]
            if first == STATUS_QUERY:
                del buffer[0]
                commands.append(StatusQuery())
                self.frames += 1
                continue
            if first != START:
                del buffer[0]
                self.errors += 1
                continue
            if len(buffer) < FRAME_LENGTH:
                break
            _, channel, state, total = buffer[:FRAME_LENGTH]
            if channel == 0 or state > 1 or total != checksum(channel, bool(state)):
                del buffer[0]  # resynchronise: the next 0xA0 may start a good frame
                self.errors += 1
                continue
            del buffer[:FRAME_LENGTH]
            commands.append(Switch(channel, bool(state)))
            self.frames += 1
        return commands


def parse_status(data: bytes) -> dict[int, bool]:
    """channel -> on, from a status answer; lines that are not `CHn:ON|OFF` are ignored."""
    return {int(ch): state == b"ON" for ch, state in _STATUS_LINE.findall(data)}
