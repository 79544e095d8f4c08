"""An LLRP fixed reader over TCP, built from the same encoders and parsers as the client.

It greets each connection with a ConnectionAttemptEvent (refusing a second client, as readers
do), answers capabilities, config and ROSpec messages (and, like an Impinj reader,
IMPINJ_ENABLE_EXTENSIONS, without which it refuses an Impinj parameter in a ROSpec), sends
KEEPALIVE at the configured period, and while the ROSpec runs sends RO_ACCESS_REPORTs from the tag
field every `round_s`. Each ROSpec's per-antenna settings are kept in `rospecs` for tests.
"""

from __future__ import annotations

import struct
import time

from rfid.protocols import llrp
from simulators.endpoints import Endpoint, EndpointServer
from simulators.rfid_sim import TagField

POWER_TABLE = [(i + 1, 1000 + 25 * i) for i in range(81)]  # 10.00 .. 30.00 dBm in 0.25 dB


class LlrpReaderSimulator(EndpointServer):
    name = "rfid-sim-llrp"

    def __init__(
        self,
        field: TagField | None = None,
        *,
        tcp_port: int = 0,
        max_antennas: int = 4,
        round_s: float = 0.05,
    ) -> None:
        super().__init__(serve_pty=False, tcp_port=tcp_port)
        self.field = field or TagField()
        self.max_antennas = max_antennas
        self.round_s = round_s
        self.received: list[int] = []  # message types, for tests
        self.rospecs: dict[int, dict[str, object]] = {}
        self.keepalive_acks = 0
        self.refuse_add_rospec: str | None = None  # answer ADD_ROSPEC with this error
        self.impinj_extensions = True  # False: a reader of another make (no Octane extensions)
        self._next_id = 1000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def on_connect(self, endpoint: Endpoint) -> None:
        busy = any(e is not endpoint and e.state.get("greeted") for e in self.endpoints.values())
        event = llrp.connection_attempt_event(2 if busy else 0)
        endpoint.write(llrp.reader_event(self._id(), int(time.time() * 1e6), event))
        endpoint.state.update(
            greeted=not busy,
            refused=busy,
            framer=llrp.MessageFramer(),
            keepalive_s=None,
            next_keepalive=0.0,
            next_round=0.0,
            running=None,
            extensions=False,
        )

    def on_data(self, endpoint: Endpoint, data: bytes) -> None:
        framer: llrp.MessageFramer = endpoint.state["framer"]  # type: ignore[assignment]
        for msg in framer.feed(data):
            self.received.append(msg.type)
            reply = self._answer(endpoint, msg)
            if reply:
                endpoint.write(reply)

    def _ok(self, msg: llrp.Message, error: str | None = None, code: int = 101) -> bytes:
        status = llrp.llrp_status(code, error) if error else llrp.llrp_status()
        return llrp.message(llrp.RESPONSE_TO[msg.type], msg.id, status)

    def _answer(self, endpoint: Endpoint, msg: llrp.Message) -> bytes | None:
        state = endpoint.state
        if msg.type == llrp.KEEPALIVE_ACK:
            self.keepalive_acks += 1
            return None
        if msg.type == llrp.GET_READER_CAPABILITIES:
            return llrp.capabilities_response(msg.id, self.max_antennas, POWER_TABLE)
        if msg.type == llrp.SET_READER_CONFIG:
            for param in llrp.parse_params(msg.body[1:]):
                if param.type == llrp.P_KEEPALIVE_SPEC:
                    kind, period = struct.unpack(">BI", param.body[:5])
                    state["keepalive_s"] = period / 1000 if kind == 1 else None
            return self._ok(msg)
        if msg.type == llrp.ADD_ROSPEC:
            return self._add_rospec(endpoint, msg)
        enable = llrp.impinj_message_body(llrp.IMPINJ_ENABLE_EXTENSIONS, bytes(4))
        if msg.type == llrp.CUSTOM_MESSAGE and self.impinj_extensions and msg.body == enable:
            state["extensions"] = True
            reply = llrp.impinj_message_body(llrp.IMPINJ_ENABLE_EXTENSIONS_RESPONSE)
            return llrp.message(llrp.CUSTOM_MESSAGE, msg.id, reply + llrp.llrp_status())
        if msg.type in (
            llrp.DELETE_ROSPEC,
            llrp.ENABLE_ROSPEC,
            llrp.START_ROSPEC,
            llrp.STOP_ROSPEC,
        ):
            return self._rospec_command(endpoint, msg)
        if msg.type == llrp.CLOSE_CONNECTION:
            endpoint.write(self._ok(msg))
            state["close"] = True
            return None
        error = llrp.llrp_status(109, f"message type {msg.type} not supported")
        return llrp.message(llrp.ERROR_MESSAGE, msg.id, error)

    def _add_rospec(self, endpoint: Endpoint, msg: llrp.Message) -> bytes:
        if self.refuse_add_rospec:
            return self._ok(msg, self.refuse_add_rospec)
        (rospec,) = [p for p in llrp.parse_params(msg.body) if p.type == llrp.P_ROSPEC]
        rospec_id = struct.unpack(">I", rospec.body[:4])[0]
        children = rospec.children(6)
        aispec = llrp.find(children, llrp.P_AISPEC)
        report = llrp.find(children, llrp.P_RO_REPORT_SPEC)
        if aispec is None or report is None:
            return self._ok(msg, "ROSpec needs an AISpec and an ROReportSpec", 103)
        count = struct.unpack(">H", aispec.body[:2])[0]
        antennas = struct.unpack(f">{count}H", aispec.body[2 : 2 + 2 * count])
        bad = [a for a in antennas if not 1 <= a <= self.max_antennas]
        if bad:
            return self._ok(msg, f"antenna {bad[0]} does not exist")
        _, every_n = struct.unpack(">BH", report.body[:3])
        inventory = llrp.find(aispec.children(2 + 2 * count), llrp.P_INVENTORY_PARAMETER_SPEC)
        settings = {} if inventory is None else _antenna_settings(inventory)
        searching = any(s["search_mode"] is not None for s in settings.values())
        if searching and not endpoint.state["extensions"]:
            return self._ok(msg, "ImpinjInventorySearchMode without IMPINJ_ENABLE_EXTENSIONS", 111)
        self.rospecs[rospec_id] = {
            "antennas": antennas,
            "every_n": every_n,
            "enabled": False,
            "settings": settings,
        }
        return self._ok(msg)

    def _rospec_command(self, endpoint: Endpoint, msg: llrp.Message) -> bytes:
        rospec_id = struct.unpack(">I", msg.body[:4])[0]
        if msg.type == llrp.DELETE_ROSPEC:
            if rospec_id == 0:
                self.rospecs.clear()
            elif self.rospecs.pop(rospec_id, None) is None:
                return self._ok(msg, f"no ROSpec {rospec_id}", 300)
            endpoint.state["running"] = None
            return self._ok(msg)
        spec = self.rospecs.get(rospec_id)
        if spec is None:
            return self._ok(msg, f"no ROSpec {rospec_id}", 300)
        if msg.type == llrp.ENABLE_ROSPEC:
            spec["enabled"] = True
        elif msg.type == llrp.START_ROSPEC:
            if not spec["enabled"]:
                return self._ok(msg, "ROSpec is disabled", 300)
            endpoint.state["running"] = rospec_id
        else:
            endpoint.state["running"] = None
        return self._ok(msg)

    def on_tick(self, endpoint: Endpoint) -> bool:
        state = endpoint.state
        if state.get("close") or state.get("refused"):
            return False
        now = time.monotonic()
        keepalive = state.get("keepalive_s")
        if isinstance(keepalive, float) and now >= float(state["next_keepalive"]):  # type: ignore[arg-type]
            state["next_keepalive"] = now + keepalive
            if not endpoint.write(llrp.message(llrp.KEEPALIVE, self._id())):
                return False
        running = state.get("running")
        if running is None or now < float(state["next_round"]):  # type: ignore[arg-type]
            return True
        state["next_round"] = now + self.round_s
        spec = self.rospecs[running]  # type: ignore[index]
        reads = self.field.inventory(spec["antennas"])  # type: ignore[arg-type]
        if not reads:
            return True
        stamp = int(time.time() * 1e6)
        data = [
            llrp.tag_report_data(
                r.epc, r.antenna, round(r.rssi_dbm or -90), stamp - 40_000, stamp, r.seen_count
            )
            for r in reads
        ]
        every = int(spec["every_n"]) or len(data)  # type: ignore[call-overload]
        for i in range(0, len(data), every):
            report = llrp.message(llrp.RO_ACCESS_REPORT, self._id(), b"".join(data[i : i + every]))
            if not endpoint.write(report):
                return False
        return True


