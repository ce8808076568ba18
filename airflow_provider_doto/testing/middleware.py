"""The outermost ASGI layer: records each request, applies injected faults, checks the token.

It sits outside FastAPI so a fault can act on the raw connection: uvicorn's ``send`` is a bound
method of its request cycle, whose ``transport`` we close to drop a connection without a response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_doto.testing.faults import Fault, FaultBook
from airflow_provider_doto.testing.recorder import RecordedRequest, RequestLog, mask_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERRORS = {401: "Invalid Access Token", 404: "Resource could not be found", 429: "Too Many Requests"}
MALFORMED = b'{"payload": ['


class FrontDoor:
    """Wraps the API app; everything here runs on the server's event loop."""

    def __init__(
        self, app: ASGIApp, token: str, faults: FaultBook, log: RequestLog, generation: Callable[[], int]
    ) -> None:
        self.app = app
        self.token = token
        self.faults = faults
        self.log = log
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read the whole body first: a delayed request must still commit after the client gave up.
        body, complete = await _read_body(receive)
        if not complete:
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        authorized = headers.get("api_access_token") == self.token
        self.log.append(_record(scope, headers, body, authorized, self.token))
        fault = self.faults.take(scope["method"], scope["path"])
        replay = _replay(body, receive)
        if fault is None:
            await self._serve(scope, replay, send, authorized)
        elif fault.kind == "delay":
            arrived_in = self.generation()
            await asyncio.sleep(fault.delay or 0)
            if self.generation() != arrived_in:
                # The emulator was reset meanwhile (next test): don't commit into the fresh state.
                await drop_connection(send)
                return
            await self._serve(scope, replay, send, authorized)
        elif fault.kind == "status":
            await _respond_status(send, fault)
        elif fault.kind == "malformed":
            payload = MALFORMED if fault.body is None else fault.body
            await _respond(send, 200, payload, _guess_type(payload))
        elif fault.kind == "drop_before":
            await drop_connection(send)
        elif fault.kind == "drop_after":
            await self._serve(scope, replay, _discard, authorized)
            await drop_connection(send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, authorized: bool) -> None:
        if not authorized:
            await _respond(send, 401, json.dumps({"error": ERRORS[401]}).encode())
            return
        await self.app(scope, receive, send)


async def drop_connection(send: Send) -> None:
    """Close the client's TCP connection without writing a response byte."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot drop the connection: the server's send() exposes no transport")
    transport.close()
    # Let uvicorn see the disconnect, else it would log an error and try to answer 500.
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _discard(message: Message) -> None:
    """A send() that throws the response away (the drop_after fault)."""


def _record(
    scope: Scope, headers: dict[str, str], body: bytes, authorized: bool, token: str
) -> RecordedRequest:
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    return RecordedRequest(
        method=scope["method"],
        path=scope["path"],
        query=query,
        json=parsed,
        headers=mask_headers(headers, token),
        body=body,
        authorized=authorized,
    )


async def _respond_status(send: Send, fault: Fault) -> None:
    status = fault.status or 500
    if fault.body is not None:
        payload = fault.body
    else:
        message = ERRORS.get(status) or _phrase(status)
        payload = json.dumps({"error": message}).encode()
    extra = [] if fault.retry_after is None else [(b"retry-after", str(fault.retry_after).encode("latin-1"))]
    await _respond(send, status, payload, _guess_type(payload), extra)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json; charset=utf-8",
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _guess_type(body: bytes) -> bytes:
    if body.lstrip()[:1] == b"<":
        return b"text/html; charset=utf-8"
    return b"application/json; charset=utf-8"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
