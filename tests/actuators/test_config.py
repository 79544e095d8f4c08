"""The [[actuators]] section: the `type` key picks the driver, typos and clashes are refused."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from simulators.relay_sim import RelayBoardSimulator
from station.actuators.cli import check
from station.actuators.config import ActuatorConfig, SimulatedActuatorConfig, check_roles
from station.actuators.drivers import ActuatorError, SimulatedOutputs
from station.light import LightColor
from tests.actuators.conftest import wait_until
from tests.actuators.helpers import make_bank

ADAPTER = TypeAdapter(ActuatorConfig)
REPO = Path(__file__).resolve().parents[2]


def test_the_type_key_picks_the_driver_and_typos_are_refused() -> None:
    relay = ADAPTER.validate_python(
        {"type": "serial_relay", "name": "r", "url": "/dev/ttyUSB0", "outputs": {"red": 1}}
    )
    assert relay.port == "/dev/ttyUSB0"
    with pytest.raises(ValidationError, match="modbus_tcp"):
        ADAPTER.validate_python({"type": "modbus", "name": "x", "outputs": {"red": 1}})
    with pytest.raises(ValidationError, match="unit"):
        ADAPTER.validate_python(
            {"type": "modbus_tcp", "name": "x", "host": "h", "unit": 2, "outputs": {"red": 1}}
        )
    with pytest.raises(ValidationError, match="count from 1"):
        ADAPTER.validate_python(
            {"type": "serial_relay", "name": "r", "url": "/dev/ttyUSB0", "outputs": {"red": 0}}
        )
    with pytest.raises(ValidationError, match="share one address"):
        ADAPTER.validate_python(
            {"type": "simulated", "name": "s", "outputs": {"red": 1, "green": 1}}
        )


def test_a_role_driven_by_two_devices_is_refused() -> None:
    first = ADAPTER.validate_python({"type": "simulated", "name": "a", "outputs": {"red": 1}})
    second = ADAPTER.validate_python({"type": "simulated", "name": "b", "outputs": {"red": 2}})
    with pytest.raises(ValueError, match="red is driven by both a and b"):
        check_roles([first, second])
    with pytest.raises(ValueError, match="name used twice"):
        check_roles([first, first])


def test_the_simulated_device_records_every_change_and_can_fail() -> None:
    config = SimulatedActuatorConfig(
        type="simulated",
        name="sim",
        outputs={"green": 0, "red": 1, "diverter": 2},  # type: ignore[arg-type]
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    device = SimulatedOutputs("sim")
    bank, health = make_bank([config], {"sim": device})
    bank.start()
    try:
        bank.set(LightColor.GREEN, False, 0.0)
        bank.set_route("straight")
        assert wait_until(lambda: bank.settled and device.states == {0: True, 1: False, 2: True})
        assert {(0, True), (2, True)} <= set(device.changes)
        device.fail("power supply off")
        bank.set(LightColor.RED, False, 0.0)
        assert wait_until(health.is_down)
        assert health.last() == (
            "actuator sim",
            False,
            "actuator sim (simulated): power supply off",
        )
        device.fail(None)
        assert wait_until(lambda: bank.settled and device.states[1] is True)
    finally:
        bank.stop()
    with pytest.raises(ActuatorError):
        device.fail("x")
        device.write({0: True})


def test_the_example_configs_actuator_entries_are_valid() -> None:
    text = (REPO / "config" / "station.example.toml").read_text()
    section = text[text.index("\n[[actuators]]") : text.index("# Vision (optional")]
    active, *commented = section.split("# [[actuators]]")
    entries = [tomllib.loads(active)["actuators"][0]]
    for block in commented:
        lines = [re.sub(r"^# ?", "", line) for line in ("[[actuators]]" + block).splitlines()]
        entries.append(tomllib.loads("\n".join(lines))["actuators"][0])
    configs = [ADAPTER.validate_python(entry) for entry in entries]
    assert [c.type for c in configs] == ["simulated", "modbus_tcp", "modbus_rtu", "serial_relay"]


def test_the_check_command_cycles_every_output_and_reports_a_dead_device(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with RelayBoardSimulator(channels=2) as board:
        good = ADAPTER.validate_python(
            {
                "type": "serial_relay",
                "name": "r",
                "url": board.path,
                "outputs": {"red": 1, "green": 2},
            }
        )
        dead = ADAPTER.validate_python(
            {
                "type": "serial_relay",
                "name": "gone",
                "url": "/nonexistent/tty",
                "outputs": {"red": 1},
            }
        )
        problems = check([good, dead], hold_s=0.0)
        switched = [(s.channel, s.on) for s in board.switched]
    assert switched == [(2, True), (2, False), (1, True), (1, False)]  # green, then red
    assert len(problems) == 1 and "gone" in problems[0] and "/nonexistent/tty" in problems[0]
    assert "r: every output confirmed" in capsys.readouterr().out
