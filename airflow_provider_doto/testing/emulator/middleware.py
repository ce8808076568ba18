"""The outermost ASGI layer: records each request, throttles (rack-attack), applies injected faults,
checks the token.

It sits outside FastAPI so a fault can act on the raw connection: uvicorn's ``send`` is a bound
method of its request cycle, whose ``transport`` we close to drop a connection without a response.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_doto.testing.emulator.faults import Fault, FaultBook
from airflow_provider_doto.testing.emulator.recorder import RecordedRequest, RequestLog, mask_headers
from airflow_provider_doto.testing.emulator.throttle import BODY as THROTTLED_BODY
from airflow_provider_doto.testing.emulator.throttle import CONTENT_TYPE as THROTTLED_TYPE
from airflow_provider_doto.testing.emulator.throttle import Throttle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERRORS = {401: "Invalid Access Token", 404: "Resource could not be found", 429: "Too Many Requests"}
MALFORMED = b'{"payload": ['
NO_TOKEN = {"errors": ["You need to sign in or sign up before continuing."]}
BOT_DENIED = {"error": "Access to this endpoint is not authorized for bots"}
# What an agent-bot token may call (Chatwoot's BOT_ACCESSIBLE_ENDPOINTS, among the routes served here).
BOT_ACTIONS = frozenset({"create_message", "toggle_conversation"})
BOT_SCOPE_KEY = "doto.bot"  # set in the ASGI scope when an agent-bot token made the request
RAILS_NOT_FOUND_JSON = b'{"status":404,"error":"Not Found"}'
RAILS_NOT_FOUND_HTML = (
    b"<!DOCTYPE html>\n<html>\n<head>\n  <title>The page you were looking for doesn't exist (404)</title>\n"
    b"</head>\n<body>\n  <h1>The page you were looking for doesn't exist.</h1>\n"
    b"  <p>You may have mistyped the address or the page may have moved.</p>\n</body>\n</html>\n"
)

_SEGMENT = r"[^/]+"
# (method, path pattern, action): the routes the app serves; anything else is Rails' own 404.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action)
    for method, pattern, action in (
        ("GET", rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/messages", "list_messages"),
        ("POST", rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/messages", "create_message"),
        (
            "DELETE",
            rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/messages/{_SEGMENT}",
            "delete_message",
        ),
        *(
            (
                method,
                rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/messages/{_SEGMENT}",
                "update_message",
            )
            for method in ("PATCH", "PUT")
        ),
        ("GET", r"/api/v1/profile", "profile"),
        ("GET", rf"/api/v1/accounts/{_SEGMENT}/conversations", "list_conversations"),
        ("GET", rf"/api/v1/accounts/{_SEGMENT}/conversations/meta", "conversation_meta"),
        ("GET", rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}", "show_conversation"),
        (
            "POST",
            rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/(toggle_status|toggle_priority)",
            "toggle_conversation",
        ),
        ("POST", rf"/api/v1/accounts/{_SEGMENT}/conversations/{_SEGMENT}/labels", "set_labels"),
        ("GET", rf"/rails/active_storage/blobs/redirect/{_SEGMENT}/.+", "attachment_redirect"),
    )
)
# Routes Rails serves without a token: Active Storage's redirect (its blob id is signed).
PUBLIC_ACTIONS = frozenset({"attachment_redirect"})


def match_route(method: str, path: str) -> str | None:
    """The action a request routes to, or None when no route matches (Rails answers 404 itself)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for route_method, pattern, action in ROUTES:
        if route_method == method and pattern.fullmatch(path):
            return action
    return None


def wants_json(accept: str | None) -> bool:
    """Whether Rails would answer a request with this Accept header in JSON."""
    return accept is None or accept.strip() == "" or "json" in accept or "*/*" in accept


def rails_not_found(accept: str | None) -> tuple[bytes, bytes]:
    """Rails' own 404 for a path that matches no route: (body, content type)."""
    if wants_json(accept):
        return RAILS_NOT_FOUND_JSON, b"application/json; charset=utf-8"
    return RAILS_NOT_FOUND_HTML, b"text/html; charset=utf-8"


class FrontDoor:
    """Wraps the API app; everything here runs on the server's event loop."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        faults: FaultBook,
        log: RequestLog,
        generation: Callable[[], int],
        bot_tokens: Callable[[], Collection[str]] = lambda: (),
        throttle: Callable[[], Throttle | None] = lambda: None,
    ) -> None:
        self.app = app
        self.token = token
        self.faults = faults
        self.log = log
        self.generation = generation
        self.bot_tokens = bot_tokens
        self.throttle = throttle
        self.in_flight = 0  # HTTP requests being handled (delayed ones included)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Read the whole body first: a delayed request must still commit after the client gave up.
        body, complete = await _read_body(receive)
        if not complete:
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        sent_token = headers.get("api_access_token")
        authorized = sent_token is not None and (sent_token == self.token or sent_token in self.bot_tokens())
        self.log.append(_record(scope, headers, body, authorized, self.token))
        throttle = self.throttle()
        client = (scope.get("client") or ("?", 0))[0]
        if throttle is not None and not throttle.admit(client, time.time()):
            # rack-attack answers before Rails (and before anything injected here) sees the request.
            await _respond(send, 429, THROTTLED_BODY, THROTTLED_TYPE)
            return
        fault = self.faults.take(scope["method"], scope["path"])
        replay = _replay(body, receive)
        serve_args = (headers, sent_token)
        if fault is None:
            await self._serve(scope, replay, send, *serve_args)
        elif fault.kind == "delay":
            arrived_in = self.generation()
            await asyncio.sleep(fault.delay or 0)
            if self.generation() != arrived_in:
                # The emulator was reset meanwhile (next test): don't commit into the fresh state.
                await drop_connection(send)
                return
            await self._serve(scope, replay, send, *serve_args)
        elif fault.kind == "status":
            await _respond_status(send, fault)
        elif fault.kind == "malformed":
            payload = MALFORMED if fault.body is None else fault.body
            await _respond(send, 200, payload, _guess_type(payload))
        elif fault.kind == "drop_before":
            await drop_connection(send)
        elif fault.kind == "drop_after":
            await self._serve(scope, replay, _discard, *serve_args)
            await drop_connection(send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], token: str | None
    ) -> None:
        # Like Rails: routing first (an unknown path is 404 even without a token), then auth.
        action = match_route(scope["method"], scope["path"])
        if action is None:
            body, content_type = rails_not_found(headers.get("accept"))
            await _respond(send, 404, body, content_type)
            return
        if action in PUBLIC_ACTIONS:
            await self.app(scope, receive, send)
            return
        if token is None:
            await _respond(send, 401, json.dumps(NO_TOKEN).encode())
            return
        if token != self.token:
            if token not in self.bot_tokens():
                await _respond(send, 401, json.dumps({"error": ERRORS[401]}).encode())
                return
            if action not in BOT_ACTIONS:
                await _respond(send, 401, json.dumps(BOT_DENIED).encode())
                return
            scope = {**scope, BOT_SCOPE_KEY: True}
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
    content_type = fault.content_type.encode("latin-1") if fault.content_type else _guess_type(payload)
    await _respond(send, status, payload, content_type, extra)


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
