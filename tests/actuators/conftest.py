"""Real Modbus servers from pymodbus (TCP on 127.0.0.1, RTU across a pty null modem), each on
its own asyncio loop in a thread, with a coil datastore the tests read back."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.null_modem import NullModem

UNIT = 3
COILS = 16
TIMEOUT_S = 10.0

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every refused request


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _device(unit: int) -> SimDevice:
    def bits() -> list[SimData]:
        return [SimData(0, count=COILS, values=False, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]

    # Separate blocks: coil N is bit N (a PLC's or an I/O module's usual coil addressing).
    return SimDevice(id=unit, simdata=(bits(), bits(), registers(), registers()))


class ModbusServerThread:
    """A pymodbus server serving one unit; `coils()` reads its datastore."""

    def __init__(self, make: Callable[[SimDevice], Any]) -> None:
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server: Any = None
        self.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(TIMEOUT_S)

    def start(self) -> None:
        async def start() -> Any:
            server = self._make(_device(UNIT))
            await server.serve_forever(background=True)
            return server

        self.server = self._call(start())

    def stop(self) -> None:
        self._call(self.server.shutdown())

    @property
    def port(self) -> int:
        return self.server.transport.sockets[0].getsockname()[1]

    def coils(self, count: int = 8) -> list[bool]:
        return [bool(v) for v in self._call(self.server.async_getValues(UNIT, 1, 0, count))]

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)


@pytest.fixture
def modbus_tcp() -> Iterator[ModbusServerThread]:
    holder: dict[str, int] = {}

    def make(device: SimDevice) -> ModbusTcpServer:
        # The same port after a restart, so a station's reconnect finds it again.
        return ModbusTcpServer(device, address=("127.0.0.1", holder.get("port", 0)))

    server = ModbusServerThread(make)
    holder["port"] = server.port
    yield server
    server.close()


@pytest.fixture
def modbus_rtu() -> Iterator[tuple[ModbusServerThread, str]]:
    """(server, the station's end of the cable)."""
    with NullModem() as cable:
        server_end, station_end = cable.paths
        server = ModbusServerThread(
            lambda device: ModbusSerialServer(device, port=server_end, baudrate=19200)
        )
        yield server, station_end
        server.close()
