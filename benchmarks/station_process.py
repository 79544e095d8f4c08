"""The daemon as a station runs it (`python -m station.cli run`, its own process), what /proc says
about that process, and a packer who packs at a person's pace on the simulated rig.

Shared by memory_bench (one daemon: memory, idle CPU, start-up) and stations_bench (several
daemons on one box: verdict latency under load).
"""

from __future__ import annotations

import compileall
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from simulators.daemon_process import FRAME_LOGGED
from simulators.rig import PAPERWORK_G, SimulatedStation

REPO = Path(__file__).resolve().parent.parent
HEAVY_LIBRARIES = ("numpy", "cv2", "opencv", "onnxruntime", "torch")
LogEntry = dict[str, object]
_TIMEOUT_S = 30.0
# An installed station has its .pyc files (pip compiles at install); a development shell with
# PYTHONDONTWRITEBYTECODE would make every daemon start compile ~90 modules from source. The
# benchmarks compile them once into the usual __pycache__ folders (ignored by git). Not with
# PYTHONPYCACHEPREFIX: that moves every package's cache, and numpy, OpenCV or pydantic would
# then start from source.
SOURCE_PACKAGES = ("station", "scale", "rfid", "vision", "simulators")


def precompile() -> None:
    """Byte-compile the project's packages (only what changed since the last time)."""
    for package in SOURCE_PACKAGES:
        compileall.compile_dir(REPO / package, quiet=1)


class DaemonSilent(RuntimeError):
    """The daemon did not log what was waited for in time."""


class DaemonProcess:
    """`python -m station.cli run <config>` with its JSON log lines followed on a thread."""

    def __init__(
        self, config: Path, log_path: Path, timeout_s: float = _TIMEOUT_S, compiled: bool = True
    ) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        if compiled:
            precompile()
        self.timeout_s = timeout_s
        self.spawned = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "station.cli", "run", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.pid = self.process.pid
        self._log = log_path.open("a")
        self._lines: list[tuple[float, LogEntry]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            at = time.monotonic()
            line = raw.decode(errors="replace")
            self._log.write(line)
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"msg": line.strip()}
            with self._changed:
                self._lines.append((at, entry))
                self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[LogEntry], bool], after: int = 0, timeout_s: float | None = None
    ) -> tuple[int, float]:
        """(index, arrival time) of the first log entry from `after` on that matches."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._changed:
            while True:
                for index in range(after, len(self._lines)):
                    at, entry = self._lines[index]
                    if predicate(entry):
                        return index, at
                after = len(self._lines)
                if self.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise DaemonSilent("the daemon did not log what was expected in time")
                self._changed.wait(0.5)

    def entry(self, index: int) -> LogEntry:
        with self._changed:
            return self._lines[index][1]

    def seen(self) -> int:
        with self._changed:
            return len(self._lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        self._log.close()


def is_ready(entry: LogEntry) -> bool:
    return entry.get("msg") == "station ready"


def is_all_devices_up(entry: LogEntry) -> bool:
    return entry.get("msg") == "all devices up"


def is_verdict_light(entry: LogEntry) -> bool:
    return entry.get("msg") == "light set" and entry.get("color") in ("green", "red", "amber")


def is_vision_frame(entry: LogEntry) -> bool:
    """An insertion's frame was counted, or found not applicable, or failed (logged either way)."""
    return entry.get("msg") == FRAME_LOGGED


def logged_at(entry: LogEntry) -> float:
    """The wall-clock time (epoch seconds) of a JSON log line: millisecond resolution."""
    return datetime.fromisoformat(str(entry["ts"])).timestamp()


# -- /proc -----------------------------------------------------------------------------------


def status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU of this process: the benchmark and the simulators it hosts (scale, scanner, RFID)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def heavy_libraries(pid: int) -> list[str]:
    mapped = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        lowered = path.lower()
        mapped.update(lib for lib in HEAVY_LIBRARIES if f"/{lib}" in lowered)
    return sorted(mapped)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine() -> str:
    """`nproc` and the CPU model, for figures that depend on them."""
    return f"{len(os.sched_getaffinity(0))} x {cpu_model()}"


# -- a packer at a person's pace ----------------------------------------------------------------

# Cartons whose verdict involves every channel: ORD-1002/C2 and ORD-1004/C1 carry RFID-tagged
# units (headphones, earrings), all three have units the camera sees and a weight step per unit.
ALL_CHANNEL_CARTONS = (("ORD-1001", "C1"), ("ORD-1002", "C2"), ("ORD-1004", "C1"))


# A settled step's frame comes within the vision capture timeout (2 s on the rig); a placement
# the weight channel did not see as its own step (two merged, a light unit in the scale's noise)
# gets no frame: the packer goes on after this long.
FRAME_WAIT_S = 6.0


def fill_paced(
    rig: SimulatedStation, daemon: DaemonProcess, order_id: str, carton_id: str, reach_s: float
) -> int:
    """Open the carton and put the box and each unit in, each insertion once the camera took the
    previous one's frame (the weight settled and the frame was counted) plus `reach_s` for the
    next unit. The packer is logged in; the caller scans CLOSE (the weight has settled).
    Returns how many placements got no frame within FRAME_WAIT_S."""
    manifest = rig.manifest(order_id, carton_id)
    assert manifest.box_code is not None
    rig.scan(f"{order_id}/{carton_id}")
    time.sleep(0.2)  # the manifest fetch
    rig.scan(manifest.box_code)
    unframed = 0
    for sku in [None, *rig.units_of(manifest)]:
        seen = daemon.seen()
        if sku is None:
            rig.place(rig.box_weight(manifest.box_code) + PAPERWORK_G)
        else:
            rig.add_unit(sku)
        try:
            daemon.wait_for(is_vision_frame, after=seen, timeout_s=FRAME_WAIT_S)
        except DaemonSilent:
            unframed += 1
        time.sleep(reach_s)
    return unframed
