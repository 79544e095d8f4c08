"""systemd's side of the sd_notify protocol, for tests: the datagram socket a Type=notify
service is given in NOTIFY_SOCKET, keeping what the service says (READY=1, WATCHDOG=1, ...)."""

from __future__ import annotations

import socket
from pathlib import Path


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.setblocking(False)
        self.messages: list[str] = []

    def received(self) -> list[str]:
        """Every message so far, in order."""
        while True:
            try:
                self.messages.append(self._socket.recv(256).decode())
            except BlockingIOError:
                return self.messages

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
