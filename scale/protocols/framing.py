"""Framing machinery shared by every scale protocol: a bounded byte buffer and a decoder.

A `Framer` cuts a byte stream into frames by its start and end markers and never holds more than
`max_buffer` bytes; whatever cannot belong to a frame is dropped and counted. A protocol's parser
turns one frame into a `WeightReading`, `None` (a valid frame without a weight, such as the reply to
a zero command) or a `BadFrame`. Neither ever raises, whatever arrives on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from scale.readings import WeightReading, to_grams

DEFAULT_MAX_BUFFER = 256


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame the parser rejected, and why (shown by `scale watch`, counted by the device)."""

    reason: str


ParseResult = WeightReading | BadFrame | None
Parser = Callable[[bytes], ParseResult]


class Framer:
    """Cuts a byte stream into frames `[start] ... end [trailer]`.

    `start` is one byte or empty (frames start anywhere). When `start_is_unique` the start byte
    cannot occur inside a frame, so a second start before the end means the first frame was cut
    short and is dropped. `trailer_len` bytes after the end marker belong to the frame (a checksum).
    """

    def __init__(
        self,
        *,
        end: bytes,
        start: bytes = b"",
        start_is_unique: bool = False,
        trailer_len: int = 0,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        if len(start) > 1 or not end or max_buffer < 2 * (len(end) + trailer_len + 1):
            raise ValueError("framer needs a start of at most one byte, an end and a real buffer")
        self.start = start
        self.end = end
        self.start_is_unique = start_is_unique
        self.trailer_len = trailer_len
        self.max_buffer = max_buffer
        self.dropped_bytes = 0
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        # Take the input in buffer-sized slices so the buffer stays bounded even for huge chunks.
        for offset in range(0, len(data), self.max_buffer):
            self._buffer += data[offset : offset + self.max_buffer]
            frames += self._take_frames()
            self._discard(len(self._buffer) - self.max_buffer)
            self._align_to_start()
        return frames

    def _take_frames(self) -> list[bytes]:
        frames = []
        while True:
            self._align_to_start()
            if self.start_is_unique:
                self._drop_cut_short_frame()
            frame_end = self._frame_end()
            if frame_end is None:
                return frames
            frames.append(bytes(self._buffer[:frame_end]))
            del self._buffer[:frame_end]

    def _align_to_start(self) -> None:
        if self.start:
            index = self._buffer.find(self.start)
            self._discard(len(self._buffer) if index < 0 else index)

    def _drop_cut_short_frame(self) -> None:
        next_start = self._buffer.find(self.start, 1)
        end_at = self._buffer.find(self.end, 1)
        if next_start > 0 and (end_at < 0 or next_start < end_at):
            self._discard(next_start)

    def _frame_end(self) -> int | None:
        end_at = self._buffer.find(self.end, len(self.start))
        if end_at < 0:
            return None
        frame_end = end_at + len(self.end) + self.trailer_len
        return frame_end if frame_end <= len(self._buffer) else None

    def _discard(self, count: int) -> None:
        if count > 0:
            del self._buffer[:count]
            self.dropped_bytes += count


class FrameDecoder:
    """Framer plus parser: bytes in, readings out, with the counters a supervisor reports."""

    def __init__(self, framer: Framer, parse: Parser) -> None:
        self.framer = framer
        self.parse = parse
        self.frames = 0
        self.bad_frames = 0
        self.last_bad_frame: BadFrame | None = None

    @property
    def dropped_bytes(self) -> int:
        return self.framer.dropped_bytes

    def feed(self, data: bytes) -> list[WeightReading]:
        readings = []
        for frame in self.framer.feed(data):
            self.frames += 1
            result = self.parse(frame)
            if isinstance(result, BadFrame):
                self.bad_frames += 1
                self.last_bad_frame = result
            elif result is not None:
                readings.append(result)
        return readings


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def decode_ascii(frame: bytes) -> str | BadFrame:
    try:
        return frame.decode("ascii")
    except UnicodeDecodeError:
        return BadFrame(f"non-ASCII bytes in {frame!r}")


def grams_from_text(number: str, unit: str) -> float | None:
    """A plain decimal number in a known unit as grams; None for anything else (nan, 1e5, ...)."""
    if not _NUMBER.fullmatch(number):
        return None
    return to_grams(float(number), unit)
