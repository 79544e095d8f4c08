"""Readers that print one tag per text line: `EPC[,antenna[,rssi]]` by default, or any format a
regex with named groups (epc, antenna, rssi, count) describes."""

from __future__ import annotations

import re

from rfid.config import AsciiReaderConfig
from rfid.protocols.framing import EngineBase
from rfid.reads import TagReport

MAX_LINE = 512


class LineFramer:
    """Splits on CR or LF; a line longer than MAX_LINE is dropped whole."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.dropped_bytes = 0
        self.overlong = 0
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        lines = []
        for piece in re.split(rb"([\r\n])", data):
            if piece in (b"\r", b"\n"):
                if self._skipping:
                    self._skipping = False
                elif self._buffer:
                    lines.append(bytes(self._buffer))
                self._buffer.clear()
                continue
            if self._skipping:
                self.dropped_bytes += len(piece)
                continue
            self._buffer += piece
            if len(self._buffer) > self.max_line:
                self.dropped_bytes += len(self._buffer)
                self.overlong += 1
                self._buffer.clear()
                self._skipping = True
        return lines


def parse_line(line: bytes, pattern: re.Pattern[str]) -> TagReport | str | None:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return f"non-ASCII bytes in {line[:40]!r}"
    if not text.strip():
        return None
    match = pattern.match(text)
    if match is None:
        return f"line does not match the pattern: {text.strip()[:60]!r}"
    groups = match.groupdict()
    epc_text = groups["epc"] or ""
    if len(epc_text) % 2 or not epc_text or len(epc_text) > 124:
        return f"EPC {epc_text!r} is not whole bytes of hex"
    try:
        epc = bytes.fromhex(epc_text)
        antenna = int(groups.get("antenna") or 0)
        rssi = float(groups["rssi"]) if groups.get("rssi") else None
        count = int(groups.get("count") or 1)
    except ValueError as exc:
        return f"bad field in {text.strip()[:60]!r}: {exc}"
    if rssi is not None and not -150.0 <= rssi <= 20.0:
        return f"RSSI {rssi} dBm out of range"
    return TagReport(epc, antenna, rssi, max(1, count))


class AsciiEngine(EngineBase):
    def __init__(self, config: AsciiReaderConfig) -> None:
        super().__init__()
        self.config = config
        self.pattern = re.compile(config.line_pattern)
        self.framer = LineFramer()
        self._poll = (config.poll_command + "\r\n").encode() if config.poll_command else None
        self._next_poll = 0.0

    @property
    def dropped_bytes(self) -> int:
        return self.framer.dropped_bytes

    def start(self, now: float) -> None:
        self.ready = True  # nothing to set up: a quiet line just means no tags
        self._next_poll = now
        self.tick(now)

    def stop(self) -> None:
        self._poll = None

    def tick(self, now: float) -> None:
        if self._poll is not None and now >= self._next_poll:
            self._next_poll = max(self._next_poll + self.config.poll_interval_s, now)
            self._send(self._poll)

    def feed(self, data: bytes, now: float) -> list[TagReport]:
        overlong = self.framer.overlong
        reports = []
        for line in self.framer.feed(data):
            result = parse_line(line, self.pattern)
            if isinstance(result, str):
                self._bad(result)
            elif result is not None:
                self.frames += 1
                reports.append(result)
        if self.framer.overlong > overlong:
            self._bad(f"line longer than {MAX_LINE} bytes dropped")
        return reports
