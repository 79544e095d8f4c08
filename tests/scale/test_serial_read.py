"""read_available: an empty wake-up of a tty is no data; anything else still breaks the link."""

from __future__ import annotations

from pathlib import Path

import pytest
import serial

from station.serial_read import read_available


class _Port:
    def __init__(self, error: str | None = None, data: bytes = b"") -> None:
        self.in_waiting = len(data)
        self._error, self._data = error, data

    def read(self, size: int = 1) -> bytes:
        if self._error:
            raise serial.SerialException(self._error)
        return self._data[:size]


EMPTY = "device reports readiness to read but returned no data (device disconnected?)"


def test_data_and_empty_wake_ups(tmp_path: Path) -> None:
    node = tmp_path / "tty"
    node.touch()
    assert read_available(_Port(data=b"S S 1.0 g\r\n"), str(node)) == b"S S 1.0 g\r\n"
    assert read_available(_Port(EMPTY), str(node)) is None


def test_a_vanished_node_or_another_error_is_a_lost_link(tmp_path: Path) -> None:
    with pytest.raises(serial.SerialException):
        read_available(_Port(EMPTY), str(tmp_path / "gone"))
    node = tmp_path / "tty"
    node.touch()
    with pytest.raises(serial.SerialException, match="read failed"):
        read_available(_Port("read failed: [Errno 5] Input/output error"), str(node))
