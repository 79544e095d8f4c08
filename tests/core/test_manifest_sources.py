"""The HTTP manifest source against a real local http.server (the MQTT source is tested against
mosquitto in tests/mqtt/test_manifest_mqtt.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from simulators.broker import free_port
from station.catalog_file import load_catalog
from station.clock import ManualClock
from station.manifests import (
    FetchedManifest,
    HttpManifestSourceConfig,
    ManifestNotFound,
    ManifestService,
    RefusalCode,
    open_manifest_source,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
CATALOG = load_catalog(CONFIG_DIR / "catalog.example.json")
ORDER_1001 = (CONFIG_DIR / "manifests" / "ORD-1001" / "C1.json").read_bytes()
TOKEN = "tok-7f3a9c-never-log-me"


# --- HTTP ---------------------------------------------------------------------------------------


class FakeWms(BaseHTTPRequestHandler):
    status = 200
    delay_s = 0.0
    redirect_to: str | None = None
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).requests.append((self.path, self.headers.get("Authorization")))
        time.sleep(self.delay_s)
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ORDER_1001 if self.status == 200 else b'{"error": "nope"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Keep the test output quiet."""


def _serve_fake_wms() -> Iterator[type[FakeWms]]:
    handler = type("Wms", (FakeWms,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


wms = pytest.fixture(_serve_fake_wms)
other_host = pytest.fixture(_serve_fake_wms)


def http_service(wms, tmp_path: Path, **config) -> ManifestService:
    source = open_manifest_source(
        HttpManifestSourceConfig(
            url_template=wms.base_url + "/api/orders/{order_id}/cartons/{carton_id}",
            **{"timeout_s": 0.3, "token": TOKEN} | config,
        ),
    )
    return ManifestService(source, CATALOG, tmp_path / "cache", clock=ManualClock())


def test_http_200_returns_the_manifest_and_sends_the_token(wms, tmp_path) -> None:
    result = http_service(wms, tmp_path).fetch("ORD-1001", "C1")
    assert isinstance(result, FetchedManifest) and not result.from_cache
    assert wms.requests == [("/api/orders/ORD-1001/cartons/C1", f"Bearer {TOKEN}")]


def test_http_token_file_is_read_per_request(wms, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    service = http_service(wms, tmp_path, token=None, token_file=token_file)
    service.fetch("ORD-1001", "C1")
    token_file.write_text("rotated")
    service.fetch("ORD-1001", "C1")
    assert [auth for _, auth in wms.requests] == ["Bearer first", "Bearer rotated"]


def test_http_redirect_does_not_carry_the_token_along(wms, other_host, tmp_path) -> None:
    wms.redirect_to = other_host.base_url
    assert not http_service(wms, tmp_path).fetch("ORD-1001", "C1").from_cache
    assert wms.requests[0][1] == f"Bearer {TOKEN}"
    assert other_host.requests == [("/api/orders/ORD-1001/cartons/C1", None)]


def test_http_404_is_order_not_found(wms, tmp_path) -> None:
    wms.status = 404
    result = http_service(wms, tmp_path).fetch("ORD-1001", "C1")
    assert result.code is RefusalCode.NOT_FOUND
    assert result.message.startswith("Order not found")


def test_http_401_is_refused_without_falling_back(wms, tmp_path) -> None:
    service = http_service(wms, tmp_path)
    service.fetch("ORD-1001", "C1")
    wms.status = 401
    result = service.fetch("ORD-1001", "C1")
    assert result.code is RefusalCode.SOURCE_ERROR
    assert "HTTP 401" in result.message


@pytest.mark.parametrize("failure", ["http_500", "timeout", "connection_refused"])
def test_http_outage_falls_back_to_the_cache(wms, tmp_path, caplog, failure) -> None:
    service = http_service(wms, tmp_path)
    assert not service.fetch("ORD-1001", "C1").from_cache
    if failure == "http_500":
        wms.status = 500
    elif failure == "timeout":
        wms.delay_s = 1.0
    else:
        wms.base_url = f"http://127.0.0.1:{free_port()}"
        service = http_service(wms, tmp_path)
    with caplog.at_level(logging.DEBUG):
        result = service.fetch("ORD-1001", "C1")
    assert isinstance(result, FetchedManifest) and result.from_cache
    assert "cached manifest" in caplog.text
    assert TOKEN not in caplog.text


def test_http_ids_are_url_quoted(wms, tmp_path) -> None:
    wms.status = 404
    source = open_manifest_source(
        HttpManifestSourceConfig(url_template=wms.base_url + "/o/{order_id}/{carton_id}"),
    )
    with pytest.raises(ManifestNotFound):
        source.fetch("A B/C", "C1")
    assert wms.requests[0][0] == "/o/A%20B%2FC/C1"
