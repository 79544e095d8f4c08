"""Runs an EventPublisher in its own process so a test can SIGKILL it (last will test).

Usage: python -m tests.mqtt.publisher_process HOST PORT OUTBOX_PATH
Prints "connected" once the broker accepted the connection, then idles until killed.
"""

from __future__ import annotations

import sys
import time

from station.mqtt import EventPublisher, MqttConfig
from station.outbox import Outbox
from tests.mqtt.factories import SITE, STATION


def main(host: str, port: str, outbox_path: str) -> None:
    config = MqttConfig(host=host, port=int(port), keepalive_s=5)
    publisher = EventPublisher(config, Outbox(outbox_path), STATION, SITE)
    publisher.start()
    while not publisher.connected:
        time.sleep(0.02)
    print("connected", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(*sys.argv[1:4])
