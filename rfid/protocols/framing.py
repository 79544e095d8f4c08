"""Shared pieces of the reader protocols: CRCs, a bounded length-prefixed framer, the engine
interface every protocol implements.

An engine is the protocol's session logic without I/O ("sans-IO"): the device feeds it the bytes
it read and the time, ticks it, and writes what `take_output()` returns. Engines never raise on
wire data: bad frames are counted, and a condition the session cannot recover from (an error
status, a refused connection) is put in `failure` for the supervisor to act on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rfid.reads import TagReport

# ThingMagic's nibble table (poly 0x1021), used MSB-first with the data shifted through the
# register: NOT CRC-16/CCITT-FALSE (bytes 00 03 give 0x1D0C here).
_TM_TABLE = [0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7]
_TM_TABLE += [0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF]


def crc16_mcrf4xx(data: bytes) -> int:
    """CRC-16/MCRF4XX: preset 0xFFFF, reflected poly 0x8408, no final XOR; sent LSB first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def crc_thingmagic(data: bytes) -> int:
    """ThingMagic Mercury serial CRC (sent MSB first)."""
    crc = 0xFFFF
    for byte in data:
        crc = (((crc << 4) | (byte >> 4)) ^ _TM_TABLE[crc >> 12]) & 0xFFFF
        crc = (((crc << 4) | (byte & 0x0F)) ^ _TM_TABLE[crc >> 12]) & 0xFFFF
    return crc


class LengthFramer:
    """Cuts a byte stream into frames whose length is in their header, bounded in memory.

    `length_of(buffer)` returns the whole frame's length from a buffer holding at least
    `header_len` bytes, or None when the header cannot be valid (one byte is then dropped and the
    search resumes). `valid(frame)` checks the CRC; a failing frame is counted in `rejected` and
    its first byte dropped, so a real frame hidden behind garbage is still found. While a frame
    is incomplete, a complete valid frame further on means the first was garbage (a stray byte
    read as a long length): it is dropped rather than waited for.
    """

    def __init__(
        self,
        *,
        header_len: int,
        length_of: Callable[[bytes], int | None],
        valid: Callable[[bytes], bool],
        start: int | None = None,
        max_buffer: int = 1024,
    ) -> None:
        self.header_len = header_len
        self.length_of = length_of
        self.valid = valid
        self.start = start
        self.max_buffer = max_buffer
        self.dropped_bytes = 0
        self.rejected = 0
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (after a reply timeout): its bytes count as dropped."""
        self._discard(len(self._buffer))

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for offset in range(0, len(data), self.max_buffer):
            self._buffer += data[offset : offset + self.max_buffer]
            frames += self._take_frames()
            self._discard(len(self._buffer) - self.max_buffer)
        return frames

    def _take_frames(self) -> list[bytes]:
        frames = []
        while True:
            if self.start is not None:
                index = self._buffer.find(self.start)
                self._discard(len(self._buffer) if index < 0 else index)
            if len(self._buffer) < self.header_len:
                return frames
            length = self.length_of(bytes(self._buffer[: self.header_len]))
            if length is None or length > self.max_buffer or length < self.header_len:
                self._discard(1)
                continue
            if length > len(self._buffer):
                if not self._skip_to_later_frame():
                    return frames
                continue
            frame = bytes(self._buffer[:length])
            if self.valid(frame):
                frames.append(frame)
                del self._buffer[:length]
            else:
                self.rejected += 1
                self._discard(1)

    def _skip_to_later_frame(self) -> bool:
        buffer = bytes(self._buffer)
        for offset in range(1, len(buffer) - self.header_len + 1):
            if self.start is not None and buffer[offset] != self.start:
                continue
            length = self.length_of(buffer[offset : offset + self.header_len])
            if length is None or length < self.header_len or offset + length > len(buffer):
                continue
            if self.valid(buffer[offset : offset + length]):
                self._discard(offset)
                return True
        return False

    def _discard(self, count: int) -> None:
        if count > 0:
            del self._buffer[:count]
            self.dropped_bytes += count


class Engine(Protocol):
    """A reader protocol session without I/O; see the module docstring."""

    frames: int  # valid frames parsed
    bad_frames: int  # frames rejected (CRC, length, content)
    last_problem: str | None  # the latest bad frame or error status, for logs and `rfid watch`
    failure: str | None  # set when the session cannot go on: the device reconnects
    ready: bool  # inventory is running
    closed_by_reader: bool  # after stop() the reader answers and closes the session (LLRP)

    @property
    def dropped_bytes(self) -> int: ...

    def start(self, now: float) -> None: ...

    def feed(self, data: bytes, now: float) -> list[TagReport]: ...

    def tick(self, now: float) -> None: ...

    def take_output(self) -> bytes: ...

    def stop(self) -> None: ...


class EngineBase:
    """Counters and the output queue every engine shares."""

    def __init__(self) -> None:
        self.frames = 0
        self.bad_frames = 0
        self.last_problem: str | None = None
        self.failure: str | None = None
        self.ready = False
        self.closed_by_reader = False
        self._output = bytearray()

    def take_output(self) -> bytes:
        out = bytes(self._output)
        self._output.clear()
        return out

    def _send(self, frame: bytes) -> None:
        self._output += frame

    def _bad(self, problem: str) -> None:
        self.bad_frames += 1
        self.last_problem = problem

    def _fail(self, problem: str) -> None:
        self.last_problem = problem
        if self.failure is None:
            self.failure = problem
