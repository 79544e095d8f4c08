"""A Modbus coil controller (a PLC or an I/O module) from pymodbus's own server, over TCP or RTU,
on its own asyncio loop in a thread: `coils()` reads its datastore, `stop()`/`start()` power it
off and on (a restarted device has lost its outputs, like a real one)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

COILS = 16
_TIMEOUT_S = 10.0


def coil_device(unit: int) -> SimDevice:
    def bits() -> list[SimData]:
        return [SimData(0, count=COILS, values=False, datatype=DataType.BITS)]

    def registers() -> list[SimData]:
        return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]

    # Separate blocks: coil N is bit N (a PLC's or an I/O module's usual coil addressing).
    return SimDevice(id=unit, simdata=(bits(), bits(), registers(), registers()))


class ModbusCoilServer:
    """One unit's coils behind a pymodbus server made by `make(device)`."""

    def __init__(self, unit: int, make: Callable[[SimDevice], Any]) -> None:
        self.unit = unit
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server: Any = None
        self._port = 0
        self.start()

    @classmethod
    def tcp(cls, unit: int, port: int = 0) -> ModbusCoilServer:
        """On 127.0.0.1; a restart keeps the port, so a client's reconnect finds it again."""
        chosen = {"port": port}

        def make(device: SimDevice) -> ModbusTcpServer:
            return ModbusTcpServer(device, address=("127.0.0.1", chosen["port"]))

        server = cls(unit, make)
        chosen["port"] = server.port
        return server

    @classmethod
    def rtu(cls, unit: int, serial_port: str, baudrate: int = 19200) -> ModbusCoilServer:
        return cls(
            unit, lambda device: ModbusSerialServer(device, port=serial_port, baudrate=baudrate)
        )

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_TIMEOUT_S)

    def start(self) -> None:
        async def start() -> Any:
            server = self._make(coil_device(self.unit))
            await server.serve_forever(background=True)
            return server

        self.server = self._call(start())
        sockets = getattr(self.server.transport, "sockets", None)  # TCP only
        if sockets:
            self._port = int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._call(self.server.shutdown())

    @property
    def port(self) -> int:
        """The TCP port (kept while the server is off); 0 for RTU."""
        return self._port

    def coils(self, count: int = 8) -> list[bool]:
        values = self._call(self.server.async_getValues(self.unit, 1, 0, count))
        return [bool(v) for v in values]

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_TIMEOUT_S)

    def __enter__(self) -> ModbusCoilServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
