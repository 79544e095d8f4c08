"""WMS simulator: answers the stations' manifest requests over MQTT from a directory of manifests.

Subscribes to every station's manifest/request topic (from the topic table) and answers each
`ManifestRequest` with a `ManifestResponse` read from `<dir>/<order_id>/<carton_id>.json`, the
layout of the directory source: found with the document, not found, or an `error` when the file
cannot be read. The answer goes to the request's MQTT 5 Response Topic with its Correlation Data
echoed; a request without them (MQTT 3.1.1) is answered on the station's fixed manifest/response
topic from the table. It can be made slow (`delay_s`) or silent (`silent`) to exercise the
station's timeout and cache fallback, and `answer` replaces the answer outright (fuzzing).

Answers are published from a worker thread, never from paho's callback. Usable as a library in
tests and as `packstation simulate wms`.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from station.events import (
    DEFAULT_TOPIC_PREFIX,
    TOPICS,
    ManifestRequest,
    ManifestResponse,
    TopicKey,
)
from station.manifests import (
    DirectoryManifestSource,
    DirectoryManifestSourceConfig,
    ManifestNotFound,
    ManifestSourceError,
)

log = logging.getLogger("packstation.wms")

DEFAULT_CLIENT_ID = "packstation-wms-simulator"

# What `answer` may return: a response model, raw payload bytes (anything, for fuzzing), or None
# for no answer at all.
Answer = ManifestResponse | bytes | None


@dataclass(frozen=True)
class _Job:
    request: ManifestRequest
    response_topic: str
    correlation_data: bytes | None
    received_at: float


class WmsSimulator:
    def __init__(
        self,
        host: str,
        port: int,
        manifest_dir: Path | None = None,
        *,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        protocol: Literal["5", "3.1.1"] = "5",
        client_id: str = DEFAULT_CLIENT_ID,
        delay_s: float = 0.0,
        silent: bool = False,
        answer: Callable[[ManifestRequest], Answer] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.delay_s = delay_s  # each answer waits this long (set it any time)
        self.silent = silent  # requests are received and recorded, never answered
        self.answer = answer  # replaces the directory look-up when set
        self.requests: list[ManifestRequest] = []
        self.invalid_requests = 0
        self._host = host
        self._port = port
        self._prefix = topic_prefix
        self._is_v5 = protocol == "5"
        self._echo = echo
        self._directory = (
            DirectoryManifestSource(DirectoryManifestSourceConfig(path=manifest_dir))
            if manifest_dir is not None
            else None
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self._is_v5 else paho.MQTTv311,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = lambda *_: self._subscribed.clear()
        self._client.on_message = self._on_message
        self._client.on_socket_open = _disable_nagle
        self._client.reconnect_delay_set(1, 5)

    def start(self, timeout: float = 10.0) -> None:
        """Connect and return once the request subscription is acknowledged."""
        self._worker = threading.Thread(target=self._work, name="wms-answers", daemon=True)
        self._worker.start()
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"WMS simulator did not subscribe at {self._host}:{self._port}")

    def stop(self) -> None:
        self._jobs.put(None)
        if self._worker is not None:
            self._worker.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    # -- answering ----------------------------------------------------------------------------

    def response_for(self, request: ManifestRequest) -> ManifestResponse:
        """What the directory says about a request."""

        def response(
            found: bool, manifest: dict[str, Any] | None = None, error: str | None = None
        ) -> ManifestResponse:
            return ManifestResponse(
                request_id=request.request_id,
                carton_id=request.carton_id,
                found=found,
                manifest=manifest,
                error=error,
            )

        if self._directory is None:
            return response(False, error="the WMS simulator has no manifest directory")
        try:
            raw = self._directory.fetch(request.order_id, request.carton_id)
        except ManifestNotFound:
            return response(False)
        except ManifestSourceError as exc:
            return response(False, error=str(exc))
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            return response(False, error="the manifest file is not JSON")
        if not isinstance(document, dict):
            return response(False, error="the manifest file is not a JSON object")
        return response(True, document)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            wait = job.received_at + self.delay_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if self.silent:
                continue
            answer = self.answer(job.request) if self.answer else self.response_for(job.request)
            if answer is None:
                continue
            payload = answer if isinstance(answer, bytes) else answer.model_dump_json().encode()
            properties = None
            if self._is_v5:
                properties = Properties(PacketTypes.PUBLISH)
                properties.ContentType = "application/json"
                if job.correlation_data is not None:
                    properties.CorrelationData = job.correlation_data
            spec = TOPICS[TopicKey.MANIFEST_RESPONSE]
            self._client.publish(job.response_topic, payload, qos=spec.qos, properties=properties)
            if self._echo is not None:
                found = getattr(answer, "found", "?")
                self._echo(
                    f"answered {job.request.order_id}/{job.request.carton_id}"
                    f" for {job.request.station_id}: found={found}"
                )

    # -- paho callbacks (network thread): parse and queue, never publish ----------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("WMS simulator connection refused", extra={"reason": str(reason_code)})
            return
        spec = TOPICS[TopicKey.MANIFEST_REQUEST]
        client.subscribe(spec.all_stations_filter(self._prefix), qos=spec.qos)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if not any(code.is_failure for code in reason_codes):
            self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            request = ManifestRequest.model_validate_json(message.payload)
        except ValidationError:
            self.invalid_requests += 1
            log.warning("invalid manifest request dropped", extra={"topic": message.topic})
            return
        response_topic = getattr(message.properties, "ResponseTopic", None) or self._fixed_topic(
            message.topic
        )
        if response_topic is None:
            self.invalid_requests += 1
            return
        self.requests.append(request)
        correlation = getattr(message.properties, "CorrelationData", None)
        self._jobs.put(_Job(request, response_topic, correlation, time.monotonic()))

    def _fixed_topic(self, request_topic: str) -> str | None:
        """MQTT 3.1.1: the requesting station's manifest/response topic from the table."""
        station = TOPICS[TopicKey.MANIFEST_REQUEST].station_of(request_topic, self._prefix)
        if station is None:
            return None
        return TOPICS[TopicKey.MANIFEST_RESPONSE].topic(*station, prefix=self._prefix)


