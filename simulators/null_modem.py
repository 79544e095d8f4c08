"""A null-modem cable between two real ptys: whatever one end's program writes, the other end's
program reads. Two pyserial users (a Modbus RTU server and the station's client) each open one
`path`, as if an RS-485 pair joined two USB adapters."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty

_POLL_S = 0.02


class NullModem:
    def __init__(self) -> None:
        self._ends = [os.openpty(), os.openpty()]
        for _master, slave in self._ends:
            tty.setraw(slave)
        self.paths = tuple(os.ttyname(slave) for _master, slave in self._ends)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="null-modem", daemon=True)

    def __enter__(self) -> NullModem:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for master, slave in self._ends:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _run(self) -> None:
        (a, _), (b, _) = self._ends
        other = {a: b, b: a}
        while not self._stop.is_set():
            readable, _, _ = select.select([a, b], [], [], _POLL_S)
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue  # that end is not open by anyone right now
                with contextlib.suppress(OSError):
                    os.write(other[fd], data)
