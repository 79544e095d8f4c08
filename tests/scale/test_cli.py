from __future__ import annotations

import argparse

from scale.cli import add_commands
from simulators.scale_sim import ScaleSimulator, add_simulate_command


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
