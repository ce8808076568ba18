"""Requests and responses as data, and the one mapping of a response onto the provider's errors.

Rule: no I/O and no clock. A transport sends a :class:`DotoRequest` and hands back a
:class:`DotoResponse` stamped with when it arrived (``received_at``), so an HTTP-date
``Retry-After`` is read against that, not against a clock read here. The token goes only into
:func:`headers`; an error names the request's method and path, never its headers or body, and
quotes the server only through Doto's own ``{"error": ...}`` text.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_doto.api._values import check_attachments_alone, validate_send
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoHTTPError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
    DotoValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_doto.api._uploads import MultipartBody, Upload

TOKEN_HEADER = "api_access_token"
# Chatwoot's flood guard counts a conversation's messages of the last minute and answers 422 with no
# Retry-After: waiting a quarter of that minute at a time lets the default retry budget (4 waits)
# see the whole window slide.
FLOOD_GUARD_WAIT = 15.0
# Doto's own 404 text for a record that does not exist; a 404 without it is not Doto's answer.
DOTO_NOT_FOUND_TEXT = "Resource could not be found"
PROFILE_PATH = "/api/v1/profile"


@dataclass(frozen=True)
class DotoRequest:
    """One HTTP request to Doto, as data. ``safe_to_resend`` is False for anything that creates."""

    method: str
    path: str
    # A tuple value is a repeated parameter (Rails' ``labels[]=a&labels[]=b``).
    params: Mapping[str, int | str | tuple[str, ...]] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    # A form with files (attachments), streamed by the transport; never together with ``json``.
    multipart: MultipartBody | None = None

    @property
    def safe_to_resend(self) -> bool:
        return self.method in ("GET", "DELETE", "HEAD")

    def url(self, base_url: str) -> str:
        return base_url + self.path

    def query(self) -> list[tuple[str, int | str]] | None:
        """The query string as pairs (what requests and aiohttp both take), a repeated name once a value."""
        pairs: list[tuple[str, int | str]] = []
        for name, value in self.params.items():
            pairs += [(name, v) for v in value] if isinstance(value, tuple) else [(name, value)]
        return pairs or None

    def describe(self) -> str:
        """How errors name this request: method and path, never headers or body."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class DotoResponse:
    """What a transport got back: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    # The Base URL the request went to, so errors can name it (a 404 from a wrong path prefix).
    base_url: str | None = None
    # When the transport received it (aware, UTC): what an HTTP-date ``Retry-After`` is counted from.
    received_at: dt.datetime | None = None


def headers(token: str) -> dict[str, str]:
    """The only place the token goes: Doto's ``api_access_token`` header."""
    return {TOKEN_HEADER: token, "Accept": "application/json"}


def _messages_path(account_id: int, conversation_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"


def list_request(
    account_id: int,
    conversation_id: int,
    *,
    before: int | None = None,
    after: int | None = None,
    before_timestamp: int | None = None,
) -> DotoRequest:
    """A list request; what ``before``/``after`` mean depends on the server's flavor."""
    given = (("before", before), ("after", after), ("before_timestamp", before_timestamp))
    params = {k: v for k, v in given if v is not None}
    return DotoRequest("GET", _messages_path(account_id, conversation_id), params)


def send_request(
    account_id: int,
    conversation_id: int,
    content: str,
    *,
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: Mapping[str, Any] | None = None,
    template_params: Mapping[str, Any] | None = None,
    attachments: Sequence[Upload] = (),
) -> DotoRequest:
    """The create request; ``template_params`` (a template, :mod:`api._templates`) goes in as given.

    With ``attachments`` (checked by the caller, :func:`api._uploads.check_uploads`) the same fields
    go as ``multipart/form-data`` with one ``attachments[]`` part per file, as the web app uploads.
    """
    validate_send(content, message_type, private, content_type, content_attributes)
    check_attachments_alone(attachments, template_params)
    template = None
    if template_params is not None:
        from airflow_provider_doto.api._templates import check_template, check_template_use

        check_template_use(template_params, None, message_type, private)
        template = check_template(template_params)
    body: dict[str, Any] = {
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": content_type,
    }
    if content_attributes:
        body["content_attributes"] = dict(content_attributes)
    if template is not None:
        body["template_params"] = template
    path = _messages_path(account_id, conversation_id)
    if attachments:
        from airflow_provider_doto.api._uploads import multipart_body  # not needed to parse a DAG

        return DotoRequest("POST", path, multipart=multipart_body(body, attachments))
    return DotoRequest("POST", path, json=body)


def delete_request(account_id: int, conversation_id: int, message_id: int) -> DotoRequest:
    return DotoRequest("DELETE", f"{_messages_path(account_id, conversation_id)}/{message_id}")


def profile_request() -> DotoRequest:
    """``GET /api/v1/profile``: the token's user, with the accounts it belongs to (user tokens only)."""
    return DotoRequest("GET", PROFILE_PATH)


def error_for_status(request: DotoRequest, response: DotoResponse) -> DotoHTTPError | None:
    """The typed error for a non-2xx response, or None for success."""
    status = response.status
    if 200 <= status < 300:
        return None
    doto_error = _error_text(response.body)
    message = f"Doto {request.describe()} failed with HTTP {status}" + (
        f": {doto_error}" if doto_error else ""
    )
    kwargs: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "status": status,
        "doto_error": doto_error,
    }
    if 300 <= status < 400:
        return DotoHTTPError(message + " (a redirect; never followed, so the token cannot leave)", **kwargs)
    if status in (401, 403):
        if doto_error and "not authorized for bots" in doto_error.lower():
            return DotoAuthError(
                message + " (the connection's API Token belongs to an agent bot, and bots may only "
                "send (create) messages, not list or delete them; use an agent's (user's) access "
                "token for listing, sensors and deletes)",
                **kwargs,
            )
        return DotoAuthError(message + " (check the connection's API Token)", **kwargs)
    if status == 404:
        where = response.base_url or "this Base URL"
        if is_doto_not_found(doto_error):
            return DotoNotFoundError(message + f" (at {where})", **kwargs)
        return DotoNotFoundError(
            message + f" (no Doto API at {where}: check the Base URL (its path))", **kwargs
        )
    if status == 422 and doto_error and "too many messages" in doto_error.lower():
        # Chatwoot's flood guard refuses the message (nothing is created) with 422, never 429.
        return DotoRateLimitError(
            message + " (Doto's per-conversation flood guard: too many messages in this "
            f"conversation in the last minute; retried every {FLOOD_GUARD_WAIT:g} s)",
            retry_after=FLOOD_GUARD_WAIT,
            **kwargs,
        )
    if status == 422:
        return DotoValidationError(message, **kwargs)
    if status == 429:
        wait = retry_after_seconds(response.headers.get("retry-after"), now=response.received_at)
        return DotoRateLimitError(message, retry_after=wait, **kwargs)
    if status >= 500:
        return DotoServerError(message, **kwargs)
    return DotoHTTPError(message, **kwargs)


