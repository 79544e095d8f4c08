"""RFID reader simulators: the tag field (who is near which antenna, how strong, how often read)
and readers that speak Chafon, ThingMagic Mercury and ASCII lines over a real pseudo-terminal
(and TCP, like a serial-to-Ethernet converter), and LLRP over TCP (`simulators.rfid_sim_llrp`).
They reuse the drivers' own encoders, so the bytes are the ones the parsers are pinned to.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from rfid.epc import encode_sgtin96, normalise_gtin
from rfid.protocols import chafon, thingmagic
from rfid.protocols.framing import LengthFramer, crc16_mcrf4xx
from rfid.reads import TagReport
from simulators.endpoints import Endpoint, EndpointServer

SerialSimProtocol = Literal["chafon", "thingmagic", "ascii"]
_MAX_PENDING = 4096


# --- the tag field -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimTag:
    """A tag near one antenna: its RSSI there (mean and spread) and the chance it answers in
    one inventory round (1.0 always; 0.2 a tag read only sometimes). `until` (on the field's
    clock) makes it leave the field by itself: a cart passing by. Two SimTags with one EPC are
    two physical tags encoded alike (a duplicate): readers cannot tell them apart."""

    epc: bytes
    antenna: int = 1
    rssi_dbm: float = -45.0
    rssi_sigma_db: float = 2.0
    read_rate: float = 0.95
    until: float | None = None


class TagField:
    """The tags the simulated antennas can see; change it from any thread while readers run."""

    def __init__(
        self,
        tags: Iterable[SimTag] = (),
        seed: int = 0,
        *,
        drop_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tags: list[SimTag] = list(tags)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # The chance a tag's report of one inventory is lost on the way (noise, a busy reader).
        self.drop_rate = drop_rate
        self._clock = clock

    def pass_cart(
        self, epcs: Iterable[bytes], duration_s: float, antenna: int = 1, rssi_dbm: float = -40.0
    ) -> list[SimTag]:
        """A cart rolls past: a burst of strong reads from many tags for `duration_s`."""
        until = self._clock() + duration_s
        tags = [SimTag(epc, antenna, rssi_dbm, 2.0, 0.95, until) for epc in epcs]
        self.add(*tags)
        return tags

    def set_tags(self, tags: Iterable[SimTag]) -> None:
        with self._lock:
            self._tags = list(tags)

    def add(self, *tags: SimTag) -> None:
        with self._lock:
            self._tags += tags

    def remove(self, epc: bytes) -> None:
        with self._lock:
            self._tags = [t for t in self._tags if t.epc != epc]

    def tags(self) -> list[SimTag]:
        with self._lock:
            return list(self._tags)

    def inventory(self, antennas: Iterable[int] | None = None, rounds: int = 1) -> list[TagReport]:
        """One report per tag and antenna that answered in `rounds` inventory rounds."""
        wanted = None if antennas is None else set(antennas)
        reports = []
        now = self._clock()
        with self._lock:
            self._tags = [t for t in self._tags if t.until is None or t.until > now]
            for tag in self._tags:
                if wanted is not None and tag.antenna not in wanted:
                    continue
                count = sum(self._rng.random() < tag.read_rate for _ in range(rounds))
                if count and self.drop_rate and self._rng.random() < self.drop_rate:
                    count = 0  # the report is lost
                if count:
                    samples = [
                        self._rng.gauss(tag.rssi_dbm, tag.rssi_sigma_db) for _ in range(count)
                    ]
                    rssi = max(-100.0, min(-10.0, max(samples)))
                    reports.append(TagReport(tag.epc, tag.antenna, round(rssi), count))
        return reports


def sgtin(serial: int, item_reference: str = "812345", prefix: str = "0614141") -> bytes:
    return encode_sgtin96(1, prefix, item_reference, serial)


def sgtin_for_gtin(gtin: str, serial: int, company_prefix_digits: int = 7) -> bytes:
    """The SGTIN-96 of one unit of a catalog barcode (EAN-13, UPC-A or GTIN-14), with a
    company prefix of `company_prefix_digits` (the real split comes from GS1; any split decodes
    back to the same GTIN-14)."""
    gtin14 = normalise_gtin(gtin)
    if gtin14 is None:
        raise ValueError(f"{gtin!r} is not a GTIN")
    prefix = gtin14[1 : 1 + company_prefix_digits]
    reference = gtin14[0] + gtin14[1 + company_prefix_digits : 13]
    return encode_sgtin96(1, prefix, reference, serial)


def carton_tags(epcs: Iterable[bytes], antenna: int = 1, rssi_dbm: float = -45.0) -> list[SimTag]:
    """Units inside the carton on the platter: strong and read nearly every round."""
    return [SimTag(epc, antenna, rssi_dbm, 2.0, 0.95) for epc in epcs]


def duplicate_tags(epc: bytes, units: int = 2, antenna: int = 1) -> list[SimTag]:
    """`units` units in the carton whose tags carry the same EPC (a tag encoding fault)."""
    return carton_tags([epc] * units, antenna)


def stray_tags(epcs: Iterable[bytes], antenna: int = 1, rssi_dbm: float = -72.0) -> list[SimTag]:
    """Tags at the neighbouring station or on a passing cart: weak and read now and then."""
    return [SimTag(epc, antenna, rssi_dbm, 3.0, 0.4) for epc in epcs]


# --- serial readers ----------------------------------------------------------------------------


def _chafon_request_framer() -> LengthFramer:
    return LengthFramer(
        header_len=1,
        length_of=lambda h: h[0] + 1 if h[0] >= 4 else None,
        valid=lambda frame: crc16_mcrf4xx(frame) == 0,
        max_buffer=512,
    )


class SerialReaderSimulator(EndpointServer):
    """A Chafon, ThingMagic or ASCII-line reader over a pty (and TCP)."""

    name = "rfid-sim"

    def __init__(
        self,
        protocol: SerialSimProtocol,
        field: TagField | None = None,
        *,
        rounds_per_inventory: int = 3,
        chafon_tags_per_frame: int = 8,
        ascii_interval_s: float = 0.1,
        serve_pty: bool = True,
        tcp_port: int | None = 0,
    ) -> None:
        super().__init__(serve_pty=serve_pty, tcp_port=tcp_port)
        self.name = f"rfid-sim-{protocol}"
        self.protocol = protocol
        self.field = field or TagField()
        self.rounds = rounds_per_inventory
        self.chafon_tags_per_frame = chafon_tags_per_frame
        self.ascii_interval_s = ascii_interval_s
        self.power_dbm: int | None = None
        self.antennas: tuple[int, ...] | None = None
        self.commands: list[int] = []  # every command or opcode received, for tests
        self.corrupt_next = False  # flip a CRC byte in the next reply
        self.status_override: int | None = None  # answer the next inventory with this status

    def on_connect(self, endpoint: Endpoint) -> None:
        if self.protocol == "chafon":
            endpoint.state["framer"] = _chafon_request_framer()
        elif self.protocol == "thingmagic":
            endpoint.state["framer"] = thingmagic.new_request_framer()
            endpoint.state["buffer"] = []
            endpoint.state["pending"] = None
        endpoint.state["next"] = 0.0

    def on_data(self, endpoint: Endpoint, data: bytes) -> None:
        framer = endpoint.state.get("framer")
        if not isinstance(framer, LengthFramer):
            return  # ASCII readers ignore the host
        for frame in framer.feed(data):
            if self.protocol == "chafon":
                replies = self._chafon(frame)
            else:
                replies = self._thingmagic(endpoint, frame)
            for reply in replies:
                self._write(endpoint, reply)

    def _write(self, endpoint: Endpoint, reply: bytes) -> None:
        if self.corrupt_next:
            self.corrupt_next = False
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        endpoint.write(reply)

    def on_tick(self, endpoint: Endpoint) -> bool:
        now = _monotonic()
        if self.protocol == "ascii" and now >= float(endpoint.state["next"]):  # type: ignore[arg-type]
            endpoint.state["next"] = now + self.ascii_interval_s
            lines = b"".join(
                f"{r.epc.hex().upper()},{r.antenna},{r.rssi_dbm:.0f}\r\n".encode()
                for r in self.field.inventory(rounds=1)
            )
            return not lines or endpoint.write(lines)
        pending = endpoint.state.get("pending")
        if isinstance(pending, tuple) and now >= pending[0]:
            endpoint.state["pending"] = None
            self._write(endpoint, pending[1])
        return True

    # -- Chafon ---------------------------------------------------------------------------------

    def _chafon(self, frame: bytes) -> list[bytes]:
        address, cmd, data = frame[1], frame[2], frame[3:-2]
        self.commands.append(cmd)

        def reply(status: int, payload: bytes = b"") -> bytes:
            return chafon.command(cmd, bytes([status]) + payload, address)

        if cmd == chafon.CMD_INVENTORY:
            if self.status_override is not None:
                status, self.status_override = self.status_override, None
                return [reply(status)]
            return self._chafon_inventory(reply)
        if cmd == chafon.CMD_SET_POWER and len(data) == 1 and data[0] <= 30:
            self.power_dbm = data[0]
            return [reply(0x00)]
        if cmd == chafon.CMD_SET_SCAN_TIME and len(data) == 1:
            return [reply(0x00)]
        if cmd == chafon.CMD_READER_INFO:
            return [reply(0x00, bytes([0x03, 0x01, 0x08, 0x03, 0x1E, 0x3E, 0x00, 0x0A]))]
        return [reply(0xFE)]

    def _chafon_inventory(self, reply: Callable[[int, bytes], bytes]) -> list[bytes]:
        reports = self.field.inventory(rounds=self.rounds)
        by_antenna: dict[int, list[TagReport]] = {}
        for report in reports:
            by_antenna.setdefault(report.antenna, []).append(report)
        chunks: list[tuple[int, list[TagReport]]] = []
        for antenna, tags in sorted(by_antenna.items()):
            for i in range(0, len(tags), self.chafon_tags_per_frame):
                chunks.append((antenna, tags[i : i + self.chafon_tags_per_frame]))
        if not chunks:
            return [reply(chafon.INVENTORY_DONE, bytes([0x01, 0x00]))]
        frames = []
        for index, (antenna, tags) in enumerate(chunks):
            status = chafon.INVENTORY_DONE if index == len(chunks) - 1 else chafon.MORE_DATA
            body = bytes([1 << (antenna - 1), len(tags)])
            for tag in tags:
                body += (
                    bytes([len(tag.epc)]) + tag.epc + bytes([min(255, round(-(tag.rssi_dbm or 0)))])
                )
            frames.append(reply(status, body))
        return frames

    # -- ThingMagic -----------------------------------------------------------------------------

    def _thingmagic(self, endpoint: Endpoint, frame: bytes) -> list[bytes]:
        opcode, data = frame[2], frame[3:-2]
        self.commands.append(opcode)
        buffer: list[TagReport] = endpoint.state["buffer"]  # type: ignore[assignment]
        if opcode == thingmagic.OP_READ_TAG_MULTIPLE and len(data) >= 2:
            timeout_ms = int.from_bytes(data[-2:], "big")
            if self.status_override is not None:
                status, self.status_override = self.status_override, None
                return [thingmagic.reply(opcode, status)]
            rounds = max(1, self.rounds * timeout_ms // 250)
            found = self.field.inventory(self.antennas, rounds=rounds)
            buffer += found
            frame_out = (
                thingmagic.reply(opcode, 0, bytes([min(255, len(found))]))
                if found
                else thingmagic.reply(opcode, thingmagic.NO_TAGS_FOUND)
            )
            endpoint.state["pending"] = (_monotonic() + timeout_ms / 1000, frame_out)
            return []
        if opcode == thingmagic.OP_GET_TAG_BUFFER:
            flags = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
            batch: list[TagReport] = []
            while buffer and len(thingmagic.encode_tag_buffer([*batch, buffer[0]], flags)) <= 250:
                batch.append(buffer.pop(0))
            return [thingmagic.reply(opcode, 0, thingmagic.encode_tag_buffer(batch, flags))]
        if opcode == thingmagic.OP_CLEAR_TAG_BUFFER:
            buffer.clear()
            return [thingmagic.reply(opcode, 0)]
        if opcode == thingmagic.OP_SET_ANTENNA and data[:1] == b"\x02":
            self.antennas = tuple(data[i] for i in range(1, len(data) - 1, 2))
            return [thingmagic.reply(opcode, 0)]
        if opcode == thingmagic.OP_SET_READ_POWER:
            self.power_dbm = round(int.from_bytes(data, "big", signed=True) / 100)
            return [thingmagic.reply(opcode, 0)]
        if opcode in (thingmagic.OP_SET_PROTOCOL, thingmagic.OP_SET_PROTOCOL_PARAM):
            return [thingmagic.reply(opcode, 0)]
        if opcode == thingmagic.OP_VERSION:
            return [thingmagic.reply(opcode, 0, bytes.fromhex("0123456701020304"))]
        return [thingmagic.reply(opcode, 0x0101)]


def _monotonic() -> float:
    return time.monotonic()


# --- `packstation simulate rfid` ---------------------------------------------------------------

_HELP = """commands: carton N | stray N | clear | tags | silent | talk | drop | q"""


def add_simulate_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rfid", help="simulate an RFID reader (LLRP, Chafon, ...)")
    parser.add_argument(
        "--protocol", choices=("llrp", "chafon", "thingmagic", "ascii"), required=True
    )
    parser.add_argument("--tcp", type=int, metavar="PORT", help="TCP port (LLRP: default 5084)")
    parser.add_argument("--carton", type=int, default=3, metavar="N", help="tags in the carton")
    parser.add_argument("--stray", type=int, default=2, metavar="N", help="neighbour's tags")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run_simulate)


def demo_field(carton: int, stray: int, seed: int = 0) -> TagField:
    tags = carton_tags(sgtin(i) for i in range(1, carton + 1))
    tags += stray_tags(sgtin(i, "812399") for i in range(1, stray + 1))
    return TagField(tags, seed=seed)


def run_simulate(args: argparse.Namespace) -> int:
    field = demo_field(args.carton, args.stray, args.seed)
    simulator: EndpointServer
    if args.protocol == "llrp":
        from simulators.rfid_sim_llrp import LlrpReaderSimulator

        simulator = LlrpReaderSimulator(field, tcp_port=5084 if args.tcp is None else args.tcp)
    else:
        simulator = SerialReaderSimulator(args.protocol, field, tcp_port=args.tcp)
    with simulator:
        if args.protocol == "llrp":
            print(f"LLRP reader on 127.0.0.1:{simulator.tcp_port}")
        else:
            print(f"{args.protocol} reader on {simulator.pty_path} -> {simulator.pty_device}")
            if simulator.tcp_port is not None:
                print(f"  and on {simulator.tcp_url}")
        print(_HELP, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            for line in sys.stdin:
                if not _console(simulator, field, line.split()):
                    break
    return 0


def _console(simulator: EndpointServer, field: TagField, words: list[str]) -> bool:
    if not words:
        return True
    name, count = words[0], int(words[1]) if len(words) > 1 and words[1].isdigit() else 1
    if name in ("q", "quit"):
        return False
    existing = len(field.tags())
    if name == "carton":
        field.add(*carton_tags(sgtin(existing + 1000 + i) for i in range(count)))
    elif name == "stray":
        field.add(*stray_tags(sgtin(existing + 2000 + i, "812399") for i in range(count)))
    elif name == "clear":
        field.set_tags([])
    elif name in ("silent", "talk"):
        simulator.silent = name == "silent"
    elif name == "drop":
        simulator.drop_clients()
    elif name != "tags":
        print(_HELP)
        return True
    for tag in field.tags():
        print(f"  {tag.epc.hex().upper()} ant {tag.antenna} {tag.rssi_dbm:g} dBm", flush=True)
    return True


__all__ = [
    "SerialReaderSimulator",
    "SimTag",
    "TagField",
    "add_simulate_command",
    "carton_tags",
    "sgtin",
    "sgtin_for_gtin",
    "stray_tags",
]