def _disable_nagle(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Answers go out at once, not after the broker's delayed TCP ACK."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- command line ------------------------------------------------------------------------------


def add_simulate_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `wms` to the subparsers of `packstation simulate`."""
    parser = subparsers.add_parser("wms", help="WMS: answer manifest requests from a directory")
    parser.add_argument("--host", default="localhost", help="broker host")
    parser.add_argument("--port", type=int, default=1883, help="broker port")
    parser.add_argument(
        "--dir", type=Path, required=True, help="manifests as <order_id>/<carton_id>.json"
    )
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version")
    parser.add_argument("--topic-prefix", default=DEFAULT_TOPIC_PREFIX, help="topic prefix")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="MQTT client id")
    parser.add_argument("--delay", type=float, default=0.0, help="answer after this many s")
    parser.add_argument("--silent", action="store_true", help="receive requests, never answer")
    parser.set_defaults(func=run_wms)


def run_wms(args: argparse.Namespace) -> int:
    wms = WmsSimulator(
        args.host,
        args.port,
        args.dir,
        topic_prefix=args.topic_prefix,
        protocol=args.protocol,
        client_id=args.client_id,
        delay_s=args.delay,
        silent=args.silent,
        echo=lambda line: print(line, flush=True),
    )
    wms.start()
    print(
        f"WMS simulator answering from {args.dir} at {args.host}:{args.port}; Ctrl-C to stop",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        wms.stop()
    print(f"{len(wms.requests)} requests, {wms.invalid_requests} invalid", flush=True)
    return 0
