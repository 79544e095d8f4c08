"""Memory benchmark: the daemon as it runs on a station, without vision.

`packstation run` (python -m station.cli run) is started as a subprocess against the simulated
rig (pty scale and scanner, example catalog and manifests) and a private mosquitto. Figures:

- start-up: from spawning the process to its "station ready" log line (interpreter start, imports,
  config, catalog, SQLite stores, threads). Median over a few starts (smoke: one).
- resident memory: VmRSS from /proc/<pid>/status after the rig's packer has packed a few cartons
  through it (target <= 120 MB, 2-core station without vision); VmHWM (peak) in the note, with
  the heavy native libraries (numpy, OpenCV, onnxruntime) found mapped in the process, if any:
  without vision none of them should be loaded.
- idle CPU: utime+stime from /proc/<pid>/stat over a few seconds with nobody packing (a packer
  logged in, no carton open): the cost of scale polling, the tick and the MQTT keepalive.

Baseline (2-core VM, Python 3.11, full run 2026-11-26,
measured while other test suites ran on the same 2 cores): start-up 728 ms, VmRSS 43.5 MB
(VmHWM 43.5 MB, 6 threads, no numpy/OpenCV/onnxruntime mapped), idle CPU 2 % of a core.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.figures import Figure, summary
from simulators.broker import MosquittoBroker
from simulators.rig import SimulatedStation

RSS_TARGET_MB = 120.0
REPO = Path(__file__).resolve().parent.parent
CARTONS = (
    ("ORD-1001", "C1", "BOX-S"),
    ("ORD-1002", "C1", "BOX-M"),
    ("ORD-1002", "C2", "BOX-S"),
    ("ORD-1004", "C1", "BOX-M"),
)
HEAVY_LIBRARIES = ("numpy", "cv2", "opencv", "onnxruntime", "torch")
_TIMEOUT_S = 30.0


def _progress(message: str) -> None:
    print(f"  memory: {message}", file=sys.stderr, flush=True)


class _Daemon:
    """`python -m station.cli run <config>` with its JSON log lines followed on a thread."""

    def __init__(self, config: Path, log_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
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
        self._lines: list[tuple[float, dict]] = []
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

    def wait_for(self, predicate, after: int = 0) -> tuple[int, float]:
        """(index, arrival time) of the first log entry from `after` on that matches."""
        deadline = time.monotonic() + _TIMEOUT_S
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
                    raise RuntimeError("the daemon did not log what was expected in time")
                self._changed.wait(0.5)

    def entry(self, index: int) -> dict:
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


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    raise KeyError(field)


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _heavy_libraries(pid: int) -> list[str]:
    mapped = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        lowered = path.lower()
        mapped.update(lib for lib in HEAVY_LIBRARIES if f"/{lib}" in lowered)
    return sorted(mapped)


def _counts(lights: dict[str, int]) -> str:
    return ", ".join(f"{n} {colour}" for colour, n in sorted(lights.items()))


def _is_ready(entry: dict) -> bool:
    return entry.get("msg") == "station ready"


def _is_verdict_light(entry: dict) -> bool:
    return entry.get("msg") == "light set" and entry.get("color") in ("green", "red", "amber")


def run(smoke: bool) -> list[Figure]:
    starts, rounds, idle_s = (1, 1, 3.0) if smoke else (3, 5, 10.0)
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as work:
        workdir = Path(work)
        broker = MosquittoBroker(workdir / "broker")
        broker.start()
        rig = SimulatedStation(workdir / "rig", broker.host, broker.port).start()
        log_path = workdir / "daemon.log"
        startup_ms: list[float] = []
        daemon = None
        try:
            for n in range(starts):
                _progress(f"starting the daemon ({n + 1}/{starts})")
                daemon = _Daemon(rig.config_path, log_path)
                _, ready_at = daemon.wait_for(_is_ready)
                startup_ms.append((ready_at - daemon.spawned) * 1000)
                if n < starts - 1:
                    daemon.stop()
            assert daemon is not None
            # Scans written before the scanner's port is open are flushed by pyserial's open.
            daemon.wait_for(lambda entry: entry.get("msg") == "all devices up")
            packed, lights = 0, {}
            _progress(f"packing {rounds * len(CARTONS)} cartons through it")
            for _ in range(rounds):
                for order, carton, box in CARTONS:
                    rig.clear_platter()
                    seen = daemon.seen()
                    rig.pack("4711", order, carton, box)
                    index, _ = daemon.wait_for(_is_verdict_light, after=seen)
                    colour = daemon.entry(index).get("color", "?")
                    lights[colour] = lights.get(colour, 0) + 1
                    packed += 1
                    if colour != "green":  # a BLOCK or REVIEW keeps the carton open: abort it
                        rig.scan("LOGOUT")
            rig.clear_platter()
            time.sleep(1.0)  # the empty platter settles; nothing open from here on
            rss_mb = _status_kb(daemon.pid, "VmRSS") / 1024
            hwm_mb = _status_kb(daemon.pid, "VmHWM") / 1024
            threads = int(_status_kb(daemon.pid, "Threads"))
            heavy = _heavy_libraries(daemon.pid)
            _progress(f"idle CPU over {idle_s:g} s")
            cpu0, t0 = _cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(idle_s)
            idle_cpu = (_cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0) * 100
        finally:
            if daemon is not None:
                daemon.stop()
            rig.stop()
            broker.stop()
    s50, s99 = summary(startup_ms)
    return [
        Figure(
            "daemon start-up to 'station ready'",
            "ms",
            s50,
            s99 if len(startup_ms) > 1 else None,
            note=f"{len(startup_ms)} starts of python -m station.cli run against the rig",
        ),
        Figure(
            "daemon resident memory (VmRSS)",
            "MB",
            rss_mb,
            target=f"<= {RSS_TARGET_MB:g} MB",
            met=rss_mb <= RSS_TARGET_MB,
            note=f"after {packed} cartons ({_counts(lights)}); peak VmHWM {hwm_mb:.1f} MB; "
            f"{threads} threads; "
            f"heavy libraries mapped: {', '.join(heavy) or 'none'}",
        ),
        Figure(
            "daemon idle CPU",
            "% of a core",
            idle_cpu,
            note=f"utime+stime over {idle_s:g} s, packer logged in, no carton open, "
            "scale polled every "
            f"{rig.timing.poll_interval_s:g} s",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.run import render_table

    print(render_table(run(smoke="--smoke" in sys.argv)))
