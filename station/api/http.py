"""A small HTTP/1.1 server on asyncio streams: enough for a local API, static files and one
Server-Sent Events stream per screen, with no dependency and no thread.

Every response closes its connection (clients here are a kiosk browser, the shipping software and
curl; keep-alive would buy nothing). Request heads and bodies are bounded and must arrive within a
timeout, so a stuck or hostile client cannot hold memory or the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("packstation.api")

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; raises HttpError 415/400 for anything else."""
        if self.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HttpError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json"
            )
        try:
            return json.loads(self.body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventStream:
    """A Server-Sent Events response: each yielded string is sent as one `data:` event."""

    events: AsyncIterator[str]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


Handler = Callable[[Request], Awaitable[Response | EventStream]]


def json_response(body: Any, status: int = HTTPStatus.OK) -> Response:
    return Response(status, json.dumps(body, ensure_ascii=False).encode())


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": HTTPStatus(status).phrase, "message": message}
    return Response(status, json.dumps(body).encode(), headers=headers or {})


class HttpServer:
    def __init__(self, routes: dict[tuple[str, str], Handler], host: str, port: int) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):  # open event streams would otherwise never end
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to tell it
        except asyncio.CancelledError:
            # stop() ends open event streams this way; asyncio's stream protocol would log a
            # cancelled connection task as an error, so it ends normally instead.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_S)
            result = await self._dispatch(request)
        except HttpError as exc:
            result = error_response(exc.status, exc.message, exc.headers)
        except TimeoutError:
            result = error_response(HTTPStatus.REQUEST_TIMEOUT, "the request was not sent in time")
        if isinstance(result, EventStream):
            await _stream(writer, result)
        else:
            writer.write(_head(result) + result.body)
            await writer.drain()

    async def _dispatch(self, request: Request) -> Response | EventStream:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            allowed = sorted(m for m, p in self._routes if p == request.path)
            if allowed:
                message = f"{request.method} is not allowed here; use {', '.join(allowed)}"
                allow = {"Allow": ", ".join(allowed)}
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, message, allow)
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource: {request.path}")
        try:
            return await handler(request)
        except HttpError:
            raise
        except Exception:
            log.exception("API handler failed", extra={"path": request.path})
            raise HttpError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the log"
            ) from None


async def _read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"
        ) from None
    if len(head) > MAX_HEAD_BYTES:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = request_line.split(" ")
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line") from None
    headers = {}
    for line in filter(None, header_lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await _read_body(reader, headers)
    url = urlsplit(target)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    return Request(method.upper(), url.path, query, headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "transfer-encoding" in headers:
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "send a Content-Length, not chunks")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"bodies are at most {MAX_BODY_BYTES} B"
        )
    return await reader.readexactly(length) if length else b""


def _head(response: Response) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _stream(writer: asyncio.StreamWriter, stream: EventStream) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        b"Connection: close\r\nX-Accel-Buffering: no\r\n\r\n"
    )
    async for data in stream.events:
        writer.write(b"".join(b"data: " + line.encode() + b"\n" for line in data.split("\n")))
        writer.write(b"\n")
        await writer.drain()
