"""systemd integration for `Type=notify` units: readiness, stopping, and the watchdog.

All of it is a no-op when the daemon is not started by systemd (no NOTIFY_SOCKET).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping


def notify(message: str) -> None:
    """Send one sd_notify message (READY=1, STOPPING=1, WATCHDOG=1)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to ping the watchdog: half of WatchdogSec, as sd_watchdog_enabled(3) advises;
    None when the unit has no watchdog or it is meant for another process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
