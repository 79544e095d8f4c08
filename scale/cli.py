"""`packstation scale watch`: print live readings and health changes, to probe a scale."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from pydantic import ValidationError

from scale.config import scale_config_from
from scale.device import DeviceHealth, ScaleDevice
from scale.readings import WeightReading
from scale.weighing import StabilityTracker


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    scale = subparsers.add_parser("scale", help="scale tools")
    commands = scale.add_subparsers(title="scale commands", metavar="COMMAND")
    watch = commands.add_parser(
        "watch", help="print live readings (grams, stable, status) until Ctrl-C"
    )
    watch.add_argument("--port", required=True, help="/dev/ttyUSB0, socket://host:port, ...")
    watch.add_argument("--protocol", choices=("mtsics", "nci", "toledo"), required=True)
    watch.add_argument("--baudrate", type=int)
    watch.add_argument("--bytesize", type=int, choices=(7, 8))
    watch.add_argument("--parity", choices=("N", "E", "O"))
    watch.add_argument("--stopbits", type=int, choices=(1, 2))
    watch.add_argument("--xonxoff", action="store_true", default=None)
    watch.add_argument("--mtsics-mode", choices=("poll", "stream"))
    watch.add_argument("--division", type=float, dest="division_g", help="display division (g)")
    watch.add_argument("--seconds", type=float, help="stop after this long (for scripts)")
    watch.set_defaults(func=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    settings = {"division_g", "baudrate", "bytesize", "parity", "stopbits", "xonxoff"}
    data: dict[str, Any] = {"protocol": args.protocol, "port": args.port}
    data |= {key: getattr(args, key) for key in settings if getattr(args, key) is not None}
    if args.mtsics_mode is not None:
        data["mtsics_mode"] = args.mtsics_mode
    try:
        config = scale_config_from(data)
    except ValidationError as exc:
        print(f"invalid scale settings:\n{exc}", file=sys.stderr)
        return 2
    tracker = StabilityTracker.from_config(config)
    print_lock = threading.Lock()

    def on_reading(reading: WeightReading, ts: float) -> None:
        tracker.observe(reading, ts)
        with print_lock:
            print(format_reading(reading, tracker.assess(ts).state), flush=True)

    def on_health(health: DeviceHealth) -> None:
        with print_lock:
            print(f"-- {health.state}: {health.detail}", flush=True)

    print(f"watching {config.protocol} scale on {config.port} ({config.serial_summary}); Ctrl-C")
    device = ScaleDevice(config, on_reading, on_health)
    device.start()
    try:
        if args.seconds:
            time.sleep(args.seconds)
        else:
            threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        device.stop()
    counters = device.counters()
    print(
        f"{counters.readings} readings, {counters.bad_frames} bad frames, "
        f"{counters.dropped_bytes} bytes dropped, {counters.reconnects} reconnects"
    )
    return 0


def format_reading(reading: WeightReading, weighing: str) -> str:
    grams = "—" if reading.grams is None else f"{reading.grams:10.1f} g"
    stable = "stable" if reading.device_stable else "moving"
    return f"{grams:>12}  {stable:6}  {reading.status:13}  {weighing:10}  {reading.raw!r}"
