"""Where manifests come from, how they are checked, and the cache that keeps packing going.

Three sources sit behind one small interface (`ManifestSource.fetch -> bytes`): a directory of JSON
files, the WMS's HTTP API, and request/response over the station's own MQTT connection (the topic
table's manifest/request and manifest/response). `ManifestService` turns those bytes into a
validated `Manifest` or a `ManifestRefusal` with a sentence the packer can act on, caches every good
manifest in SQLite so a network outage does not stop the table, and re-checks the manifest at close
time to catch an order that was cancelled or changed mid-pack.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Protocol
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from station.catalog_file import json_path
from station.clock import Clock, SystemClock
from station.domain import Catalog, Manifest, ManifestStatus, unknown_skus
from station.events import ManifestRequest, ManifestResponse, TopicKey

if TYPE_CHECKING:
    from station.mqtt import EventPublisher, InvalidMessage, ReceivedMessage

log = logging.getLogger(__name__)

# Sources never hand over more than this; the service's own (smaller) max_bytes decides refusal.
SOURCE_READ_LIMIT_BYTES = 64 * 1024 * 1024

# Ids become file names and URL path segments: no separators, no leading dot.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}$")


# --- what sources raise ------------------------------------------------------------------------


class ManifestSourceError(Exception):
    """The source could not deliver a manifest; the message is one sentence, without secrets."""


class ManifestNotFound(ManifestSourceError):
    """The source answered: there is no such order/carton."""


class ManifestSourceUnavailable(ManifestSourceError):
    """The source could not be asked (network, timeout, server error): a cached copy may serve."""


class ManifestSource(Protocol):
    def fetch(self, order_id: str, carton_id: str) -> bytes:
        """The manifest's raw bytes; raises a ManifestSourceError."""

    def close(self) -> None:
        """Release connections and threads."""


# --- source configs ----------------------------------------------------------------------------


class _SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectoryManifestSourceConfig(_SourceConfig):
    type: Literal["directory"] = "directory"
    path: Path = Field(
        description="Folder holding one file per carton: <order_id>/<carton_id>.json."
    )


class HttpManifestSourceConfig(_SourceConfig):
    type: Literal["http"] = "http"
    url_template: str = Field(
        description="URL with {order_id} and {carton_id} placeholders, e.g. "
        "https://wms/api/orders/{order_id}/cartons/{carton_id}.",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="Connect and read timeout.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers; put secrets in token instead."
    )
    token: SecretStr | None = Field(
        default=None, description="Bearer token sent as Authorization; never logged."
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token, read on every request so it can be rotated.",
    )

    @model_validator(mode="after")
    def _check(self) -> HttpManifestSourceConfig:
        for placeholder in ("{order_id}", "{carton_id}"):
            if placeholder not in self.url_template:
                raise ValueError(f"url_template must contain {placeholder}")
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self


class MqttManifestSourceConfig(_SourceConfig):
    """Ask the WMS over the station's own MQTT connection ([mqtt]: broker, TLS, credentials);
    topics, QoS and payloads come from the topic table (docs/mqtt.md)."""

    type: Literal["mqtt"] = Field(
        default="mqtt", description="Request/response over the station's MQTT connection."
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How long to wait for the WMS's answer before the cached copy is used.",
    )


ManifestSourceConfig = Annotated[
    DirectoryManifestSourceConfig | HttpManifestSourceConfig | MqttManifestSourceConfig,
    Field(discriminator="type"),
]


def open_manifest_source(
    config: ManifestSourceConfig, *, publisher: EventPublisher | None = None
) -> ManifestSource:
    """The source a config describes; an MQTT source needs the station's publisher (its one
    connection), which may be started before or after."""
    if isinstance(config, DirectoryManifestSourceConfig):
        return DirectoryManifestSource(config)
    if isinstance(config, HttpManifestSourceConfig):
        return HttpManifestSource(config)
    if publisher is None:
        raise ValueError("an MQTT manifest source needs the station's publisher")
    return MqttManifestSource(config, publisher)


# --- sources -----------------------------------------------------------------------------------


def _carton_name(order_id: str, carton_id: str) -> str:
    return f"order {order_id} carton {carton_id}"


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


