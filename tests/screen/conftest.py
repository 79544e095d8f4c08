"""A whole station for the screen and API tests: mosquitto, the simulated scale and scanner on
ptys, and the daemon (API on a free port) on its own loop in a thread, as `packstation run` runs
it. Reviewer R1 (PIN 2468) may release cartons; the packer logs in with badge 7."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from simulators.broker import MosquittoBroker, MosquittoNotFound
from simulators.rig import SimulatedStation
from station.api.pins import hash_pin
from station.daemon import StationDaemon, load_station_config
from station.domain import Manifest, ManifestLine
from station.session import SessionState

TOKEN = "test-token-0123456789"
PACKER = "7"
REVIEWER, REVIEWER_PIN = "R1", "2468"
PIN_HASH = hash_pin(REVIEWER_PIN)
# Weighable products only, so a missing cookbook is a certain BLOCK (not a REVIEW).
SHORT_ORDER = Manifest(
    order_id="ORD-2001",
    carton_id="C1",
    version=1,
    lines=(
        ManifestLine(line_id="1", sku="MUG-BLUE", quantity=1),
        ManifestLine(line_id="2", sku="BOOK-COOK", quantity=1),
    ),
)


def picture_png(colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((48, 64, 3), colour, np.uint8))
    assert ok
    return encoded.tobytes()


def with_cookbook_picture(workdir: Path) -> dict[str, Any]:
    """Rig options for a station whose pictures_dir (relative to the config, which the rig
    writes into `workdir`) holds the cookbook's picture."""
    (workdir / "pictures").mkdir(parents=True)
    (workdir / "pictures" / "BOOK-COOK.png").write_bytes(picture_png())
    return {"catalog_options": 'pictures_dir = "pictures"'}


def station_toml() -> str:
    return f"""
[api]
port = 0
token = "{TOKEN}"
screen_refresh_s = 0.1

[review]
max_failed_pins = 3

[[reviewers]]
badge = "{REVIEWER}"
name = "Lead"
pin_hash = "{PIN_HASH}"

[[reviewers]]
badge = "{PACKER}"
name = "A packer who is also a reviewer"
pin_hash = "{PIN_HASH}"
"""


@dataclass
class RunningStation:
    rig: SimulatedStation
    daemon: StationDaemon
    base_url: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, _decode(response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers)

    def state(self) -> SessionState:
        return self.daemon.session.state

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the station did not get there in time")
            time.sleep(0.02)

    def pack_short(self, order_id: str = "ORD-1003", sku: str = "BOOK-COOK") -> None:
        """Pack ORD-1003 leaving one `sku` out, and wait for the BLOCK."""
        self.rig.pack(PACKER, order_id, "C1", "BOX-M", leave_out=(sku,))
        self.wait_for(lambda: self.state() is SessionState.BLOCKED)


def _decode(raw: bytes, headers: Any) -> Any:
    if headers.get("Content-Type", "").startswith("application/json"):
        return json.loads(raw)
    return raw.decode()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    try:
        mosquitto = MosquittoBroker(tmp_path_factory.mktemp("broker"))
    except MosquittoNotFound as missing:
        pytest.fail(str(missing))
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def run_station(
    workdir: Path,
    broker: MosquittoBroker,
    mode: str = "enforce",
    extra: str = "",
    **rig_options: Any,
) -> Iterator[RunningStation]:
    """`rig_options`: more SimulatedStation fields (e.g. catalog_path, catalog_options)."""
    rig = SimulatedStation(
        workdir,
        broker.host,
        broker.port,
        mode=mode,
        extra_config=station_toml() + extra,
        **rig_options,
    )
    rig.start()
    daemon = StationDaemon(load_station_config(rig.config_path))
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(daemon.run(ready=ready.set)), name="daemon", daemon=True
    )
    thread.start()
    try:
        assert ready.wait(15) and daemon.devices_seen.wait(15), "the daemon did not start"
        assert daemon.api is not None
        yield RunningStation(rig, daemon, f"http://127.0.0.1:{daemon.api.port}")
    finally:
        daemon.stop()
        thread.join(15)
        rig.stop()


@pytest.fixture
def station(tmp_path: Path, broker: MosquittoBroker) -> Iterator[RunningStation]:
    yield from run_station(tmp_path / "station", broker)