def _antenna_settings(inventory: llrp.Param) -> dict[int, dict[str, int | None]]:
    """Antenna -> the transmit power index, Gen2 session and Impinj search mode that its
    AntennaConfiguration asks for (None: the reader's own setting)."""
    settings: dict[int, dict[str, int | None]] = {}
    for config in inventory.children(3):
        if config.type != llrp.P_ANTENNA_CONFIGURATION:
            continue
        found: dict[str, int | None] = {"power_index": None, "session": None, "search_mode": None}
        for part in config.children(2):
            if part.type == llrp.P_RF_TRANSMITTER:
                found["power_index"] = struct.unpack(">HHH", part.body[:6])[2]
            elif part.type == llrp.P_C1G2_INVENTORY_COMMAND:
                for command in part.children(1):
                    if command.type == llrp.P_C1G2_SINGULATION_CONTROL:
                        found["session"] = command.body[0] >> 6
                    elif command.type == llrp.P_CUSTOM and command.body[:8] == struct.pack(
                        ">II", llrp.IMPINJ_VENDOR, llrp.IMPINJ_INVENTORY_SEARCH_MODE
                    ):
                        found["search_mode"] = struct.unpack(">H", command.body[8:10])[0]
        settings[struct.unpack(">H", config.body[:2])[0]] = found
    return settings
