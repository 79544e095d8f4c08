"""MQTT publisher: drains the SQLite outbox to the broker with paho-mqtt 2.x.

Threads and who does what:
- callers (session, light, screen) call `publish()`: a durable outbox commit, then a wake-up. They
  never wait for the network.
- paho's network thread (loop_start) runs the callbacks. They only record state, queue acks and
  wake the drainer: publishing from inside a paho callback can deadlock.
- the drainer thread is the only one that publishes. It keeps up to a bounded window of events in
  flight, deletes a batch of rows per wake-up once their PUBACKs are in, and republishes the
  retained "online" after every (re)connect.

A PUBACK reason code >= 0x80 (MQTT 5, e.g. 0x87 not authorised) keeps the event in the outbox,
raises a PUBLISH_REJECTED fault and holds back newer events until a retry succeeds, so the broker
sees station events in sequence order. Under MQTT 3.1.1 a broker acknowledges a publish it dropped
(ACL denial): nothing on the station can notice; prefer MQTT 5 (docs/mqtt.md).
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import socket
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from station.clock import Clock, SystemClock
from station.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    DEFAULT_TOPIC_PREFIX,
    TOPICS,
    Availability,
    AvailabilityState,
    Direction,
    EventType,
    TopicKey,
    TopicSpec,
    event_source,
    topic_for,
)
from station.outbox import Outbox, OwedRecord, StoredEvent

log = logging.getLogger("packstation.mqtt")

_FIRST_FAILURE_CODE = 0x80


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the broker certificate; None: system CAs."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Private key of the client cert.")
    insecure: bool = Field(
        default=False,
        description="Skip broker host name verification: test benches only.",
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be given together")
        return self


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="localhost", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version; only 5 reports refused publishes (PUBACK reason codes).",
    )
    client_id: str | None = Field(
        default=None,
        description="Unique per station; default packstation-<site_id>.<station_id> (station ids "
        "repeat across sites that share a broker). Duplicates flap.",
    )
    username: str | None = Field(default=None, description="Broker user name.")
    password: SecretStr | None = Field(default=None, description="Broker password (secret).")
    password_file: Path | None = Field(
        default=None, description="File holding the broker password, instead of `password`."
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; None: plain TCP.")
    keepalive_s: int = Field(
        default=30, ge=5, description="Keepalive; bounds how long a dead link goes unnoticed."
    )
    topic_prefix: str = Field(
        default=DEFAULT_TOPIC_PREFIX, description="Prefix of every topic in the topic table."
    )
    session_expiry_s: int = Field(
        default=300,
        ge=0,
        description=(
            "MQTT 5 session expiry: the broker keeps subscriptions and queued responses across a"
            " reconnect for this long. Each process start begins a clean session."
        ),
    )
    max_inflight: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Events published and awaiting PUBACK at once (capped by the broker's"
        " Receive Maximum).",
    )
    replay_acked_s: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="Events the broker acknowledged this many seconds or less before the"
        " connection was lost are published again after the reconnect (consumers drop repeats"
        " by id): mosquitto acknowledges before it saves, so a broker killed right after an"
        " acknowledgement loses the event. 0: never.",
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(
        default=60.0, gt=0, description="Reconnect delay cap (the delay doubles per failure)."
    )

    @model_validator(mode="after")
    def _credentials_consistent(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password else None


class FaultCode(StrEnum):
    CONNECTION_REFUSED = "MQTT_CONNECTION_REFUSED"
    PUBLISH_REJECTED = "MQTT_PUBLISH_REJECTED"
    OUTBOX_FAILED = "OUTBOX_FAILED"
    INVALID_MESSAGE = "MQTT_INVALID_MESSAGE"


def _why_unreachable(host: str, port: int, timeout_s: float = 2.0) -> str:
    """A quick probe of why nothing answers at host:port (paho does not tell)."""
    try:
        socket.getaddrinfo(host, port)
    except OSError as exc:
        return f"the name {host} does not resolve ({exc})"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except ConnectionRefusedError:
        return f"nothing listens on {host}:{port} (connection refused)"
    except OSError as exc:
        return f"no answer from {host}:{port} ({exc})"
    return "the TCP port answers, so the TLS handshake or the MQTT greeting fails"


@dataclass(frozen=True)
class Fault:
    """A publisher fault starting (`active`) or ending; the daemon shows it and may publish it."""

    code: FaultCode
    active: bool
    message: str
    reason_code: int | None
    at: datetime


class ConnectionState(StrEnum):
    UP = "up"
    DOWN = "down"
    CONNECTING = "connecting"


@dataclass(frozen=True)
class PublisherHealth:
    state: ConnectionState
    outbox_depth: int
    inflight: int
    session: int
    faults: tuple[Fault, ...]
    last_ack_monotonic: float | None


@dataclass(frozen=True)
class ReceivedMessage:
    """An inbound message on a subscribe-side topic, payload validated against the table model."""

    key: TopicKey
    topic: str
    payload: BaseModel
    correlation_data: bytes | None


@dataclass(frozen=True)
class InvalidMessage:
    """An inbound message whose payload does not validate against the table model."""

    key: TopicKey
    topic: str
    raw: bytes
    correlation_data: bytes | None
    error: str  # a short summary of what did not validate


MessageHandler = Callable[[ReceivedMessage], None]
InvalidMessageHandler = Callable[[InvalidMessage], None]


_READ_AHEAD_WINDOWS = 4  # outbox rows read per query while draining, in windows


@dataclass
class _DrainState:
    """Owned by the drainer thread only, so it needs no lock."""

    inflight: dict[int, StoredEvent] = field(default_factory=dict)
    acked: list[int] = field(default_factory=list)  # station seqs accepted, not yet deleted
    dispatched_upto: int = 0
    # Read ahead from the outbox, in order, not yet sent: one query per few windows instead of
    # one per PUBACK while a backlog drains.
    queued: deque[StoredEvent] = field(default_factory=deque)
    rejected: dict[int, StoredEvent] = field(default_factory=dict)  # by station seq
    # (when, event) for every event the broker accepted within the last `replay_acked_s`.
    recently_acked: deque[tuple[float, StoredEvent]] = field(default_factory=deque)
    retry_at: float = 0.0
    retry_delay_s: float = 0.0


def default_client_id(site_id: str, station_id: str) -> str:
    """Unique on a broker several sites share: station ids are unique only within their site, and
    two clients with one id take the session from each other in turn. The dot cannot occur in
    either id, so no two (site, station) pairs give the same client id."""
    return f"packstation-{site_id}.{station_id}"


class EventPublisher:
    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        station_id: str,
        site_id: str,
        clock: Clock | None = None,
        on_fault: Callable[[Fault], None] | None = None,
        max_inbound_bytes: int | None = None,
    ) -> None:
        """`max_inbound_bytes`: larger inbound messages are dropped unread (None: no bound)."""
        self._config = config
        self._max_inbound_bytes = max_inbound_bytes
        self._outbox = outbox
        self._station_id = station_id
        self._site_id = site_id
        self._clock = clock or SystemClock()
        self._on_fault = on_fault
        self.client_id = config.client_id or default_client_id(site_id, station_id)
        self.source = event_source(site_id, station_id)
        self._is_v5 = config.protocol == "5"
        self._session = 0
        self._state = ConnectionState.DOWN
        self._server_receive_maximum: int | None = None
        self._server_max_packet: int | None = None
        self._announce_online = False
        # Set by paho's thread: when the connection was lost, and whether the events acknowledged
        # just before that are still to be published again.
        self._lost_at = 0.0
        self._unreachable_said = False  # "broker unreachable" logged for this outage
        self._replay_due = False
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._drain = _DrainState()
        self._drainer: threading.Thread | None = None
        self._faults: dict[FaultCode, Fault] = {}
        self._lock = threading.Lock()
        self._last_ack_monotonic: float | None = None
        self._subscriptions: dict[
            str, tuple[TopicSpec, MessageHandler, InvalidMessageHandler | None]
        ] = {}
        self._client = self._make_client()

    # -- public interface ----------------------------------------------------------------------

    def start(self) -> None:
        self._session = self._outbox.next_publisher_session()
        self._client.will_set(
            self._topic(TopicKey.AVAILABILITY),
            self._availability(AvailabilityState.OFFLINE),
            qos=TOPICS[TopicKey.AVAILABILITY].qos,
            retain=True,
        )
        self._state = ConnectionState.CONNECTING
        log.info(
            "connecting",
            extra={
                "host": self._config.host,
                "port": self._config.port,
                "client_id": self.client_id,
                "session": self._session,
            },
        )
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive_s,
            clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties(),
        )
        self._client.loop_start()
        self._drainer = threading.Thread(target=self._drain_loop, name="mqtt-drainer", daemon=True)
        self._drainer.start()

    def publish(
        self,
        event_type: EventType,
        data: dict[str, Any] | BaseModel,
        subject: str | None = None,
        logical_key: str | None = None,
        owed: OwedRecord | None = None,
    ) -> StoredEvent:
        """Commit the event durably and wake the drainer; never waits for the broker. `owed`:
        see `Outbox.commit`."""
        stored = self._outbox.commit(
            event_type,
            topic_for(event_type, self._site_id, self._station_id, self._config.topic_prefix),
            data,
            source=self.source,
            subject=subject,
            logical_key=logical_key,
            owed=owed,
        )
        self._wake.set()
        return stored

    def subscribe(
        self,
        topic_key: TopicKey,
        handler: MessageHandler,
        on_invalid: InvalidMessageHandler | None = None,
    ) -> None:
        """Call `handler` (on the paho network thread: hand off, do not block) for each valid
        message on this station's topic, and `on_invalid` (same thread) for each message that
        does not validate (logged and dropped without it). Subscriptions are renewed on every
        connect. A shared site-level topic (`TopicSpec.shared`) delivers every station's messages,
        this station's own included: the handler tells them apart."""
        spec = TOPICS[topic_key]
        if spec.direction is not Direction.SUBSCRIBE and not spec.shared:
            raise ValueError(f"{topic_key} is a publish-side topic")
        topic = self._topic(topic_key)
        self._subscriptions[topic] = (spec, handler, on_invalid)
        if self.connected:
            self._client.subscribe(topic, qos=spec.qos)

    def send(
        self, topic_key: TopicKey, payload: BaseModel, correlation_data: bytes | None = None
    ) -> bool:
        """Publish a message that is not an event (no outbox, no retry) on a table topic, right
        away on this connection at the table's QoS; False when the link is down (it is dropped).
        `correlation_data` (an answer to a request) goes out as the MQTT 5 property.
        Thread-safe; never call it from a paho callback."""
        spec = TOPICS[topic_key]
        if spec.direction is not Direction.PUBLISH or spec.event_types:
            raise ValueError(f"{topic_key} is not a topic for plain messages")
        if not isinstance(payload, spec.payload):
            raise TypeError(f"{topic_key} carries {spec.payload.__name__}")
        if not self.connected:
            return False
        properties = None
        if self._is_v5 and correlation_data is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation_data
            properties.ContentType = "application/json"
        info = self._client.publish(
            self._topic(topic_key),
            payload.model_dump_json().encode(),
            qos=spec.qos,
            retain=spec.retain,
            properties=properties,
        )
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def request(
        self,
        topic_key: TopicKey,
        payload: BaseModel,
        correlation_data: bytes,
        expiry_s: float | None = None,
    ) -> bool:
        """Publish a request (not an event: no outbox, no retry) on a table topic that has a
        response topic, right away on this connection, at the table's QoS. MQTT 5 adds Response
        Topic (this station's topic for the answers) and Correlation Data; `expiry_s` becomes the
        Message Expiry Interval, so a request nobody takes in time is dropped by the broker.
        False when the link is down: the caller fails at once instead of waiting. Thread-safe;
        never call it from a paho callback (a subscription handler)."""
        spec = TOPICS[topic_key]
        if spec.direction is not Direction.PUBLISH or spec.response is None:
            raise ValueError(f"{topic_key} is not a request topic")
        if not isinstance(payload, spec.payload):
            raise TypeError(f"{topic_key} carries {spec.payload.__name__}")
        if not self.connected:
            return False
        properties = None
        if self._is_v5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self._topic(spec.response)
            properties.CorrelationData = correlation_data
            properties.ContentType = "application/json"
            if expiry_s is not None:
                properties.MessageExpiryInterval = max(1, math.ceil(expiry_s))
        info = self._client.publish(
            self._topic(topic_key),
            payload.model_dump_json().encode(),
            qos=spec.qos,
            retain=spec.retain,
            properties=properties,
        )
        # NO_CONN (the link dropped since the check): paho would send it after reconnecting, late;
        # the caller gives up now and a late answer finds nobody waiting.
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what the broker accepts within `timeout` s, publish retained offline, disconnect.
        Whatever is left stays in the outbox for the next start."""
        self._flush_deadline = self._clock.monotonic() + self._clock.real_seconds(timeout)
        self._stopping.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join(timeout + 1.0)
        if self.connected:
            info = self._client.publish(
                self._topic(TopicKey.AVAILABILITY),
                self._availability(AvailabilityState.OFFLINE),
                qos=TOPICS[TopicKey.AVAILABILITY].qos,
                retain=True,
            )
            _wait_quietly(info, timeout=1.0)
        self._client.disconnect()
        self._client.loop_stop()
        self._state = ConnectionState.DOWN
        log.info("stopped", extra={"outbox_depth": self._outbox.depth()})

    @property
    def station_id(self) -> str:
        return self._station_id

    @property
    def site_id(self) -> str:
        return self._site_id

    @property
    def connected(self) -> bool:
        return self._state is ConnectionState.UP

    # Read from any thread (the daemon's metrics): a length is a consistent snapshot under the GIL.
    @property
    def inflight(self) -> int:
        """Events published and not yet acknowledged (bounded by the window)."""
        return len(self._drain.inflight)

    @property
    def read_ahead(self) -> int:
        """Events read from the outbox ahead of sending (bounded: a few windows)."""
        return len(self._drain.queued)

    def health(self) -> PublisherHealth:
        with self._lock:
            faults = tuple(self._faults.values())
        return PublisherHealth(
            state=self._state,
            outbox_depth=self._outbox.depth(),
            inflight=self.inflight,
            session=self._session,
            faults=faults,
            last_ack_monotonic=self._last_ack_monotonic,
        )

    # -- client set-up ---------------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        config = self._config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if self._is_v5 else paho.MQTTv311,
            # 3.1.1 has no session expiry: a persistent session would live forever on the broker.
            clean_session=None if self._is_v5 else True,
        )
        if config.username:
            client.username_pw_set(config.username, config.resolved_password())
        if config.tls is not None:
            client.tls_set(
                ca_certs=_path_or_none(config.tls.ca_file),
                certfile=_path_or_none(config.tls.cert_file),
                keyfile=_path_or_none(config.tls.key_file),
            )
            client.tls_insecure_set(config.tls.insecure)
        client.max_inflight_messages_set(config.max_inflight)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
        client.on_socket_open = _disable_nagle
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties | None:
        if not self._is_v5:
            return None
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._config.session_expiry_s
        return properties

    @functools.cached_property
    def _event_properties(self) -> Properties | None:
        """The PUBLISH properties of every event; built once (paho packs them on each publish,
        and building them per event was a tenth of the drainer's time)."""
        if not self._is_v5:
            return None
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = CLOUDEVENTS_CONTENT_TYPE
        return properties

    def _topic(self, key: TopicKey) -> str:
        return topic_for(key, self._site_id, self._station_id, self._config.topic_prefix)

    def _availability(self, state: AvailabilityState) -> bytes:
        message = Availability(state=state, session=self._session, client_id=self.client_id)
        return message.model_dump_json().encode()

    # -- paho callbacks (network thread): record, queue, wake; never publish ---------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            # A refused CONNACK is not a connection; paho keeps retrying with backoff.
            self._state = ConnectionState.CONNECTING
            self._raise_fault(
                FaultCode.CONNECTION_REFUSED,
                f"the broker at {self._broker} refused client {self.client_id}: {reason_code}; "
                "check [mqtt] username, password or client certificate, and the broker's ACL "
                "for this client id",
                reason_code.value,
            )
            return
        self._server_receive_maximum = getattr(properties, "ReceiveMaximum", None)
        self._server_max_packet = getattr(properties, "MaximumPacketSize", None)
        # SUBSCRIBE goes out before anyone sees the link up, so a request published next cannot
        # overtake it and have its answer dropped by the broker.
        for topic, (spec, _handler, _on_invalid) in list(self._subscriptions.items()):
            client.subscribe(topic, qos=spec.qos)
        # Before the link counts as up: the drainer must not forget what the replay needs.
        self._replay_due = self._lost_at > 0
        self._state = ConnectionState.UP
        self._unreachable_said = False
        self._clear_fault(FaultCode.CONNECTION_REFUSED)
        log.info("connected", extra={"client_id": self.client_id, "session": self._session})
        self._announce_online = True
        self._wake.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        """paho could not reach the broker at all; it retries with backoff and says why only at
        debug level. Said once per outage, with a probe of why and what to check (on a thread
        of its own: a slow name lookup must not hold paho's); events wait in the outbox."""
        if not self._unreachable_said:
            self._unreachable_said = True
            threading.Thread(target=self._say_unreachable, name="mqtt-probe", daemon=True).start()

    def _say_unreachable(self) -> None:
        log.warning(
            "broker unreachable",
            extra={
                "broker": self._broker,
                "client_id": self.client_id,
                "why": _why_unreachable(self._config.host, self._config.port),
                "check": "the broker runs and this PC reaches it: [mqtt] host and port, the "
                "network and firewall, and [mqtt.tls] files",
            },
        )

    @property
    def _broker(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        stopping = self._stopping.is_set()
        if self._state is ConnectionState.UP and not stopping:
            log.warning("disconnected", extra={"reason": str(reason_code)})
            self._lost_at = self._clock.monotonic()
        self._state = ConnectionState.DOWN if stopping else ConnectionState.CONNECTING
        self._wake.set()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._acks.put((mid, reason_code.value))
        self._wake.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        subscription = self._subscriptions.get(message.topic)
        if subscription is None:
            return
        spec, handler, on_invalid = subscription
        correlation = getattr(message.properties, "CorrelationData", None)
        try:
            parsed = self._parse_inbound(spec, message.payload)
            if isinstance(parsed, BaseModel):
                self._clear_fault(FaultCode.INVALID_MESSAGE)
                handler(ReceivedMessage(spec.key, message.topic, parsed, correlation))
                return
            log.warning("invalid inbound message dropped", extra={"topic": message.topic})
            # Raised once until a valid message arrives: a flood of bad ones is one fault.
            self._raise_fault(
                FaultCode.INVALID_MESSAGE,
                f"invalid message on {message.topic} dropped ({parsed}); check who publishes "
                "there (config/mosquitto ACL)",
                None,
            )
            if on_invalid is not None:
                # An oversize payload is not handed on either: nobody should parse it.
                raw = b"" if self._oversize(message.payload) else bytes(message.payload)
                on_invalid(InvalidMessage(spec.key, message.topic, raw, correlation, parsed))
        except Exception:
            # The network thread must survive a faulty handler.
            log.exception("message handler failed", extra={"topic": message.topic})

    def _oversize(self, payload: bytes) -> bool:
        return self._max_inbound_bytes is not None and len(payload) > self._max_inbound_bytes

    def _parse_inbound(self, spec: TopicSpec, payload: bytes) -> BaseModel | str:
        """The validated payload, or what is wrong with it; an oversize one is not parsed."""
        if self._oversize(payload):
            return f"{len(payload)} bytes, over the {self._max_inbound_bytes}-byte limit"
        try:
            return spec.payload.model_validate_json(payload)
        except ValidationError as error:
            return _validation_summary(error)

    # -- drainer thread ---------------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while True:
            self._wake.wait(timeout=self._config.reconnect_min_s)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._stopping.is_set() and self._flushed_or_out_of_time():
                    return
                if self.connected:
                    self._announce_if_needed()
                    self._dispatch()
            except Exception as exc:
                # A dead drainer would strand every event silently: say so and try again.
                self._raise_fault(FaultCode.OUTBOX_FAILED, self._drain_failure(exc), None)
                if self._stopping.is_set():
                    return
                self._stopping.wait(self._config.reconnect_max_s)
                continue
            self._clear_fault(FaultCode.OUTBOX_FAILED)

    def _drain_failure(self, exc: Exception) -> str:
        if isinstance(exc, sqlite3.Error):
            return (
                f"the outbox {self._outbox.path} cannot be read or updated ({exc}); events wait "
                "in it and are sent once it can: free disk space, or stop the station and move "
                "a damaged outbox aside (docs/reliability.md)"
            )
        log.exception("publisher failed")
        return (
            f"the publisher failed ({exc!r}); events wait in the outbox {self._outbox.path} and "
            "are retried; if this repeats, restart the station and report the log"
        )

    def _flushed_or_out_of_time(self) -> bool:
        if self._clock.monotonic() >= self._flush_deadline:
            return True
        return not self._drain.inflight and not self._drain.rejected and self._outbox.depth() == 0

    def _announce_if_needed(self) -> None:
        if self._announce_online:
            self._announce_online = False
            self._client.publish(
                self._topic(TopicKey.AVAILABILITY),
                self._availability(AvailabilityState.ONLINE),
                qos=TOPICS[TopicKey.AVAILABILITY].qos,
                retain=True,
            )

    def _settle_acks(self) -> None:
        """Collect PUBACKs: accepted events are deleted in batches, refused ones kept to retry."""
        drain = self._drain
        while True:
            try:
                mid, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            event = drain.inflight.pop(mid, None)
            if event is None:
                continue  # availability publishes are not outbox events
            if reason >= _FIRST_FAILURE_CODE:
                self._reject(event, reason)
            else:
                drain.acked.append(event.station_seq)
                drain.rejected.pop(event.station_seq, None)
                drain.recently_acked.append((self._clock.monotonic(), event))
        # Forget only while the link is up and no replay is due: what was acked just before a
        # loss must wait for the reconnect, however long that takes.
        if self.connected and not self._replay_due:
            horizon = self._clock.monotonic() - self._config.replay_acked_s
            while drain.recently_acked and drain.recently_acked[0][0] < horizon:
                drain.recently_acked.popleft()
        # One delete per half window (or when idle) instead of one per PUBACK.
        if drain.acked and (len(drain.acked) >= self._batch() or not drain.inflight):
            self._outbox.ack(*drain.acked)
            drain.acked = []
            self._last_ack_monotonic = self._clock.monotonic()
            if not drain.rejected:
                drain.retry_delay_s = 0.0
                self._clear_fault(FaultCode.PUBLISH_REJECTED)

    def _reject(self, event: StoredEvent, reason: int, why: str = "") -> None:
        drain = self._drain
        drain.rejected[event.station_seq] = event
        drain.retry_delay_s = min(
            max(drain.retry_delay_s * 2, self._config.reconnect_min_s), self._config.reconnect_max_s
        )
        drain.retry_at = self._clock.monotonic() + drain.retry_delay_s
        todo = ""
        if reason == _PACKET_TOO_LARGE:
            todo = (
                f" ({why or 'too large for the broker'}): raise the broker's maximum packet or "
                "message size (mosquitto max_packet_size, message_size_limit);"
            )
        self._raise_fault(
            FaultCode.PUBLISH_REJECTED,
            f"broker refused event seq {event.station_seq} ({event.event_type}) on {event.topic}"
            f" with reason 0x{reason:02X}{todo} kept in the outbox, newer events wait behind it,"
            f" retry in {drain.retry_delay_s:g}s",
            reason,
        )

    def _window(self) -> int:
        receive_maximum = self._server_receive_maximum or self._config.max_inflight
        return min(self._config.max_inflight, receive_maximum)

    def _batch(self) -> int:
        return max(1, self._window() // 2)

    def _replay_recently_acked(self) -> None:
        """After a reconnect, publish again what the broker accepted just before the link went:
        mosquitto sends its PUBACK before it saves (even with `autosave_on_changes`), so a broker
        killed within that moment restarts without those events (docs/reliability.md)."""
        drain = self._drain
        self._replay_due = False
        since = self._lost_at - self._config.replay_acked_s
        replay = [event for at, event in drain.recently_acked if at >= since]
        drain.recently_acked.clear()
        if replay:
            log.info(
                "republishing events acknowledged just before the connection was lost",
                extra={"from_seq": replay[0].station_seq, "count": len(replay)},
            )
        # Ahead of the queue, in order: the window (the broker's Receive Maximum) paces them
        # like any event; all at once, a strict broker would drop the connection again.
        drain.queued.extendleft(reversed(replay))

    def _dispatch(self) -> None:
        drain = self._drain
        if self._replay_due:
            self._replay_recently_acked()
        if drain.rejected:
            # Newer events wait until every refused one is accepted, so the backend sees them in
            # order; the refused ones are retried once nothing else is in flight.
            if self._clock.monotonic() >= drain.retry_at and not drain.inflight:
                for seq in sorted(drain.rejected):
                    self._send(drain.rejected[seq])
            return
        # Refill at every PUBACK: a publish going out right away also carries the TCP ACK for the
        # broker's last PUBACK, so the broker's Nagle never waits for our delayed ACK.
        room = self._window() - len(drain.inflight)
        if room <= 0:
            return
        if len(drain.queued) < room:
            # Replayed events ahead of the queue are older than anything dispatched.
            newest = drain.queued[-1].station_seq if drain.queued else 0
            after = max(newest, drain.dispatched_upto)
            drain.queued.extend(self._outbox.pending(_READ_AHEAD_WINDOWS * room, after_seq=after))
        while room > 0 and drain.queued:
            event = drain.queued[0]
            if not self._send(event):
                return
            drain.queued.popleft()
            # A replayed event is older than what was read ahead: the read-ahead goes on after
            # the newest one dispatched.
            drain.dispatched_upto = max(drain.dispatched_upto, event.station_seq)
            room -= 1
            if drain.rejected:  # refused before it went (too large): the newer ones wait
                return

    def _send(self, event: StoredEvent) -> bool:
        """Publish one event; False if paho did not take it (tried again later). One larger
        than the broker takes is refused here like a broker refusal (0x95, kept and retried,
        newer events held back): sent, the broker would drop the connection, paho would resend
        it at every reconnect, and nothing after it would ever go."""
        size = _packet_size(event)
        limit = self._server_max_packet
        if limit is not None and size > limit:
            self._reject(event, _PACKET_TOO_LARGE, f"{size} bytes, over the broker's {limit}")
            return True
        info = self._client.publish(
            event.topic, event.payload, qos=1, retain=False, properties=self._event_properties
        )
        # NO_CONN, CONN_LOST: paho keeps the message and sends it after reconnecting, so it is
        # in flight (and its PUBACK must find it here).
        if info.rc not in _TAKEN_BY_PAHO:
            log.warning("publish not queued", extra={"seq": event.station_seq, "rc": info.rc})
            return False
        self._drain.inflight[info.mid] = event
        return True

    # -- faults -----------------------------------------------------------------------------------

    def _raise_fault(self, code: FaultCode, message: str, reason_code: int | None) -> None:
        fault = Fault(code, True, message, reason_code, self._clock.now_utc())
        with self._lock:
            is_new = code not in self._faults
            self._faults[code] = fault
        if is_new:
            log.error("fault raised", extra={"code": code.value, "detail": message})
            self._notify(fault)

    def _clear_fault(self, code: FaultCode) -> None:
        with self._lock:
            raised = self._faults.pop(code, None)
        if raised is not None:
            log.info("fault cleared", extra={"code": code.value})
            self._notify(Fault(code, False, "cleared", None, self._clock.now_utc()))

    def _notify(self, fault: Fault) -> None:
        if self._on_fault is not None:
            self._on_fault(fault)


# MQTT 5 "Packet too large": the broker's answer to an oversize publish, and ours to one we
# know it would not take.
_PACKET_TOO_LARGE = 0x95
_TAKEN_BY_PAHO = (
    MQTTErrorCode.MQTT_ERR_SUCCESS,
    MQTTErrorCode.MQTT_ERR_NO_CONN,
    MQTTErrorCode.MQTT_ERR_CONN_LOST,
)
# Fixed header, packet id and the publish properties this station sets, generously.
_PUBLISH_OVERHEAD = 64


def _packet_size(event: StoredEvent) -> int:
    """About the PUBLISH packet's size on the wire (a little over, never under)."""
    return len(event.payload) + len(event.topic.encode()) + _PUBLISH_OVERHEAD


def _disable_nagle(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Small publishes must not wait for the broker's delayed TCP ACK (~40 ms per round on Linux):
    with Nagle on, a window of QoS 1 publishes drains at a fraction of the link's rate."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _validation_summary(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"[:200]


def _path_or_none(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _wait_quietly(info: paho.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        log.warning("offline availability not confirmed before disconnect")
