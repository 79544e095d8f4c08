"""Reading what a serial port has, without mistaking a tty's empty wake-up for a pulled cable."""

from __future__ import annotations

import os
from typing import Protocol

import serial

_EMPTY_READ = "returned no data"  # pyserial's words for a readable tty that gave nothing


class ReadablePort(Protocol):
    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...


def read_available(port: ReadablePort, node: str) -> bytes | None:
    """What has arrived on `port` (opened from `node`), or None for an empty wake-up.

    A tty can report itself readable and then hand over nothing (pyserial raises "device reports
    readiness to read but returned no data"), seen on ptys under load. While the device node is
    still there that is no data, not a lost link: a device that really went away takes its node
    with it (udev removes /dev/ttyUSB0 and its by-id link), and one that merely went quiet is
    caught by the caller's staleness check. Any other error is raised as before.
    """
    try:
        return port.read(max(1, port.in_waiting))
    except serial.SerialException as exc:
        if _EMPTY_READ not in str(exc) or not os.path.exists(node):
            raise
        return None