def is_doto_not_found(doto_error: str | None) -> bool:
    """Whether a 404's error text is Doto's own "Resource could not be found" (a record is missing),
    not a web server's or Rails' routing 404 (no Doto API at that path)."""
    return bool(doto_error) and DOTO_NOT_FOUND_TEXT.lower() in str(doto_error).lower()


def _error_text(body: bytes) -> str | None:
    """Doto's own ``{"error": "..."}`` text, if the body is that; never the raw body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if isinstance(data, dict):
        for key in ("error", "message", "errors"):
            value = data.get(key)
            if isinstance(value, str):
                return value[:300]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return "; ".join(value)[:300]
    return None


def connect_error(request: DotoRequest, base_url: str, timeout: float | None = None) -> DotoConnectError:
    """The connection could not be opened (so the request never reached Doto)."""
    why = (
        f"could not connect within {timeout:g} s"
        if timeout is not None
        else f"could not connect to {base_url}"
    )
    return DotoConnectError(f"Doto {request.describe()}: {why}", method=request.method, path=request.path)


def tls_error(
    request: DotoRequest, base_url: str, cause: BaseException | None = None, *, hint: str | None = None
) -> DotoConnectError:
    """The TLS handshake failed: the connection never carried the request, so nothing reached Doto
    (a :class:`DotoConnectError`, safe to retry even for a POST). ``hint`` is the likely cause, as
    the transport that saw the failure reads it; without one, both usual causes are named."""
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    hint = hint or (
        "the server is not speaking https at that address or its certificate is not trusted; "
        "check the Base URL's scheme and port, and REQUESTS_CA_BUNDLE"
    )
    return DotoConnectError(
        f"Doto {request.describe()}: TLS handshake failed with {base_url}{detail}, so nothing reached "
        f"Doto, likely because {hint}",
        method=request.method,
        path=request.path,
    )


def timeout_error(request: DotoRequest, timeout: float) -> DotoTimeoutError:
    return DotoTimeoutError(
        f"Doto {request.describe()}: no answer within {timeout:g} s", method=request.method, path=request.path
    )


def connection_lost_error(
    request: DotoRequest, cause: BaseException | None = None
) -> DotoConnectionLostError:
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    return DotoConnectionLostError(
        f"Doto {request.describe()}: the connection broke before an answer arrived{detail}",
        method=request.method,
        path=request.path,
    )


def parse_json(request: DotoRequest, response: DotoResponse) -> Any:
    """Raise the typed error for a failed response, else return its decoded JSON."""
    error = error_for_status(request, response)
    if error is not None:
        raise error
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        cause = _without_document(exc)
    # Raised outside the except block, so the decoder's error (which holds the whole body in
    # ``doc``/``object``, and its frames' locals) is neither the cause nor the context.
    raise DotoResponseError(
        f"Doto {request.describe()} returned HTTP {response.status} with a body that is not JSON "
        f"({len(response.body)} bytes, content-type {response.headers.get('content-type', '?')!r})",
        method=request.method,
        path=request.path,
    ) from cause


def _without_document(exc: BaseException) -> ValueError:
    """The decoder's complaint and where it arose, without the text it was decoding."""
    if isinstance(exc, json.JSONDecodeError):
        where = f"{exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})"
    elif isinstance(exc, UnicodeDecodeError):
        where = f"{exc.encoding} {exc.reason} at byte {exc.start}"
    else:  # RecursionError, or a ValueError whose text may quote the body
        where = "nested too deeply" if isinstance(exc, RecursionError) else "undecodable"
    return ValueError(f"{type(exc).__name__}: {where}")


def retry_after_seconds(value: str | None, *, now: dt.datetime | None) -> float | None:
    """A ``Retry-After`` header as seconds to wait: delta-seconds or an HTTP date; None if absent/bad.

    An HTTP date is counted from ``now`` (when the response arrived; naive means UTC); without
    ``now`` it cannot be counted, and is None like a bad value (the caller backs off instead).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone accepts '²'
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if now is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())
