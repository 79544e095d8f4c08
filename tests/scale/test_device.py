"""The supervisor against the real simulator, over a real pseudo-terminal and over TCP."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from scale.config import ScaleConfigModel, scale_config_from
from scale.device import DeviceHealth, ScaleDevice, open_serial
from scale.readings import ScaleStatus, WeightReading
from simulators.scale_sim import ScaleSimulator
from station.supervision import reconnect_delay_s

FAST = {
    "poll_interval_s": 0.02,
    "read_timeout_s": 0.2,
    "stale_after_s": 0.4,
    "reconnect_min_s": 0.05,
    "reconnect_max_s": 0.2,
}


class Recorder:
    """Collects what the device thread reports; `wait_for` polls a condition with a deadline."""

    def __init__(self) -> None:
        self.readings: list[tuple[WeightReading, float]] = []
        self.health: list[DeviceHealth] = []
        self._lock = threading.Lock()

    def on_reading(self, reading: WeightReading, ts: float) -> None:
        with self._lock:
            self.readings.append((reading, ts))

    def on_health(self, health: DeviceHealth) -> None:
        with self._lock:
            self.health.append(health)

    def states(self) -> list[str]:
        with self._lock:
            return [h.state for h in self.health]

    def last_grams(self) -> float | None:
        with self._lock:
            return self.readings[-1][0].grams if self.readings else None

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; health {self.states()}")
            time.sleep(0.01)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def run_device(recorder: Recorder) -> Iterator[Callable[..., ScaleDevice]]:
    devices: list[ScaleDevice] = []

    def start(protocol: str, port: str, **settings: object) -> ScaleDevice:
        config: ScaleConfigModel = scale_config_from(
            {"protocol": protocol, "port": port, **FAST, **settings}
        )
        device = ScaleDevice(config, recorder.on_reading, recorder.on_health)
        devices.append(device)
        device.start()
        return device

    yield start
    for device in devices:
        assert device.stop(timeout_s=1.0)


def url(simulator: ScaleSimulator, transport: str) -> str:
    return simulator.pty_path if transport == "pty" else simulator.tcp_url


@pytest.mark.parametrize("transport", ["pty", "tcp"])
@pytest.mark.parametrize(
    ("protocol", "resolution_g"), [("mtsics", 0.1), ("nci", 4.6), ("toledo", 4.6)]
)
def test_readings_arrive_in_grams(protocol, resolution_g, transport, recorder, run_device):
    with ScaleSimulator(protocol, weight_g=1234.5, stream_hz=50) as simulator:
        device = run_device(protocol, url(simulator, transport))
        recorder.wait_for(lambda: len(recorder.readings) >= 3)
        reading, ts = recorder.readings[-1]
        assert reading.grams == pytest.approx(1234.5, abs=resolution_g / 2)
        assert (reading.status, reading.device_stable) == (ScaleStatus.OK, True)
        assert ts <= time.monotonic()
        assert recorder.states() == ["connecting", "up"]
        assert device.counters().bad_frames == 0


def test_motion_then_settled_weight(recorder, run_device):
    with ScaleSimulator("mtsics", weight_g=0.0) as simulator:
        run_device("mtsics", simulator.pty_path)
        recorder.wait_for(lambda: recorder.last_grams() == 0.0)
        simulator.set_weight(800.0, motion_s=0.3)
        recorder.wait_for(lambda: any(r.status is ScaleStatus.MOTION for r, _ in recorder.readings))
        recorder.wait_for(lambda: recorder.last_grams() == 800.0)
        assert recorder.readings[-1][0].device_stable


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_disconnect_goes_down_then_back_up_by_itself(transport, recorder, run_device):
    with ScaleSimulator("nci", weight_g=500.0) as simulator:
        run_device("nci", url(simulator, transport))
        recorder.wait_for(lambda: recorder.states()[-1:] == ["up"])
        simulator.disconnect()
        recorder.wait_for(lambda: recorder.states()[-1:] == ["down"])
        time.sleep(0.3)  # several failed reopen attempts: still one "down", no flapping
        assert recorder.states() == ["connecting", "up", "down"]
        count_while_down = len(recorder.readings)
        simulator.reconnect()
        recorder.wait_for(lambda: recorder.states()[-1:] == ["up"])
        recorder.wait_for(lambda: len(recorder.readings) > count_while_down)
        assert recorder.states() == ["connecting", "up", "down", "up"]


def test_silence_marks_down_with_an_actionable_message(recorder, run_device):
    with ScaleSimulator("mtsics", weight_g=10.0) as simulator:
        run_device("mtsics", simulator.pty_path)
        recorder.wait_for(lambda: recorder.states()[-1:] == ["up"])
        simulator.set_silent(True)
        recorder.wait_for(lambda: recorder.states()[-1:] == ["down"])
        detail = recorder.health[-1].detail
        assert simulator.pty_path in detail
        assert "no reply to SI within 0.4 s" in detail
        assert "9600 8N1 configured" in detail
        simulator.set_silent(False)
        recorder.wait_for(lambda: recorder.states()[-1:] == ["up"])


def test_wrong_protocol_says_bytes_arrive_but_no_valid_frame(recorder, run_device):
    with ScaleSimulator("mtsics") as simulator:  # answers NCI's W with ES
        run_device("nci", simulator.tcp_url)
        recorder.wait_for(lambda: recorder.states()[-1:] == ["down"])
        assert "bytes but no valid nci frame" in recorder.health[-1].detail
        assert "converter's serial settings" in recorder.health[-1].detail


def test_missing_port_is_reported_down_and_stop_is_prompt(recorder, run_device, tmp_path):
    device = run_device("toledo", str(tmp_path / "ttyUSB9"))
    recorder.wait_for(lambda: recorder.states()[-1:] == ["down"])
    assert "cannot open the port" in recorder.health[-1].detail
    started = time.monotonic()
    assert device.stop(timeout_s=1.0)
    assert time.monotonic() - started < 0.3


def test_stop_is_prompt_while_reading(recorder, run_device):
    with ScaleSimulator("toledo", weight_g=100.0) as simulator:
        device = run_device("toledo", simulator.pty_path)
        recorder.wait_for(lambda: len(recorder.readings) >= 1)
        started = time.monotonic()
        assert device.stop(timeout_s=1.0)
        assert time.monotonic() - started < 0.3


def test_mtsics_stream_mode_reads_sir_without_polling(recorder, run_device):
    with ScaleSimulator("mtsics", weight_g=42.0, stream_hz=50) as simulator:
        run_device("mtsics", simulator.pty_path, mtsics_mode="stream", poll_interval_s=0.35)
        recorder.wait_for(lambda: len(recorder.readings) >= 10)  # polling would give one
        assert recorder.last_grams() == 42.0


def test_zero_command_reaches_the_scale(recorder, run_device):
    with ScaleSimulator("mtsics", weight_g=7.0) as simulator:
        device = run_device("mtsics", simulator.pty_path)
        recorder.wait_for(lambda: recorder.last_grams() == 7.0)
        assert device.zero()
        recorder.wait_for(lambda: recorder.last_grams() == 0.0)
        assert not run_device("toledo", simulator.pty_path).zero()  # streaming, no commands


def test_tare_command_reaches_an_mtsics_scale_and_only_mtsics_has_one(recorder, run_device):
    with ScaleSimulator("mtsics", weight_g=250.0) as simulator:
        device = run_device("mtsics", simulator.pty_path)
        recorder.wait_for(lambda: recorder.last_grams() == 250.0)
        assert device.tare()
        recorder.wait_for(lambda: recorder.last_grams() == 0.0)  # SI now answers net
        simulator.set_weight(400.0)
        recorder.wait_for(lambda: recorder.last_grams() == 150.0)
    with ScaleSimulator("nci", weight_g=250.0) as simulator:
        assert not run_device("nci", simulator.pty_path).tare()


@pytest.mark.parametrize("protocol", ["mtsics", "nci"])
def test_request_reading_polls_at_once_between_poll_cycles(protocol, recorder, run_device):
    with ScaleSimulator(protocol, weight_g=500.0) as simulator:
        device = run_device(protocol, simulator.pty_path, poll_interval_s=5.0, stale_after_s=10.0)
        recorder.wait_for(lambda: len(recorder.readings) == 1)  # the first poll only
        requested = time.monotonic()
        assert device.request_reading()
        recorder.wait_for(lambda: len(recorder.readings) == 2, timeout_s=1.0)
        assert recorder.readings[-1][1] > requested
        assert time.monotonic() - requested < 1.0  # long before the next 5 s poll


def test_request_reading_is_refused_when_the_scale_streams(recorder, run_device):
    with ScaleSimulator("toledo", weight_g=5.0, stream_hz=20) as simulator:
        device = run_device("toledo", simulator.pty_path)
        recorder.wait_for(lambda: len(recorder.readings) >= 1)
        assert not device.request_reading()


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 0.5, 0.5), (2, 0.5, 1.0), (4, 2.0, 4.0), (20, 15.0, 30.0)]
)
def test_reconnect_delay_doubles_with_jitter_between_the_limits(failures, low, high):
    rng = random.Random(1)
    delays = [reconnect_delay_s(failures, 0.5, 30.0, rng) for _ in range(50)]
    assert all(low <= delay <= high for delay in delays)
    assert len(set(delays)) > 1 or low == high


class _ReadableButEmptyOnce:
    """A real serial port whose third read fails as pyserial does when a tty reports itself
    readable and hands over nothing (seen on ptys under load)."""

    def __init__(self, port) -> None:
        self._port, self._reads = port, 0

    def __getattr__(self, name: str):
        return getattr(self._port, name)

    def read(self, size: int = 1) -> bytes:
        self._reads += 1
        if self._reads == 3:
            raise serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)"
            )
        return self._port.read(size)


def test_a_readable_tty_that_returns_nothing_is_not_a_lost_link(recorder) -> None:
    with ScaleSimulator("mtsics", weight_g=250.0) as sim:
        config = scale_config_from({"protocol": "mtsics", "port": sim.pty_path, **FAST})
        device = ScaleDevice(
            config,
            recorder.on_reading,
            recorder.on_health,
            open_port=lambda c: _ReadableButEmptyOnce(open_serial(c)),
        )
        device.start()
        try:
            recorder.wait_for(lambda: len(recorder.readings) > 10)
            assert "down" not in recorder.states()
            assert device.counters().empty_reads == 1
            sim.disconnect()  # the node goes away with the pty: that is a lost link
            recorder.wait_for(lambda: "down" in recorder.states())
        finally:
            assert device.stop(timeout_s=1.0)
