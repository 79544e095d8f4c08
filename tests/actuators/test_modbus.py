"""Modbus TCP and RTU coils against real pymodbus servers: what the station asks is what the
device's datastore holds, failures take the device down with a message that says what to check,
and the outputs come back after the device does."""

from __future__ import annotations

from pydantic import TypeAdapter

from simulators.modbus_sim import ModbusCoilServer
from station.actuators.config import ActuatorConfig
from station.light import LightColor
from tests.actuators.conftest import UNIT, wait_until
from tests.actuators.helpers import make_bank

# coil 0 green, 1 amber, 2 red, 3 buzzer, 4 diverter (ON = straight)
GREEN, AMBER, RED, BUZZER, DIVERTER = range(5)
OUTPUTS = {"green": GREEN, "amber": AMBER, "red": RED, "buzzer": BUZZER, "diverter": DIVERTER}


def tcp_config(port: int, **extra: object) -> ActuatorConfig:
    document = {
        "type": "modbus_tcp",
        "name": "plc",
        "host": "127.0.0.1",
        "tcp_port": port,
        "unit_id": UNIT,
        "outputs": OUTPUTS,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        **extra,
    }
    return TypeAdapter(ActuatorConfig).validate_python(document)


def test_the_light_and_the_diverter_land_in_the_coils(modbus_tcp: ModbusCoilServer) -> None:
    bank, health = make_bank([tcp_config(modbus_tcp.port)])
    bank.start()
    try:
        assert wait_until(lambda: bank.settled)
        assert modbus_tcp.coils(5) == [False] * 5  # fail-safe start: dark, exception lane

        bank.set(LightColor.GREEN, False, 0.0)
        bank.set_route("straight")
        assert wait_until(lambda: bank.settled)
        assert modbus_tcp.coils(5) == [True, False, False, False, True]

        bank.set(LightColor.RED, True, 0.0)
        bank.set_route("exception")
        assert wait_until(lambda: bank.settled)
        assert modbus_tcp.coils(5) == [False, False, True, True, False]
        assert health.reports == [
            ("actuator plc", True, "outputs confirmed on 127.0.0.1:" + str(modbus_tcp.port))
        ]
    finally:
        bank.stop()
    assert modbus_tcp.coils(5) == [False] * 5  # stopped: everything off


def test_a_diverter_wired_the_other_way_round_is_on_for_the_exception_lane(
    modbus_tcp: ModbusCoilServer,
) -> None:
    bank, _ = make_bank([tcp_config(modbus_tcp.port, diverter_on_means="exception")])
    bank.start()
    try:
        assert wait_until(lambda: bank.settled)
        assert modbus_tcp.coils(5)[DIVERTER] is True
        bank.set_route("straight")
        assert wait_until(lambda: bank.settled)
        assert modbus_tcp.coils(5)[DIVERTER] is False
    finally:
        bank.stop()


def test_a_wrong_unit_id_is_a_fault_naming_the_device_and_what_to_check(
    modbus_tcp: ModbusCoilServer,
) -> None:
    bank, health = make_bank([tcp_config(modbus_tcp.port, unit_id=UNIT + 1)])
    bank.start()
    try:
        assert wait_until(health.is_down)
        device, _, detail = health.last()  # type: ignore[misc]
        assert device == "actuator plc"
        assert f"Modbus unit {UNIT + 1} at 127.0.0.1:{modbus_tcp.port}" in detail
        assert "unit id" in detail
        bank.set(LightColor.GREEN, False, 0.0)
        assert not bank.settled
    finally:
        bank.stop()


def test_a_lost_device_is_down_then_back_with_the_current_state_rewritten(
    modbus_tcp: ModbusCoilServer,
) -> None:
    bank, health = make_bank([tcp_config(modbus_tcp.port, refresh_s=0.1, timeout_s=0.3)])
    bank.start()
    try:
        bank.set(LightColor.AMBER, False, 0.0)
        assert wait_until(lambda: bank.settled)
        modbus_tcp.stop()
        assert wait_until(health.is_down)
        assert "127.0.0.1" in health.last()[2]  # type: ignore[index]
        bank.set(LightColor.RED, True, 0.0)
        assert not bank.settled

        modbus_tcp.start()  # a fresh datastore: the device lost its outputs with its power
        assert wait_until(lambda: bank.settled)
        assert health.is_up()
        assert modbus_tcp.coils(5) == [False, False, True, True, False]
    finally:
        bank.stop()


def test_rtu_over_a_pty_cable_sets_and_reads_back_the_coils(
    modbus_rtu: tuple[ModbusCoilServer, str],
) -> None:
    server, station_end = modbus_rtu
    config = TypeAdapter(ActuatorConfig).validate_python(
        {
            "type": "modbus_rtu",
            "name": "io",
            "serial_port": station_end,
            "baudrate": 19200,
            "unit_id": UNIT,
            "outputs": {"red": 6, "diverter": 7},
            "timeout_s": 1.0,
        }
    )
    bank, health = make_bank([config])
    bank.start()
    try:
        bank.set(LightColor.RED, True, 0.0)
        assert wait_until(lambda: bank.settled)
        assert server.coils(8)[6:] == [True, False]
        bank.set(LightColor.GREEN, False, 0.0)
        bank.set_route("straight")
        assert wait_until(lambda: bank.settled)
        assert server.coils(8)[6:] == [False, True]
        assert health.reports[-1][1] is True
    finally:
        bank.stop()
