"""The Station API and the packer's screen, served on the daemon's own asyncio loop.

Handlers run on the loop that owns the session, so they read and feed it directly; the only slow
work (checking a PIN with scrypt) goes to a thread. Reads are open to anything on the station PC;
changing actions and evidence need the bearer token from the config; the screen's override needs
a reviewer's badge and PIN and nothing else, so the page itself holds no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from station.api.http import (
    EventStream,
    HttpError,
    HttpServer,
    Request,
    Response,
    error_response,
    json_response,
)
from station.api.models import (
    CloseCarton,
    ScreenDegraded,
    ScreenOverride,
    StartCarton,
    TokenOverride,
)
from station.api.pictures import PICTURE_PATH, ProductPictures
from station.api.pins import AttemptLimiter, hash_pin, verify_pin
from station.api.screen import ScreenModel
from station.carton_policy import DegradedMode, Fallback
from station.codes import CloseCode, OrderCartonCode
from station.events import LabelPurpose
from station.evidence import find_image, image_refs, is_sha256, to_plain
from station.session import (
    CARTON_UNSEALED,
    DegradedModeEnded,
    DegradedModeRequested,
    ReviewerOverride,
    Scanned,
    SessionInput,
    SessionState,
    ShowMessage,
)
from station.status import StationStatus

if TYPE_CHECKING:
    from station.daemon import StationDaemon

Auth = Literal["none", "token", "reviewer"]
_Body = TypeVar("_Body", bound=BaseModel)
WEB = resources.files("station") / "web"
STATIC_FILES = {
    "/screen/": ("index.html", "text/html; charset=utf-8"),
    "/screen/screen.css": ("screen.css", "text/css; charset=utf-8"),
    "/screen/screen.js": ("screen.js", "text/javascript; charset=utf-8"),
    "/screen/i18n/en.json": ("i18n/en.json", "application/json"),
    "/screen/i18n/zh-CN.json": ("i18n/zh-CN.json", "application/json"),
}
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# Why a release was refused, for the API's caller (the screen shows the i18n key).
_REFUSALS = {
    "override.own_carton": "a packer cannot release their own carton",
    "override.nothing_blocked": "no carton is held at this station",
    "override.recount_pending": "the station asked the packer to recount a SKU's scans: "
    "recount and close again first",
    "override.close_again": "the carton lost weight after its label (or could not be weighed): "
    "the packer closes it again first, so the station names what is missing",
}


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint and what the OpenAPI document says about it."""

    method: str
    path: str
    handler: str  # the StationApi method that serves it
    summary: str
    tag: str
    auth: Auth = "none"
    query: tuple[str, ...] = ()  # required query parameters
    optional_query: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    responses: tuple[int, ...] = (200,)
    content_type: str = "application/json"


