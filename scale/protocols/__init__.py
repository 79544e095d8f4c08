"""The scale protocols, in one explicit table: adding a protocol means one module and one row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from scale.protocols import mtsics, nci, toledo
from scale.protocols.framing import FrameDecoder, Framer, Parser

ProtocolName = Literal["mtsics", "nci", "toledo"]


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    name: ProtocolName
    new_framer: Callable[[], Framer]
    parse: Parser
    poll_command: bytes | None  # None: the scale streams without being asked
    stream_command: bytes | None  # starts a stream on scales that can poll or stream
    zero_command: bytes | None
    tare_command: bytes | None

    def new_decoder(self) -> FrameDecoder:
        return FrameDecoder(self.new_framer(), self.parse)


PROTOCOLS: dict[str, ProtocolSpec] = {
    "mtsics": ProtocolSpec(
        name="mtsics",
        new_framer=mtsics.new_framer,
        parse=mtsics.parse,
        poll_command=mtsics.POLL,
        stream_command=mtsics.STREAM_START,
        zero_command=mtsics.ZERO,
        tare_command=mtsics.TARE,
    ),
    "nci": ProtocolSpec(
        name="nci",
        new_framer=nci.new_framer,
        parse=nci.parse,
        poll_command=nci.POLL,
        stream_command=None,
        zero_command=nci.ZERO,
        tare_command=None,
    ),
    "toledo": ProtocolSpec(
        name="toledo",
        new_framer=toledo.new_framer,
        parse=toledo.parse,
        poll_command=None,
        stream_command=None,
        zero_command=None,
        tare_command=None,
    ),
}
