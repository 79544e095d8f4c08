"""`packstation actuators check CONFIG`: commissioning. Each configured output is switched ON for
a moment and OFF again, each write confirmed by the device, so a technician sees the lamps, hears
the buzzer and watches the gate move before the daemon runs (stop the daemon first: one program
per device)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from station.actuators.config import ActuatorConfig
from station.actuators.drivers import ActuatorError, make_driver


def check(actuators: list[ActuatorConfig], hold_s: float) -> list[str]:
    """Cycle every output; the problems found (empty: all confirmed). Prints as it goes."""
    problems = []
    for actuator in actuators:
        driver = make_driver(actuator)
        try:
            driver.open()
            for role, address in actuator.outputs.addresses().items():
                print(f"{actuator.name}: {role} (address {address}) ON", flush=True)
                driver.write({address: True})
                time.sleep(hold_s)
                driver.write({address: False})
            print(f"{actuator.name}: every output confirmed, all OFF", flush=True)
        except ActuatorError as exc:
            print(f"{actuator.name}: FAILED: {exc}", flush=True)
            problems.append(str(exc))
        finally:
            driver.close()
    return problems


def _run_check(args: argparse.Namespace) -> int:
    from station.config_loader import ConfigError
    from station.daemon import load_station_config

    try:
        config = load_station_config(args.config)
    except ConfigError as exc:
        print(exc.report())
        return 2
    return 1 if check(config.actuators, args.hold_s) else 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    actuators = subparsers.add_parser("actuators", help="stack light and diverter tools")
    commands = actuators.add_subparsers(title="actuator commands", metavar="COMMAND", required=True)
    cycle = commands.add_parser("check", help="switch each configured output on and off")
    cycle.add_argument("config", type=Path, help="station TOML file")
    cycle.add_argument(
        "--hold-s", type=float, default=1.0, help="seconds each output stays ON (default 1)"
    )
    cycle.set_defaults(func=_run_check)