_STATIC_ROUTES = tuple(
    Route("GET", path, "_static", f"Packer screen: {name}", "screen", content_type=kind)
    for path, (name, kind) in STATIC_FILES.items()
)
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/",
        "_home",
        "Redirect to the packer screen",
        "screen",
        responses=(302,),
        content_type="text/plain",
    ),
    *_STATIC_ROUTES,
    Route(
        "GET",
        PICTURE_PATH,
        "_picture",
        "A product's picture held at the station (catalog image_url file or pictures_dir)",
        "screen",
        query=("sku",),
        responses=(200, 400, 404),
        content_type="image/*",
    ),
    Route("GET", "/api/screen", "_screen", "Everything the screen shows, once", "screen"),
    Route(
        "GET",
        "/api/screen/events",
        "_screen_events",
        "The screen's model, pushed on every change (Server-Sent Events)",
        "screen",
        content_type="text/event-stream",
    ),
    Route(
        "POST",
        "/api/screen/override",
        "_screen_override",
        "Release the held carton with a reviewer's badge and PIN",
        "session",
        auth="reviewer",
        body=ScreenOverride,
        responses=(200, 400, 403, 409, 415, 422, 429),
    ),
    Route(
        "POST",
        "/api/screen/degraded",
        "_screen_degraded",
        "Authorise or end a degraded mode (unit scans in place of a down channel) with a "
        "reviewer's badge and PIN",
        "session",
        auth="reviewer",
        body=ScreenDegraded,
        responses=(200, 400, 403, 409, 415, 422, 429),
    ),
    Route(
        "GET",
        "/api/camera/latest.jpg",
        "_camera_frame",
        "The camera's newest annotated, masked frame of the current or last carton",
        "screen",
        responses=(200, 404),
        content_type="image/jpeg",
    ),
    Route("GET", "/api/status", "_status", "Station state, devices and outbox", "station"),
    Route("GET", "/api/session", "_session", "The current session and open carton", "session"),
    Route(
        "POST",
        "/api/session/start",
        "_start",
        "Open a carton",
        "session",
        auth="token",
        body=StartCarton,
        responses=(200, 400, 401, 403, 409, 415, 422),
    ),
    Route(
        "POST",
        "/api/session/close",
        "_close",
        "Close the open carton",
        "session",
        auth="token",
        body=CloseCarton,
        responses=(200, 400, 401, 403, 409, 415, 422),
    ),
    Route(
        "POST",
        "/api/session/override",
        "_token_override",
        "Release the held carton for a reviewer",
        "session",
        auth="token",
        body=TokenOverride,
        responses=(200, 400, 401, 403, 409, 415, 422, 429),
    ),
    Route(
        "GET",
        "/api/label-permission",
        "_label_permission",
        "May the shipping software print (purpose=print) or reprint (purpose=reprint) this "
        "carton's label? Reprints and granted labels are audited.",
        "shipping",
        auth="token",
        query=("order_id", "carton_id"),
        optional_query=("purpose", "requested_by", "label"),
        responses=(200, 400, 401, 403),
    ),
    Route(
        "GET",
        "/api/evidence",
        "_evidence",
        "A carton's evidence records (attempts, releases) with their hashes and chain positions",
        "evidence",
        auth="token",
        query=("order_id", "carton_id"),
        responses=(200, 400, 401, 403),
    ),
    Route(
        "GET",
        "/api/evidence/record",
        "_evidence_record",
        "One evidence record by its chain position, with its hash and the chain's",
        "evidence",
        auth="token",
        query=("id",),
        responses=(200, 400, 401, 403, 404),
    ),
    Route(
        "GET",
        "/api/evidence/image",
        "_evidence_image",
        "An evidence image by its SHA-256 (served only if the file still has that hash)",
        "evidence",
        auth="token",
        query=("sha256",),
        responses=(200, 400, 401, 403, 404),
        content_type="image/jpeg",
    ),
    Route("GET", "/api/health/live", "_live", "Liveness: the loop answers", "health"),
    Route(
        "GET",
        "/api/health/ready",
        "_ready",
        "Readiness: every device and the broker connection up",
        "health",
        responses=(200, 503),
    ),
    Route("GET", "/metrics", "_metrics", "Prometheus metrics", "health", content_type=METRICS_TYPE),
    Route("GET", "/api/openapi.json", "_openapi", "This document", "health"),
)


log = logging.getLogger("packstation.api")
_DECOY_PIN_HASH = hash_pin(secrets.token_hex(8))


