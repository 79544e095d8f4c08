from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from scale.cli import add_commands
from simulators.scale_sim import ScaleSimulator, add_simulate_command

REPO = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="packstation")
    add_commands(root.add_subparsers())
    return root


def test_scale_watch_prints_readings_and_health(capsys):
    with ScaleSimulator("nci", weight_g=1247.379) as simulator:
        args = parser().parse_args(
            ["scale", "watch", "--port", simulator.tcp_url, "--protocol", "nci", "--seconds", "0.4"]
        )
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "9600 7E1" in out
    assert "-- up:" in out
    assert "1247.4 g  stable  ok" in out
    assert "0 bad frames" in out


def test_scale_watch_rejects_bad_settings(capsys):
    args = parser().parse_args(
        ["scale", "watch", "--port", "socket://nohost", "--protocol", "mtsics"]
    )
    assert args.func(args) == 2
    assert "needs host:port" in capsys.readouterr().err


def test_simulate_scale_command_is_registered():
    root = argparse.ArgumentParser(prog="packstation")
    simulate = root.add_subparsers().add_parser("simulate")
    add_simulate_command(simulate.add_subparsers())
    args = root.parse_args(["simulate", "scale", "--protocol", "toledo", "--weight", "12"])
    assert (args.protocol, args.weight, args.tcp) == ("toledo", 12.0, None)


def packstation(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "station.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        **popen,
    )


def test_the_technicians_probe_reads_the_standalone_scale_simulator() -> None:
    """`packstation simulate scale` and `packstation scale watch`, each in its own interpreter."""
    simulator = packstation(
        "simulate", "scale", "--protocol", "mtsics", "--weight", "812.5",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert simulator.stdin is not None and simulator.stdout is not None
        banner = simulator.stdout.readline()  # "mtsics scale on /tmp/... -> /dev/pts/N"
        port = banner.split(" on ", 1)[1].split(" -> ", 1)[0]
        watch = packstation(
            "scale", "watch", "--port", port, "--protocol", "mtsics", "--seconds", "1.5",
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = watch.communicate(timeout=30)
        simulator.stdin.write("q\n")
        simulator.stdin.close()
        assert simulator.wait(timeout=10) == 0
    finally:
        if simulator.poll() is None:
            simulator.kill()
    assert watch.returncode == 0
    assert "-- up:" in out
    assert "812.5 g  stable  ok" in out
    assert "0 bad frames" in out
