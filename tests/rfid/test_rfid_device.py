"""Each driver against its simulator, through the same supervisor code path as hardware: a real
pseudo-terminal for the serial readers, TCP for LLRP and serial-to-Ethernet converters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rfid.config import rfid_reader_config_from
from rfid.device import ReaderHealth, RfidReader
from rfid.reads import TagRead
from simulators.rfid_sim import SerialReaderSimulator, TagField, carton_tags, sgtin, stray_tags
from simulators.rfid_sim_llrp import LlrpReaderSimulator

FAST = {"reply_timeout_s": 0.5, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}
CARTON = [sgtin(i) for i in (1, 2, 3)]
STRAY = [sgtin(9, "812399")]


class Recorder:
    def __init__(self) -> None:
        self.reads: list[TagRead] = []
        self.health: list[ReaderHealth] = []
        self._lock = threading.Lock()

    def on_reads(self, reads: list[TagRead]) -> None:
        with self._lock:
            self.reads += reads

    def on_health(self, health: ReaderHealth) -> None:
        with self._lock:
            self.health.append(health)

    def states(self) -> list[str]:
        with self._lock:
            return [h.state for h in self.health]

    def epcs(self) -> set[bytes]:
        with self._lock:
            return {r.epc for r in self.reads}

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; health {self.health}")
            time.sleep(0.01)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def run_reader(recorder: Recorder) -> Iterator[Callable[..., RfidReader]]:
    readers: list[RfidReader] = []

    def start(**settings: object) -> RfidReader:
        config = rfid_reader_config_from({**FAST, **settings})
        reader = RfidReader(config, recorder.on_reads, recorder.on_health)
        readers.append(reader)
        reader.start()
        return reader

    yield start
    for reader in readers:
        assert reader.stop(timeout_s=2.0)


def field() -> TagField:
    return TagField(carton_tags(CARTON) + stray_tags(STRAY, rssi_dbm=-75.0), seed=1)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
@pytest.mark.parametrize("protocol", ["chafon", "thingmagic", "ascii"])
def test_serial_readers_against_their_simulators(protocol, transport, recorder, run_reader):
    extra = {"chafon": {"rssi_byte": "negative_dbm", "power_dbm": 22}}.get(protocol, {})
    extra |= {"thingmagic": {"inventory_ms": 100, "read_power_dbm": 24.5}}.get(protocol, {})
    with SerialReaderSimulator(protocol, field()) as sim:  # type: ignore[arg-type]
        port = sim.pty_path if transport == "pty" else sim.tcp_url
        reader = run_reader(protocol=protocol, port=port, poll_interval_s=0.05, **extra)
        recorder.wait_for(lambda: recorder.epcs() >= set(CARTON) | set(STRAY))
        recorder.wait_for(lambda: "up" in recorder.states())
        if protocol != "ascii":
            assert sim.power_dbm == {"chafon": 22, "thingmagic": 24}[protocol]
    by_epc = {r.epc: r for r in recorder.reads}
    assert by_epc[CARTON[0]].rssi_dbm is not None
    assert by_epc[CARTON[0]].antenna == 1 and by_epc[CARTON[0]].reader == "rfid"
    counters = reader.counters()
    assert counters.reads >= 4 and counters.bad_frames == 0


def test_llrp_reader_against_the_simulator(recorder, run_reader):
    with LlrpReaderSimulator(field()) as sim:
        reader = run_reader(
            protocol="llrp",
            host="127.0.0.1",
            tcp_port=sim.tcp_port,
            antennas=[1, 2],
            antenna_power_dbm={1: 27},
            keepalive_s=0.1,
            stale_after_s=1.0,
        )
        recorder.wait_for(lambda: recorder.epcs() >= set(CARTON) | set(STRAY))
        recorder.wait_for(lambda: sim.keepalive_acks >= 2)
        assert recorder.states()[:2] == ["connecting", "up"]
        setup = [t for t in sim.received if t != 72][:6]  # keepalive acks interleave
        assert setup == [1, 21, 3, 20, 24, 22]
        strong = [r for r in recorder.reads if r.epc == CARTON[0]]
        weak = [r for r in recorder.reads if r.epc == STRAY[0]]
        assert min(r.rssi_dbm for r in strong) > max(r.rssi_dbm for r in weak)  # type: ignore[type-var]
        assert all(r.last_seen - r.first_seen == pytest.approx(0.04) for r in strong)
        # A network blip: the client reconnects and sets everything up again.
        sim.drop_clients()
        recorder.wait_for(lambda: recorder.states().count("up") >= 2)
        count = len(recorder.reads)
        recorder.wait_for(lambda: len(recorder.reads) > count)
        assert reader.stop()
        # stop, delete, close
        recorder.wait_for(lambda: [t for t in sim.received if t != 72][-3:] == [23, 21, 14])


def test_llrp_rospec_settings_reach_the_reader(recorder, run_reader):
    """Per-antenna power, the Gen2 session and an Impinj search mode, as the reader parsed them
    out of the ROSpec (after IMPINJ_ENABLE_EXTENSIONS, which it demands for the latter)."""
    with LlrpReaderSimulator(field()) as sim:
        run_reader(
            protocol="llrp",
            host="127.0.0.1",
            tcp_port=sim.tcp_port,
            antennas=[1, 2],
            antenna_power_dbm={1: 27},
            session=2,
            impinj_search_mode="single_target_with_suppression",
        )
        recorder.wait_for(lambda: recorder.epcs() >= set(CARTON))
        assert [t for t in sim.received if t != 72][:7] == [1, 21, 3, 1023, 20, 24, 22]
        settings = sim.rospecs[1234]["settings"]
        # The simulator's power table: index i is 10 dBm + 0.25 dB x (i - 1); 27 dBm is 69.
        assert settings == {
            1: {"power_index": 69, "session": 2, "search_mode": 3},
            2: {"power_index": None, "session": 2, "search_mode": 3},
        }


def test_llrp_reader_without_impinj_extensions_refuses_a_search_mode(recorder, run_reader):
    with LlrpReaderSimulator(field()) as sim:
        sim.impinj_extensions = False
        run_reader(
            protocol="llrp",
            host="127.0.0.1",
            tcp_port=sim.tcp_port,
            impinj_search_mode="dual_target",
        )
        recorder.wait_for(lambda: "down" in recorder.states())
        down = next(h for h in recorder.health if h.state == "down")
        assert "reader refused IMPINJ_ENABLE_EXTENSIONS: M_UnsupportedMessage" in down.detail
        assert recorder.reads == []


def test_llrp_refusal_is_reported_as_down_with_the_reason(recorder, run_reader):
    with LlrpReaderSimulator(field()) as sim:
        sim.refuse_add_rospec = "antenna 3 not connected"
        run_reader(protocol="llrp", host="127.0.0.1", tcp_port=sim.tcp_port)
        recorder.wait_for(lambda: "down" in recorder.states())
        down = next(h for h in recorder.health if h.state == "down")
        assert "reader refused ADD_ROSPEC: M_FieldError: antenna 3 not connected" in down.detail


def test_second_llrp_client_is_refused(recorder, run_reader):
    with LlrpReaderSimulator(field()) as sim:
        run_reader(protocol="llrp", host="127.0.0.1", tcp_port=sim.tcp_port, name="first")
        recorder.wait_for(lambda: "up" in recorder.states())
        second = Recorder()
        config = rfid_reader_config_from(
            {"protocol": "llrp", "host": "127.0.0.1", "tcp_port": sim.tcp_port, **FAST}
        )
        other = RfidReader(config, second.on_reads, second.on_health)
        other.start()
        try:
            second.wait_for(lambda: "down" in second.states())
        finally:
            other.stop()
        assert "another client is already connected" in second.health[-1].detail


def test_silent_reader_goes_down_then_recovers(recorder, run_reader):
    with SerialReaderSimulator("chafon", field()) as sim:
        run_reader(protocol="chafon", port=sim.pty_path, poll_interval_s=0.05, stale_after_s=0.3)
        recorder.wait_for(lambda: "up" in recorder.states())
        sim.silent = True
        recorder.wait_for(lambda: "down" in recorder.states())
        assert "no reply within 0.3 s" in recorder.health[-1].detail
        sim.silent = False
        recorder.wait_for(lambda: recorder.states().count("up") >= 2)


def test_corrupt_reply_is_counted_and_reading_goes_on(recorder, run_reader):
    with SerialReaderSimulator("chafon", field()) as sim:
        reader = run_reader(protocol="chafon", port=sim.pty_path, poll_interval_s=0.05)
        recorder.wait_for(lambda: "up" in recorder.states())
        sim.corrupt_next = True
        recorder.wait_for(lambda: reader.counters().bad_frames >= 1)
        count = len(recorder.reads)
        recorder.wait_for(lambda: len(recorder.reads) > count)


def test_cannot_open_reports_down_with_advice(recorder, run_reader):
    run_reader(protocol="chafon", port="/dev/does-not-exist")
    recorder.wait_for(lambda: "down" in recorder.states())
    assert "check the device path" in recorder.health[-1].detail


def test_quiet_ascii_reader_is_up_once_the_link_is_open(recorder, run_reader):
    with SerialReaderSimulator("ascii", TagField()) as sim:
        run_reader(protocol="ascii", port=sim.pty_path)
        recorder.wait_for(lambda: "up" in recorder.states())
        assert recorder.reads == []