class StationApi:
    def __init__(self, daemon: StationDaemon) -> None:
        self._daemon = daemon
        config = daemon.config
        self._config = config.api
        self._token = config.api.resolved_token()
        self._reviewers = {r.badge: r for r in config.reviewers}
        self._reason_codes = list(config.review.reason_codes)
        self._limiter = AttemptLimiter(config.review.max_failed_pins, config.review.lockout_s)
        clock = daemon.clock
        self._limiter.recall(self._earlier_pin_failures(), clock.now_utc(), clock.monotonic())
        # One PIN check at a time: guesses sent together would all pass the lockout test before
        # the first wrong one was counted.
        self._pin_checks = asyncio.Lock()
        self._pictures = ProductPictures.find(
            daemon.catalog, config.catalog.path.parent, config.catalog.pictures_dir
        )
        self.screen = ScreenModel(
            daemon.catalog,
            self._pictures,
            config.weight,
            config.scale.division_g,
            self._reason_codes,
        )
        self._changed = asyncio.Event()
        routes = {(r.method, r.path): getattr(self, r.handler) for r in ROUTES}
        self._server = HttpServer(routes, config.api.bind, config.api.port)

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    def on_effect(self, effect: Any) -> None:
        """A daemon observer: updates the screen model and wakes the screens' streams."""
        self.screen.on_effect(effect)
        self._changed.set()

    # -- screen ------------------------------------------------------------------------------

    async def _home(self, request: Request) -> Response:
        return Response(302, b"", "text/plain", {"Location": "/screen/"})

    async def _static(self, request: Request) -> Response:
        name, kind = STATIC_FILES[request.path]
        return Response(200, (WEB / name).read_bytes(), kind)

    async def _picture(self, request: Request) -> Response:
        sku = request.query.get("sku", "").strip()
        if not sku:
            raise HttpError(HTTPStatus.BAD_REQUEST, "sku is required")
        found = await asyncio.to_thread(self._pictures.read, sku)
        if found is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no picture of {sku} at this station")
        # Pictures change only with a restart: the page need not fetch one per verdict.
        return Response(200, found[0], found[1], {"Cache-Control": "max-age=3600"})

    async def _screen(self, request: Request) -> Response:
        return json_response(self._screen_view())

    def _screen_view(self) -> dict[str, Any]:
        status = self._daemon.status()
        return self.screen.view(status, self._camera(), self._live_units(status))

    def _live_units(self, status: StationStatus) -> dict[str, Mapping[str, int]]:
        """Per channel, the units it has seen go into the open carton so far (while packing)."""
        carton = status.carton
        if carton is None:
            return {}
        seen = {c.name: c.live_units(carton) for c in self._daemon.channels}
        return {name: units for name, units in seen.items() if units}

    def _camera(self) -> dict[str, Any] | None:
        """The camera panel: None without a camera channel; the frame's URL changes with the
        frame, so the page reloads the image exactly when a new one is there."""
        cameras = [c for c in self._daemon.channels if c.name == "vision"]
        if not cameras:
            return None
        frame = cameras[0].latest_frame()
        url = None if frame is None else f"/api/camera/latest.jpg?sha256={frame[1]}"
        return {"frame_url": url, "second_look_g": cameras[0].second_look_g()}

    async def _camera_frame(self, request: Request) -> Response:
        for channel in self._daemon.channels:
            frame = channel.latest_frame()
            if frame is not None:
                return Response(200, frame[0], "image/jpeg", {"Cache-Control": "no-store"})
        raise HttpError(HTTPStatus.NOT_FOUND, "no camera frame yet")

    async def _screen_events(self, request: Request) -> EventStream:
        return EventStream(self._screen_stream())

    async def _screen_stream(self) -> AsyncIterator[str]:
        """The whole model whenever it differs from the last one sent: after an effect at once,
        and at the refresh interval for the live weight."""
        last = None
        while True:
            current = json.dumps(self._screen_view(), ensure_ascii=False)
            if current != last:
                last = current
                yield current
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._config.screen_refresh_s)

    async def _screen_override(self, request: Request) -> Response:
        body = _parse(request, ScreenOverride)
        self._check_reason(body.reason_code)
        await self._check_reviewer(body.reviewer_badge, body.pin)
        return self._override(body)

    async def _screen_degraded(self, request: Request) -> Response:
        body = _parse(request, ScreenDegraded)
        self._check_reason(body.reason_code)
        longest = self._daemon.config.policy.degraded_max_minutes
        if body.minutes > longest:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"at most {longest:g} minutes at a time")
        await self._check_reviewer(body.reviewer_badge, body.pin)
        session = self._daemon.session
        if body.fallback is None:
            if session.degraded is None:
                raise HttpError(HTTPStatus.CONFLICT, "no degraded mode is in force")
            self._daemon.feed(DegradedModeEnded(body.reviewer_badge))
        else:
            fallback = Fallback(body.fallback)
            request_ = DegradedModeRequested(
                fallback, body.reviewer_badge, body.reason_code, body.minutes * 60
            )
            self._feed(request_, lambda: _authorised(session.degraded, request_))
        return json_response(status_json(self._daemon.status()))

    async def _check_reviewer(self, badge: str, pin: str) -> None:
        """Raise 429 while locked out, 403 for an unknown badge or a wrong PIN (audited)."""
        async with self._pin_checks:
            await self._check_reviewer_now(badge, pin)

    async def _check_reviewer_now(self, badge: str, pin: str) -> None:
        now = self._daemon.clock.monotonic()
        if self._limiter.locked(now):
            self._refused(badge, "locked_out")
            wait = self._limiter.retry_after_s(now)
            message = f"too many wrong PINs; try again in {wait:.0f} s"
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, message, {"Retry-After": f"{wait:.0f}"})
        reviewer = self._reviewers.get(badge)
        # An unknown badge costs the same scrypt as a known one: timing must not tell which exist.
        pin_hash = reviewer.pin_hash if reviewer is not None else _DECOY_PIN_HASH
        pin_ok = await asyncio.to_thread(verify_pin, pin, pin_hash) and reviewer is not None
        if not pin_ok:
            self._limiter.failed(now)
            self._refused(badge, "bad_credentials")
            raise HttpError(HTTPStatus.FORBIDDEN, "unknown reviewer badge or wrong PIN")

    # -- session -----------------------------------------------------------------------------

    async def _status(self, request: Request) -> Response:
        return json_response(status_json(self._daemon.status()))

    async def _session(self, request: Request) -> Response:
        status = self._daemon.status()
        view = self.screen.view(status)
        body = {
            "state": view["state"],
            "packer": view["packer"],
            "carton": view["carton"],
            "verdict": view["verdict"],
            "mode": status.mode,
        }
        return json_response(body)

    async def _start(self, request: Request) -> Response:
        self._require_token(request)
        body = _parse(request, StartCarton)
        self._feed(
            Scanned(OrderCartonCode(body.order_id, body.carton_id)),
            lambda: self._daemon.session.open_carton == (body.order_id, body.carton_id),
        )
        return json_response(status_json(self._daemon.status()))

    async def _close(self, request: Request) -> Response:
        self._require_token(request)
        _parse(request, CloseCarton)
        self._feed(
            Scanned(CloseCode()), lambda: self._daemon.session.state is SessionState.VERIFYING
        )
        return json_response(status_json(self._daemon.status()))

    async def _token_override(self, request: Request) -> Response:
        """A supervisor tool's release: it holds the token, and the reviewer still gives their
        badge and PIN (a token alone must not stand in for a person)."""
        self._require_token(request)
        body = _parse(request, TokenOverride)
        self._check_reason(body.reason_code)
        await self._check_reviewer(body.reviewer_badge, body.pin)
        return self._override(body)

    def _override(self, body: TokenOverride | ScreenOverride) -> Response:
        reviewer_badge, reason_code = body.reviewer_badge, body.reason_code
        other = self._not_the_held_carton(body)
        if other:
            self._refused(reviewer_badge, "other_carton")
            return error_response(HTTPStatus.CONFLICT, other)
        refusal = self._daemon.session.override_refusal(reviewer_badge)
        if refusal is not None:
            self._refused(reviewer_badge, refusal.removeprefix("override."))
            own = refusal == "override.own_carton"
            status = HTTPStatus.FORBIDDEN if own else HTTPStatus.CONFLICT
            return error_response(status, _REFUSALS[refusal])
        held = self._daemon.session.open_carton
        self._daemon.feed(ReviewerOverride(reviewer_badge, reason_code))
        if self._daemon.session.open_carton == held:  # undone: its record could not be written
            raise HttpError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "the release could not be put on the record (see the station's storage fault); "
                "the carton is still held: release it again once the fault clears",
            )
        self._daemon.metrics.overridden(reason_code)
        return json_response(status_json(self._daemon.status()))

    def _not_the_held_carton(self, body: TokenOverride | ScreenOverride) -> str:
        """Why the release names another carton or attempt than the one held now ("" if not)."""
        view = self._daemon.session.carton_view()
        held = (view.order_id, view.carton_id, view.attempts) if view else (None, None, None)
        named = (body.order_id, body.carton_id, body.attempt)
        if all(want is None or want == have for want, have in zip(named, held, strict=True)):
            return ""
        return (
            f"the held carton is {held[0]}/{held[1]} attempt {held[2]}, not the one named "
            f"({'/'.join(str(n) for n in named)}): look at the screen again"
        )

    def _feed(self, event: SessionInput, succeeded: Callable[[], bool]) -> None:
        """Give the session `event` like a scan; 409 with the packer's message if it refused."""
        effects = self._daemon.feed(event)
        if not succeeded():
            said = next((e for e in effects if isinstance(e, ShowMessage)), None)
            key = said.key if said else "refused"
            detail = ", ".join(f"{k}={v}" for k, v in to_plain(said.params).items()) if said else ""
            raise HttpError(HTTPStatus.CONFLICT, f"the session refused: {key} {detail}".strip())

    # -- shipping and evidence ---------------------------------------------------------------

    async def _label_permission(self, request: Request) -> Response:
        # Not a plain read: reprints and granted labels are audited, and a granted label is the
        # one the label scan must then read.
        self._require_token(request)
        order_id, carton_id = _carton_query(request)
        asked = request.query.get("purpose", "print")
        if asked not in ("print", "reprint"):
            raise HttpError(HTTPStatus.BAD_REQUEST, "purpose must be print or reprint")
        purpose: LabelPurpose = "reprint" if asked == "reprint" else "print"
        requested_by = request.query.get("requested_by", "").strip()[:64] or None
        label = request.query.get("label", "").strip()[:64] or None
        permission = self._daemon.interlock.decide(
            order_id, carton_id, purpose, "api", requested_by, label
        )
        return json_response({"order_id": order_id, "carton_id": carton_id, **permission})

    async def _evidence(self, request: Request) -> Response:
        self._require_token(request)
        order_id, carton_id = _carton_query(request)
        evidence = self._daemon.evidence
        records = evidence.carton_records(order_id, carton_id)
        images = [digest for record in records for digest in image_refs(record.parsed_body())]
        return json_response(
            {
                "order_id": order_id,
                "carton_id": carton_id,
                "chain": self._chain(),
                "records": [record.plain() for record in records],
                "attempts": evidence.attempts(order_id, carton_id),
                "releases": evidence.releases(order_id, carton_id),
                "images": [
                    {"sha256": digest, "url": f"/api/evidence/image?sha256={digest}"}
                    for digest in dict.fromkeys(images)
                ],
                # Who was allowed to print labels, and what the label scan found (docs/mqtt.md).
                "labels": evidence.audits(
                    order_id,
                    carton_id,
                    "label.permission",
                    "carton.labelled",
                    "carton.sealed",
                    "carton.pass_withdrawn",
                    CARTON_UNSEALED,
                ),
            }
        )

    async def _evidence_record(self, request: Request) -> Response:
        self._require_token(request)
        raw = request.query.get("id", "").strip()
        if not (raw.isascii() and raw.isdigit()):
            raise HttpError(HTTPStatus.BAD_REQUEST, "id must be a record's chain position: 1, 2...")
        record = self._daemon.evidence.record(int(raw))
        if record is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no evidence record {raw} (pruned or not yet)")
        return json_response({**record.plain(), "chain": self._chain()})

    async def _evidence_image(self, request: Request) -> Response:
        self._require_token(request)
        digest = request.query.get("sha256", "").strip().lower()
        if not is_sha256(digest):
            raise HttpError(HTTPStatus.BAD_REQUEST, "sha256 must be 64 lower-case hex digits")
        found = None
        for folder in self._daemon.image_folders:
            found = found or await asyncio.to_thread(find_image, folder, digest)
        if found is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no image with sha256 {digest} at the station")
        return Response(200, found, "image/jpeg")

    def _chain(self) -> dict[str, Any]:
        evidence = self._daemon.evidence
        seq, sha256 = evidence.head
        return {"genesis": evidence.genesis, "head": {"record_id": seq, "sha256": sha256}}

    # -- health ------------------------------------------------------------------------------

    async def _live(self, request: Request) -> Response:
        return json_response({"status": "alive"})

    async def _ready(self, request: Request) -> Response:
        status = self._daemon.status()
        problems = [f"{d.name}: {d.state} {d.detail}".strip() for d in status.devices_down]
        code = HTTPStatus.OK if not problems else HTTPStatus.SERVICE_UNAVAILABLE
        return json_response({"ready": not problems, "problems": problems}, code)

    async def _metrics(self, request: Request) -> Response:
        return Response(200, self._daemon.metrics.render().encode(), METRICS_TYPE)

    async def _openapi(self, request: Request) -> Response:
        from station.api.openapi import openapi_document

        return json_response(openapi_document(ROUTES))

    # -- checks ------------------------------------------------------------------------------

    def _require_token(self, request: Request) -> None:
        if self._token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "no API token is configured at this station")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            raise HttpError(
                HTTPStatus.UNAUTHORIZED,
                "send Authorization: Bearer <the station's API token>",
                {"WWW-Authenticate": "Bearer"},
            )

    def _check_reason(self, reason_code: str) -> None:
        if reason_code not in self._reason_codes:
            allowed = ", ".join(self._reason_codes)
            raise HttpError(HTTPStatus.BAD_REQUEST, f"reason_code must be one of: {allowed}")

    def _earlier_pin_failures(self) -> list[datetime]:
        """Wrong PINs the audit trail holds from the lockout window before a restart."""
        window = timedelta(seconds=self._daemon.config.review.lockout_s)
        try:
            refused = self._daemon.evidence.since(
                "override.refused", self._daemon.clock.now_utc() - window
            )
            return [
                datetime.fromisoformat(r["at"])
                for r in refused
                if r.get("reason") == "bad_credentials"
            ]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            log.warning("wrong PINs before the start not recalled: evidence unreadable (%s)", exc)
            return []

    def _refused(self, reviewer_badge: str, why: str) -> None:
        """Every refused override is audited (never with the PIN) and counted. A badge no
        reviewer has is not written down: it may be the PIN typed into the wrong field."""
        self._daemon.metrics.override_rejected(why)
        known = reviewer_badge in self._reviewers
        data = {
            "reviewer_badge": reviewer_badge if known else "(not a reviewer's badge)",
            "reason": why,
            "carton": self._daemon.session.open_carton,
        }
        self._daemon.evidence.record_audit("override.refused", data, self._daemon.clock.now_utc())


