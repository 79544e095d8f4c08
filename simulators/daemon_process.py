"""`packstation run` as a child process, for the end-to-end tests and the scenario runner.

The daemon runs exactly as on a station PC (its own interpreter, its own signal handling), so a
crash or a hang in it cannot take the caller down: the caller reads its JSON log lines, kills it
when it must, and shows the log's tail when something went wrong.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 10.0
# The daemon's log message for each frame the camera takes (counted, not applicable or failed).
FRAME_LOGGED = "vision frame"


class DaemonFailed(AssertionError):
    """The daemon did not start, or exited; the message holds its log's tail. An AssertionError so
    a test that meets it fails rather than errors."""


def wait_until(
    predicate: Callable[[], bool], timeout: float = TIMEOUT_S, poll: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def query(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read another process's SQLite file with a short-lived connection (WAL readers never block
    the writer); a file or table that does not exist yet reads as no rows."""
    if not db_path.exists():
        return []
    db = sqlite3.connect(db_path, timeout=5.0)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


class DaemonProcess:
    """`packstation run CONFIG` as a child process importing this worktree's code."""

    def __init__(self, config_path: Path, log_path: Path, clock_speed: float = 1.0) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.clock_speed = clock_speed
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(
        self,
        *,
        mqtt_up: bool = True,
        timeout: float = TIMEOUT_S,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """Start and return once the scanner and the scale are up (and MQTT, if `mqtt_up`).
        `environment`: more variables for the daemon, e.g. systemd's NOTIFY_SOCKET."""
        assert self.process is None, "daemon already running"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("NOTIFY_SOCKET", None)  # never the test runner's own systemd
        env.update(environment or {})
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "station.cli", "run", str(self.config_path)),
                    *("--clock-speed", str(self.clock_speed)),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=log,
            )
        ready = ['"msg": "scanner up"', '"health": "up"']
        if mqtt_up:
            ready.append('"msg": "connected"')
        if not wait_until(lambda: all(m in self.log_since_start() for m in ready), timeout):
            raise DaemonFailed(f"daemon not ready within {timeout} s:\n{self.log_tail()}")

    def log_since_start(self) -> str:
        if self.process is not None and self.process.poll() is not None:
            raise DaemonFailed(f"daemon exited with {self.process.returncode}:\n{self.log_tail()}")
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_messages(self) -> list[dict[str, Any]]:
        """The JSON log lines of the current run."""
        messages = []
        for line in self.log_since_start().splitlines():
            try:
                messages.append(json.loads(line))
            except ValueError:
                continue
        return messages

    def count_logged(
        self, matches: Callable[[dict[str, Any]], bool], since: tuple[int, int] = (0, 0)
    ) -> tuple[int, int]:
        """How many JSON lines of this run's log `matches`, reading only what was logged after
        `since` (a previous answer, or the start). Returns (count, position) to pass back."""
        counted, position = since
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset + position)
            new = log.read()
        complete = new[: new.rfind(b"\n") + 1]  # a line still being written counts next time
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            counted += isinstance(entry, dict) and matches(entry)
        return counted, position + len(complete)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no daemon log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a power cut, as far as the process is concerned)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
