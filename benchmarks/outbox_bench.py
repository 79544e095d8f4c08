"""Outbox benchmark: durable commit latency, and backlog drain rate vs raw paho QoS 1.

    python -m benchmarks.outbox_bench [--smoke] [--host H --port P]

Without --host a private mosquitto is started (simulators/broker.py). The backlog is built with
`Outbox.commit` on tmpfs (setup speed only) and copied to disk, so the drain pays real fsyncs for
its deletes. The raw baseline publishes the very same payloads with one paho client, same broker,
same in-flight window, TCP_NODELAY like the publisher, and waits for every PUBACK; it keeps nothing
on disk.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker
from station.events import EventType, Mode, Outcome, VerificationResult, event_source, topic_for
from station.mqtt import EventPublisher, MqttConfig
from station.outbox import Outbox

SITE, STATION = "bench", "st1"
SOURCE = event_source(SITE, STATION)
TOPIC = topic_for(EventType.VERIFICATION_RESULT, SITE, STATION)
# mosquitto's default Receive Maximum; the publisher caps its window to it, so does the baseline.
WINDOW = 20


def _payload(n: int) -> VerificationResult:
    return VerificationResult(
        station_id=STATION,
        site_id=SITE,
        order_id=f"O-{n}",
        carton_id=f"C-{n}",
        manifest_version="1",
        attempt=1,
        mode=Mode.ENFORCE,
        outcome=Outcome.PASS,
    )


def commit_latency_ms(directory: Path, count: int) -> list[float]:
    outbox = Outbox(directory / "latency.db")
    latencies = []
    for n in range(count):
        started = time.perf_counter()
        outbox.commit(
            EventType.VERIFICATION_RESULT, TOPIC, _payload(n), source=SOURCE, subject=f"C-{n}"
        )
        latencies.append((time.perf_counter() - started) * 1000)
    outbox.close()
    return latencies


def build_backlog(target: Path, count: int) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as fast:
        outbox = Outbox(Path(fast) / "backlog.db")
        for n in range(count):
            outbox.commit(
                EventType.VERIFICATION_RESULT, TOPIC, _payload(n), source=SOURCE, subject=f"C-{n}"
            )
        outbox.close()  # checkpoints the WAL into the main file
        shutil.copy(Path(fast) / "backlog.db", target)


def drain_rate(broker: tuple[str, int], backlog: Path, count: int) -> float:
    outbox = Outbox(backlog)
    config = MqttConfig(host=broker[0], port=broker[1], max_inflight=WINDOW)
    publisher = EventPublisher(config, outbox, STATION, SITE)
    started = time.perf_counter()
    publisher.start()
    while outbox.depth() > 0:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    publisher.stop(timeout=1)
    outbox.close()
    return count / elapsed


def raw_paho_rate(broker: tuple[str, int], payloads: list[bytes]) -> float:
    """The same window, kept by the publishing thread: handing paho all 100,000 messages at once
    stalled it here (paho 2.2 stopped sending after ~66,000 queued publishes)."""
    window = threading.Semaphore(WINDOW)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    client.on_publish = lambda *_: window.release()
    client.on_socket_open = lambda _client, _userdata, sock: sock.setsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
    )
    started = time.perf_counter()
    client.connect(*broker)
    client.loop_start()
    for payload in payloads:
        window.acquire()
        client.publish(TOPIC, payload, qos=1)
    for _ in range(WINDOW):
        window.acquire()
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return len(payloads) / elapsed


def run(smoke: bool, broker: tuple[str, int] | None = None) -> dict[str, float]:
    commits, backlog_size = (100, 5_000) if smoke else (1_000, 100_000)
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        mosquitto = None
        if broker is None:
            mosquitto = MosquittoBroker(directory / "broker")
            mosquitto.start()
            broker = (mosquitto.host, mosquitto.port)
        try:
            latencies = commit_latency_ms(directory, commits)
            backlog = directory / "backlog.db"
            build_backlog(backlog, backlog_size)
            payloads = [event.payload for event in Outbox(backlog).pending(backlog_size)]
            raw = raw_paho_rate(broker, payloads)
            drained = drain_rate(broker, backlog, backlog_size)
        finally:
            if mosquitto is not None:
                mosquitto.stop()
    return {
        "commit_ms_p50": statistics.median(latencies),
        "commit_ms_p99": statistics.quantiles(latencies, n=100)[98],
        "backlog_events": float(backlog_size),
        "drain_events_per_s": drained,
        "raw_paho_events_per_s": raw,
        "drain_vs_raw_ratio": drained / raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small counts, for CI")
    parser.add_argument("--host", help="use this broker instead of a private mosquitto")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    figures = run(args.smoke, (args.host, args.port) if args.host else None)
    for name, value in figures.items():
        print(f"{name:24s} {value:12.2f}")


if __name__ == "__main__":
    main()