def _parse(request: Request, model: type[_Body]) -> _Body:
    try:
        return model.model_validate(request.json() if request.body else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, problems) from None


def _carton_query(request: Request) -> tuple[str, str]:
    order_id = request.query.get("order_id", "").strip()
    carton_id = request.query.get("carton_id", "").strip()
    if not order_id or not carton_id:
        raise HttpError(HTTPStatus.BAD_REQUEST, "order_id and carton_id are both required")
    return order_id, carton_id


def status_json(status: StationStatus) -> dict[str, Any]:
    carton = status.carton
    return {
        "station_id": status.station_id,
        "site_id": status.site_id,
        "mode": status.mode,
        "state": status.state.value,
        "packer": status.packer,
        "carton": None
        if carton is None
        else {
            "order_id": carton.order_id,
            "carton_id": carton.carton_id,
            "attempts": carton.attempts,
            "outcome": carton.last_verdict.outcome.value if carton.last_verdict else None,
        },
        "devices": [to_plain(d) for d in status.devices],
        "weight": {"state": status.weight.state.value, "grams": status.weight.grams},
        "outbox_depth": status.outbox_depth,
        "uptime_s": round(status.uptime_s, 1),
        "clock": None if status.clock is None else to_plain(status.clock),
        "ready": not status.devices_down,
        "degraded": status.degraded,
    }


def _authorised(degraded: DegradedMode | None, request: DegradedModeRequested) -> bool:
    """The mode in force is the one asked for (another one may be, the request refused)."""
    return (
        degraded is not None
        and degraded.authorised_by == request.reviewer_badge
        and degraded.fallback is request.fallback
    )
