"""Drivers: the blocking I/O of one output device. Each is used by exactly one worker thread
(`station.actuators.worker`), never on the loop. `write` raises `ActuatorError` unless the device
confirmed the new states."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol

import serial
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from station.actuators import relay
from station.actuators.config import (
    ActuatorConfig,
    ModbusRtuActuatorConfig,
    ModbusTcpActuatorConfig,
    SerialRelayActuatorConfig,
    SimulatedActuatorConfig,
)

log = logging.getLogger("packstation.actuators")
_KEPT_CHANGES = 1000  # SimulatedOutputs: the changes a test or a benchmark looks back on


class ActuatorError(Exception):
    """An output could not be set or confirmed; the message names the device and what to check."""


class OutputDriver(Protocol):
    def open(self) -> None:
        """Connect; raise ActuatorError when the device cannot be reached."""

    def write(self, states: Mapping[int, bool]) -> None:
        """Set each address ON/OFF and confirm it; raise ActuatorError otherwise."""

    def close(self) -> None: ...


def make_driver(config: ActuatorConfig) -> OutputDriver:
    match config:
        case ModbusTcpActuatorConfig() | ModbusRtuActuatorConfig():
            return ModbusCoils(config)
        case SerialRelayActuatorConfig():
            return SerialRelayBoard(config)
        case SimulatedActuatorConfig():
            return SimulatedOutputs(config.name)


class ModbusCoils:
    """Coils on a Modbus TCP or RTU device, one FC05 write per changed coil (its echo checked),
    then, with `read_back`, one FC01 read over the written span compared with what was asked."""

    def __init__(self, config: ModbusTcpActuatorConfig | ModbusRtuActuatorConfig) -> None:
        self._config = config
        self._where = f"actuator {config.name} (Modbus unit {config.unit_id} at {config.port})"
        # retries=0: the worker owns retrying, with backoff, and a verdict must not wait on
        # pymodbus's own retry loop.
        if isinstance(config, ModbusTcpActuatorConfig):
            self._client: ModbusTcpClient | ModbusSerialClient = ModbusTcpClient(
                config.host, port=config.tcp_port, timeout=config.timeout_s, retries=0
            )
        else:
            self._client = ModbusSerialClient(
                config.serial_port,
                baudrate=config.baudrate,
                parity=config.parity,
                stopbits=config.stopbits,
                timeout=config.timeout_s,
                retries=0,
            )

    def open(self) -> None:
        if not self._client.connect():
            raise ActuatorError(f"{self._where}: cannot connect; check power, cable and address")

    def write(self, states: Mapping[int, bool]) -> None:
        unit = self._config.unit_id
        try:
            for address, on in sorted(states.items()):
                response = self._client.write_coil(address, on, device_id=unit)
                if response.isError() or list(response.bits[:1]) != [on]:
                    raise ActuatorError(
                        f"{self._where}: coil {address} not set ({response}); check the coil map "
                        "and the unit id"
                    )
            if self._config.read_back and states:
                self._read_back(states)
        except ModbusException as exc:
            raise ActuatorError(f"{self._where}: {exc}; check the link") from exc

    def _read_back(self, states: Mapping[int, bool]) -> None:
        first, last = min(states), max(states)
        response = self._client.read_coils(
            first, count=last - first + 1, device_id=self._config.unit_id
        )
        if response.isError():
            raise ActuatorError(f"{self._where}: read-back refused ({response})")
        seen = {first + i: bool(bit) for i, bit in enumerate(response.bits[: last - first + 1])}
        wrong = sorted(a for a, on in states.items() if seen.get(a) != on)
        if wrong:
            raise ActuatorError(
                f"{self._where}: coils {wrong} read back wrong; is something else writing them?"
            )

    def close(self) -> None:
        self._client.close()


class SerialRelayBoard:
    """An LCUS-type relay board on a serial port (see `station.actuators.relay`)."""

    def __init__(self, config: SerialRelayActuatorConfig) -> None:
        self._config = config
        self._where = f"actuator {config.name} (relay board at {config.url})"
        self._port: serial.SerialBase | None = None

    def open(self) -> None:
        try:
            self._port = serial.serial_for_url(
                self._config.url,
                baudrate=self._config.baudrate,
                timeout=self._config.timeout_s,
                write_timeout=self._config.timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ActuatorError(f"{self._where}: cannot open ({exc}); is it plugged in?") from exc

    def write(self, states: Mapping[int, bool]) -> None:
        port = self._port
        if port is None:
            raise ActuatorError(f"{self._where}: not open")
        try:
            frames = b"".join(relay.encode_switch(ch, on) for ch, on in sorted(states.items()))
            port.write(frames)
            port.flush()
            if self._config.status_query and states:
                self._confirm(port, states)
        except (serial.SerialException, OSError) as exc:
            raise ActuatorError(f"{self._where}: {exc}; check the USB cable") from exc

    def _confirm(self, port: serial.SerialBase, states: Mapping[int, bool]) -> None:
        port.reset_input_buffer()
        port.write(bytes((relay.STATUS_QUERY,)))
        port.flush()
        answer = b""
        seen: dict[int, bool] = {}
        deadline = time.monotonic() + self._config.timeout_s
        while not states.keys() <= seen.keys() and time.monotonic() < deadline:
            answer += port.read(max(1, port.in_waiting))
            seen = relay.parse_status(answer)
        wrong = sorted(ch for ch, on in states.items() if seen.get(ch) != on)
        if wrong:
            heard = "no status answer" if not seen else f"status {seen}"
            raise ActuatorError(
                f"{self._where}: channels {wrong} not confirmed ({heard}); an LCUS-1 board does "
                "not answer status queries: set status_query = false"
            )

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None


class SimulatedOutputs:
    """No hardware: keeps the recent changes (address, state) in order and can be told to fail."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        # Bounded: a simulated station runs for hours in the load soak (benchmarks/soak.py),
        # where a list of every change was the one thing in the daemon that grew per carton.
        self.changes: deque[tuple[int, bool]] = deque(maxlen=_KEPT_CHANGES)
        self.states: dict[int, bool] = {}
        self._failure: str | None = None

    def fail(self, message: str | None) -> None:
        """From now on every open and write fails with `message` (None: works again)."""
        with self._lock:
            self._failure = message

    def open(self) -> None:
        self._check()

    def write(self, states: Mapping[int, bool]) -> None:
        self._check()
        with self._lock:
            for address, on in sorted(states.items()):
                if self.states.get(address) != on:
                    self.changes.append((address, on))
                self.states[address] = on

    def close(self) -> None:
        pass

    def _check(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise ActuatorError(f"actuator {self._name} (simulated): {failure}")
