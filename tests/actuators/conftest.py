"""Real Modbus servers from pymodbus (TCP on 127.0.0.1, RTU across a pty null modem)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from simulators.modbus_sim import ModbusCoilServer
from simulators.null_modem import NullModem

UNIT = 3
TIMEOUT_S = 10.0

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every refused request


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def modbus_tcp() -> Iterator[ModbusCoilServer]:
    with ModbusCoilServer.tcp(UNIT) as server:
        yield server


@pytest.fixture
def modbus_rtu() -> Iterator[tuple[ModbusCoilServer, str]]:
    """(server, the station's end of the cable)."""
    with NullModem() as cable:
        server_end, station_end = cable.paths
        with ModbusCoilServer.rtu(UNIT, server_end) as server:
            yield server, station_end
