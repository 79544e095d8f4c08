"""Actuator benchmark: how long the station takes to set and confirm its outputs over Modbus TCP.

    python -m benchmarks.actuator_bench [--smoke]
    (or as part of python -m benchmarks.run, through `run(smoke)`)

Figures, against pymodbus's own TCP server on 127.0.0.1 (simulators/modbus_sim.py) in a thread of
the same process, so they are the station's side plus a loopback round trip, not a PLC's scan time:
- one coil, echo checked: `ModbusCoils.write` of one coil with `read_back = false` (one FC05).
- one coil, read back: the same with the default `read_back = true` (FC05 then FC01).
- light change through the worker: a verdict's colour change (old colour off, new one on: two FC05
  and one FC01) timed inside the worker thread, as the daemon drives it.
Informational: the PASS -> label permission path waits for this confirmation (`outputs_pending`).

Baseline (2-core VM, load average 5-7 from other test suites, Python 3.11, pymodbus 3.16,
2026-11-26; 2,000 samples, the light change's last 1,000; two runs): one coil echo 0.34-0.36 ms
median, 5.5-5.8 ms p99; with read-back 0.65-0.67 ms median, 8.4-9.9 ms p99; light change
1.14-1.18 ms median, 9.8-13.9 ms p99. The p99s are scheduling on the loaded machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from benchmarks.figures import Figure, summary
from simulators.modbus_sim import ModbusCoilServer
from station.actuators.config import ModbusTcpActuatorConfig, OutputMap
from station.actuators.drivers import ModbusCoils
from station.actuators.worker import ActuatorBank
from station.clock import SystemClock
from station.light import LightColor

UNIT = 1
OUTPUTS = OutputMap(green=0, amber=1, red=2, buzzer=3, diverter=4)


def _config(port: int, read_back: bool) -> ModbusTcpActuatorConfig:
    return ModbusTcpActuatorConfig(
        type="modbus_tcp",
        name="bench",
        host="127.0.0.1",
        tcp_port=port,
        unit_id=UNIT,
        outputs=OUTPUTS,
        read_back=read_back,
    )


def _driver_ms(port: int, read_back: bool, count: int) -> list[float]:
    driver = ModbusCoils(_config(port, read_back))
    driver.open()
    samples = []
    try:
        for i in range(count):
            started = time.perf_counter()
            driver.write({2: i % 2 == 0})
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        driver.close()
    return samples


def _light_change_ms(port: int, count: int) -> list[float]:
    bank = ActuatorBank([_config(port, True)], SystemClock(), lambda *_: None, lambda w: w())
    bank.start()
    worker = bank.workers[0]
    try:
        for i in range(count):
            bank.set(LightColor.GREEN if i % 2 else LightColor.RED, False, 0.0)
            deadline = time.monotonic() + 5.0
            while not bank.settled and time.monotonic() < deadline:
                time.sleep(0.0005)
            if not bank.settled:
                raise RuntimeError("the bench Modbus server stopped confirming writes")
    finally:
        bank.stop()
    return [s * 1000 for s in list(worker.write_latencies_s)[-count:]]


def _figure(name: str, samples: list[float], note: str) -> Figure:
    median, p99 = summary(samples)
    return Figure(name, "ms", median, p99, note=f"{len(samples)} samples; {note}")


def run(smoke: bool) -> list[Figure]:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    count = 100 if smoke else 2_000
    server = ModbusCoilServer.tcp(UNIT)
    try:
        echo = _driver_ms(server.port, read_back=False, count=count)
        read_back = _driver_ms(server.port, read_back=True, count=count)
        light = _light_change_ms(server.port, count)
    finally:
        server.close()
    return [
        _figure("modbus tcp coil write (echo)", echo, "one FC05, loopback"),
        _figure("modbus tcp coil write + read-back", read_back, "FC05 + FC01, loopback"),
        _figure("light change via worker", light, "2x FC05 + FC01 in the worker thread"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    for figure in run(args.smoke):
        print(f"{figure.name}: median {figure.median:.2f} ms, p99 {figure.p99:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
