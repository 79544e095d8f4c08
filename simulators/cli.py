"""`packstation simulate ...`: each simulator runs standalone for QA and technicians."""

from __future__ import annotations

import argparse

from simulators import camera, relay_sim, rfid_sim, scale_sim, scanner_sim, sink, wms


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    simulate = subparsers.add_parser(
        "simulate", help="run a hardware or backend simulator standalone"
    )
    simulators = simulate.add_subparsers(title="simulators", metavar="SIMULATOR", required=True)
    scale_sim.add_simulate_command(simulators)
    scanner_sim.add_simulate_command(simulators)
    sink.add_simulate_command(simulators)
    wms.add_simulate_command(simulators)
    rfid_sim.add_simulate_command(simulators)
    camera.add_simulate_command(simulators)
    relay_sim.add_simulate_command(simulators)