class DirectoryManifestSource:
    """Files laid out as <path>/<order_id>/<carton_id>.json (a shared folder, demos, tests)."""

    def __init__(self, config: DirectoryManifestSourceConfig) -> None:
        self._root = config.path.resolve()

    def fetch(self, order_id: str, carton_id: str) -> bytes:
        path = (self._root / order_id / f"{carton_id}.json").resolve()
        if not path.is_relative_to(self._root):
            raise ManifestNotFound(f"{_carton_name(order_id, carton_id)} is not a valid file name")
        try:
            with path.open("rb") as file:
                return file.read(SOURCE_READ_LIMIT_BYTES + 1)
        except FileNotFoundError as exc:
            raise ManifestNotFound(f"no file {path}") from exc
        except OSError as exc:
            raise ManifestSourceUnavailable(f"cannot read {path} ({exc.strerror})") from exc

    def close(self) -> None:
        """Nothing to release."""


class HttpManifestSource:
    """GET the manifest from the WMS: 404/410 mean "no such carton", 5xx/timeouts "try later"."""

    def __init__(self, config: HttpManifestSourceConfig) -> None:
        self._config = config

    def fetch(self, order_id: str, carton_id: str) -> bytes:
        url = self._config.url_template.format(
            order_id=quote(order_id, safe=""), carton_id=quote(carton_id, safe="")
        )
        request = urllib.request.Request(url, headers=self._config.headers)
        token = self._token()
        if token:
            # Unredirected: a redirect to another host must not carry the token along.
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                return response.read(SOURCE_READ_LIMIT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise _http_status_error(exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ManifestSourceUnavailable(f"the WMS cannot be reached ({reason})") from exc

    def _token(self) -> str | None:
        if self._config.token is not None:
            return self._config.token.get_secret_value()
        if self._config.token_file is None:
            return None
        try:
            return self._config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ManifestSourceError(
                f"the WMS token file {self._config.token_file} cannot be read ({exc.strerror})"
            ) from exc

    def close(self) -> None:
        """Each request opens its own connection."""


def _http_status_error(status: int) -> ManifestSourceError:
    if status in (404, 410):
        return ManifestNotFound(f"the WMS answered HTTP {status}")
    if status >= 500 or status in (408, 429):
        return ManifestSourceUnavailable(f"the WMS answered HTTP {status}")
    return ManifestSourceError(f"the WMS refused the request with HTTP {status}")


@dataclass
class _PendingRequest:
    """One waiting fetch; the subscription handler (paho's thread) fills it and sets `done`."""

    carton_id: str
    done: threading.Event = field(default_factory=threading.Event)
    response: ManifestResponse | None = None
    invalid: str | None = None  # why the answer did not validate


class MqttManifestSource:
    """Request/response over the station's MQTT connection (the `EventPublisher`).

    `fetch` publishes a `ManifestRequest` on the table's manifest/request topic (MQTT 5: Response
    Topic = manifest/response, Correlation Data = request_id) and waits up to `timeout_s` for the
    `ManifestResponse` on this station's manifest/response topic. Correlation: the Correlation
    Data when the answer has it, else the request_id in the payload (MQTT 3.1.1). Answers nobody
    waits for (late, or another request's) are dropped. A link that is down fails at once.
    """

    def __init__(self, config: MqttManifestSourceConfig, publisher: EventPublisher) -> None:
        self._config = config
        self._publisher = publisher
        self._pending: dict[str, _PendingRequest] = {}
        self._lock = threading.Lock()
        self._closed = False
        publisher.subscribe(TopicKey.MANIFEST_RESPONSE, self._on_response, self._on_invalid)

    def fetch(self, order_id: str, carton_id: str) -> bytes:
        if self._closed:
            raise ManifestSourceUnavailable("the MQTT manifest source is closed")
        request = ManifestRequest(
            request_id=uuid.uuid4().hex,
            order_id=order_id,
            carton_id=carton_id,
            station_id=self._publisher.station_id,
        )
        pending = _PendingRequest(carton_id)
        with self._lock:
            self._pending[request.request_id] = pending  # before publishing: answers can be fast
        try:
            sent = self._publisher.request(
                TopicKey.MANIFEST_REQUEST,
                request,
                request.request_id.encode(),
                expiry_s=self._config.timeout_s,
            )
            if not sent:
                raise ManifestSourceUnavailable("the MQTT broker cannot be reached")
            if not pending.done.wait(self._config.timeout_s):
                raise ManifestSourceUnavailable(
                    f"the WMS did not answer over MQTT within {self._config.timeout_s:g} s"
                )
        finally:
            with self._lock:
                self._pending.pop(request.request_id, None)
        if pending.invalid is not None:
            raise ManifestSourceError(f"the WMS sent an invalid answer ({pending.invalid})")
        if pending.response is None:
            raise ManifestSourceUnavailable("the MQTT manifest source was closed")
        return response_manifest(pending.response, carton_id)

    def close(self) -> None:
        """Wake every waiting fetch; the subscription lives and dies with the publisher."""
        self._closed = True
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for request in pending:
            request.done.set()

    # -- subscription handlers (paho's network thread): fill the slot, set the event, no more ----

    def _on_response(self, message: ReceivedMessage) -> None:
        response = message.payload
        if not isinstance(response, ManifestResponse):
            return
        pending = self._claim(message.correlation_data, response.request_id)
        if pending is not None:
            pending.response = response
            pending.done.set()

    def _on_invalid(self, message: InvalidMessage) -> None:
        pending = self._claim(message.correlation_data, _loose_request_id(message.raw))
        if pending is not None:
            pending.invalid = message.error
            pending.done.set()

    def _claim(self, correlation: bytes | None, request_id: str | None) -> _PendingRequest | None:
        if correlation is not None:
            request_id = correlation.decode("utf-8", "replace")
        with self._lock:
            pending = self._pending.pop(request_id, None) if request_id else None
        if pending is None:
            log.debug("manifest answer for no waiting request dropped: %.64r", request_id)
        return pending


def _loose_request_id(raw: bytes) -> str | None:
    """request_id of an answer that is otherwise invalid, so its fetch fails now (MQTT 3.1.1
    has no correlation data)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    request_id = document.get("request_id") if isinstance(document, dict) else None
    return request_id if isinstance(request_id, str) else None


def response_manifest(response: ManifestResponse, carton_id: str) -> bytes:
    """The manifest bytes of a WMS answer, for `parse_manifest`; raises a ManifestSourceError:
    `error` set = unavailable (the cache may serve), not found = not found, else malformed."""
    if response.error is not None:
        raise ManifestSourceUnavailable(f"the WMS could not answer ({response.error[:80]!r})")
    if response.carton_id != carton_id:
        raise ManifestSourceError(f"the WMS answered for carton {response.carton_id[:64]!r}")
    if not response.found:
        raise ManifestNotFound("the WMS answered not found")
    if response.manifest is None:
        raise ManifestSourceError("the WMS answered found without a manifest")
    return json.dumps(response.manifest, ensure_ascii=False).encode()


# --- validation --------------------------------------------------------------------------------


class RefusalCode(StrEnum):
    INVALID_ID = "invalid_id"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    SOURCE_ERROR = "source_error"
    TOO_LARGE = "too_large"
    MALFORMED_JSON = "malformed_json"
    INVALID_MANIFEST = "invalid_manifest"
    BAD_QUANTITY = "bad_quantity"
    UNKNOWN_SKU = "unknown_sku"
    ID_MISMATCH = "id_mismatch"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ManifestRefusal:
    code: RefusalCode
    message: str  # one sentence for the packer: what is wrong and what to do


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    manifest: Manifest
    from_cache: bool  # the source was unreachable; this is the copy stored at `fetched_at`
    fetched_at: datetime


ManifestResult = FetchedManifest | ManifestRefusal

_SET_ASIDE = "set the carton aside and call a supervisor"


def parse_manifest(
    raw: bytes, order_id: str, carton_id: str, catalog: Catalog, max_bytes: int
) -> Manifest | ManifestRefusal:
    """Validate raw bytes as the manifest of this carton. Never raises on bad input."""
    name = _capitalised(_carton_name(order_id, carton_id))
    if len(raw) > max_bytes:
        return ManifestRefusal(
            RefusalCode.TOO_LARGE,
            f"{name}: the manifest is over {max_bytes} bytes, more than any real carton needs; "
            f"{_SET_ASIDE}.",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8 and bad JSON are ValueErrors
        return ManifestRefusal(
            RefusalCode.MALFORMED_JSON, f"{name}: the manifest is not valid JSON; {_SET_ASIDE}."
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        return _schema_refusal(name, exc)
    if manifest.key != (order_id, carton_id):
        return ManifestRefusal(
            RefusalCode.ID_MISMATCH,
            f"{name}: the WMS sent the manifest of "
            f"{_carton_name(manifest.order_id, manifest.carton_id)} instead; {_SET_ASIDE}.",
        )
    return _catalog_refusal(manifest, catalog) or manifest


def _schema_refusal(name: str, exc: ValidationError) -> ManifestRefusal:
    errors = exc.errors()
    quantity_errors = [e for e in errors if e["loc"] and e["loc"][-1] == "quantity"]
    if quantity_errors:
        where = json_path(quantity_errors[0]["loc"])
        return ManifestRefusal(
            RefusalCode.BAD_QUANTITY,
            f"{name}: the quantity at {where} is not a whole number from 1 to 10000; {_SET_ASIDE}.",
        )
    first = errors[0]
    problem = first["msg"].removeprefix("Value error, ")
    return ManifestRefusal(
        RefusalCode.INVALID_MANIFEST,
        f"{name}: the manifest is invalid at {json_path(first['loc'])} ({problem}); {_SET_ASIDE}.",
    )


def _catalog_refusal(manifest: Manifest, catalog: Catalog) -> ManifestRefusal | None:
    unknown = unknown_skus(manifest, catalog)
    if not unknown:
        return None
    name = _capitalised(_carton_name(manifest.order_id, manifest.carton_id))
    return ManifestRefusal(
        RefusalCode.UNKNOWN_SKU,
        f"{name}: the station's catalog does not know {', '.join(unknown)}; "
        "set the carton aside until the catalog is updated.",
    )


# --- cache -------------------------------------------------------------------------------------


class ManifestCache:
    """The newest good manifest per carton, in one SQLite file (one connection per call, so any
    thread may use it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS manifests (order_id TEXT, carton_id TEXT,"
                " version INTEGER, body TEXT, stored_at TEXT, PRIMARY KEY (order_id, carton_id))"
            )

    @property
    def directory(self) -> Path:
        return self._path.parent

    def store(self, manifest: Manifest, stored_at: datetime) -> None:
        """Keep `manifest` unless a newer version is already stored."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO manifests VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id, carton_id)"
                " DO UPDATE SET version = excluded.version, body = excluded.body,"
                " stored_at = excluded.stored_at WHERE excluded.version >= manifests.version",
                (
                    *manifest.key,
                    manifest.version,
                    manifest.model_dump_json(),
                    stored_at.isoformat(),
                ),
            )

    def load(self, order_id: str, carton_id: str) -> tuple[Manifest, datetime] | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT body, stored_at FROM manifests WHERE order_id = ? AND carton_id = ?",
                (order_id, carton_id),
            ).fetchone()
        if row is None:
            return None
        try:
            return Manifest.model_validate_json(row[0]), datetime.fromisoformat(row[1])
        except (ValidationError, ValueError):
            log.warning("cached manifest of %s is unreadable", _carton_name(order_id, carton_id))
            return None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # The connection commits (or rolls back) on leaving, then closes.
        with closing(sqlite3.connect(self._path, timeout=5)) as db, db:
            yield db


# --- the service -------------------------------------------------------------------------------


class ChangeKind(StrEnum):
    # The session's ManifestChanged.kind values.
    CANCELLED = "cancelled"  # cancelled, or the WMS no longer knows the carton: stop
    SUPERSEDED = "superseded"  # a newer version: re-fetch and re-check the carton


@dataclass(frozen=True, slots=True)
class ManifestChange:
    kind: ChangeKind
    message: str  # one sentence for the packer
    current: Manifest | None  # the WMS's manifest now; None when it no longer knows the carton


class ManifestService:
    """Fetch, validate and cache manifests; detect orders that change while they are packed.

    Blocking (network and disk): the daemon calls it from a worker thread.
    """

    def __init__(
        self,
        source: ManifestSource,
        catalog: Catalog,
        cache_dir: Path,
        max_bytes: int = 1_000_000,
        clock: Clock | None = None,
    ) -> None:
        if not 0 < max_bytes <= SOURCE_READ_LIMIT_BYTES:
            raise ValueError(f"max_bytes must be between 1 and {SOURCE_READ_LIMIT_BYTES}")
        self._source = source
        self._catalog = catalog
        self._cache = ManifestCache(cache_dir / "manifests.sqlite3")
        self._max_bytes = max_bytes
        self._clock = clock or SystemClock()

    def close(self) -> None:
        self._source.close()

    def fetch(self, order_id: str, carton_id: str) -> ManifestResult:
        name = _carton_name(order_id, carton_id)
        if not (_SAFE_ID.match(order_id) and _SAFE_ID.match(carton_id)):
            return ManifestRefusal(
                RefusalCode.INVALID_ID,
                f"{_capitalised(name)} is not a valid order/carton id: scan the label again.",
            )
        try:
            raw = self._source.fetch(order_id, carton_id)
        except ManifestNotFound:
            return ManifestRefusal(
                RefusalCode.NOT_FOUND,
                f"Order not found: the WMS has no {name}; check the label or {_SET_ASIDE}.",
            )
        except ManifestSourceUnavailable as exc:
            return self._from_cache(order_id, carton_id, exc)
        except ManifestSourceError as exc:
            return ManifestRefusal(
                RefusalCode.SOURCE_ERROR,
                f"The manifest of {name} cannot be fetched: {exc}; {_SET_ASIDE}.",
            )
        parsed = parse_manifest(raw, order_id, carton_id, self._catalog, self._max_bytes)
        if isinstance(parsed, ManifestRefusal):
            return parsed
        now = self._clock.now_utc()
        self._keep(parsed, now)
        return _cancelled_refusal(parsed) or FetchedManifest(
            parsed, from_cache=False, fetched_at=now
        )

    def check_current(self, manifest: Manifest) -> ManifestChange | None:
        """Ask the source again before the carton is closed; None when nothing changed or the
        source cannot tell right now (an outage must not stop a carton that was fine)."""
        name = _carton_name(manifest.order_id, manifest.carton_id)
        try:
            raw = self._source.fetch(manifest.order_id, manifest.carton_id)
        except ManifestNotFound:
            return ManifestChange(
                ChangeKind.CANCELLED,
                f"The WMS no longer knows {name}: stop packing and {_SET_ASIDE}.",
                None,
            )
        except ManifestSourceError as exc:
            log.warning("cannot re-check %s before closing: %s", name, exc)
            return None
        current = parse_manifest(
            raw, manifest.order_id, manifest.carton_id, self._catalog, self._max_bytes
        )
        if isinstance(current, ManifestRefusal):
            log.warning("cannot re-check %s before closing: %s", name, current.message)
            return None
        self._keep(current, self._clock.now_utc())
        if current.status is ManifestStatus.CANCELLED:
            return ManifestChange(
                ChangeKind.CANCELLED,
                f"Order {manifest.order_id} was cancelled while it was packed: stop, unpack the "
                "carton and return the items to the put-away shelf.",
                current,
            )
        if current.version > manifest.version:
            return ManifestChange(
                ChangeKind.SUPERSEDED,
                f"The manifest of {name} changed while it was packed (version {manifest.version} "
                f"to {current.version}): stop and re-check the carton against the new list.",
                current,
            )
        return None

    def _keep(self, manifest: Manifest, now: datetime) -> None:
        """Cache a good manifest; a cache that cannot be written (a full disk) costs only the
        fallback for a later outage, never this carton, which has its manifest."""
        try:
            self._cache.store(manifest, now)
        except (sqlite3.Error, OSError) as exc:
            log.warning(
                "manifest of %s not cached (%s): free disk space under %s",
                _carton_name(*manifest.key),
                exc,
                self._cache.directory,
            )

    def _from_cache(
        self, order_id: str, carton_id: str, outage: ManifestSourceError
    ) -> ManifestResult:
        name = _carton_name(order_id, carton_id)
        cached = self._cache.load(order_id, carton_id)
        if cached is None:
            return ManifestRefusal(
                RefusalCode.UNAVAILABLE,
                f"The manifest of {name} is not available ({outage}) and was never downloaded "
                "here: pack another order and try this one again later.",
            )
        manifest, stored_at = cached
        log.warning("using the cached manifest of %s from %s: %s", name, stored_at, outage)
        refusal = _catalog_refusal(manifest, self._catalog) or _cancelled_refusal(manifest)
        return refusal or FetchedManifest(manifest, from_cache=True, fetched_at=stored_at)


def _cancelled_refusal(manifest: Manifest) -> ManifestRefusal | None:
    if manifest.status is not ManifestStatus.CANCELLED:
        return None
    return ManifestRefusal(
        RefusalCode.CANCELLED,
        f"Order {manifest.order_id} is cancelled: do not pack it; return the items to the "
        "put-away shelf.",
    )
