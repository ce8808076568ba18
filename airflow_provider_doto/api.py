"""Everything the provider knows about Doto's Messages API, with no I/O (the sans-I/O idea of h11).

This module builds requests (:class:`DotoRequest`), reads responses (:class:`DotoResponse`) into
typed :class:`Message` objects or typed errors, and holds the few algorithms the contract asks
for: paging a capped server (:func:`list_messages_flow`), polling with an overlapping,
de-duplicating cursor (:class:`MessageWatch`), duplicate-safe sending (:func:`delivery_key`) and
the retry policy (:func:`is_retryable`, :func:`retry_wait`).

The sync hook (requests) and the async hook (aiohttp) only move bytes: they drive the
generator "flows" here with :func:`run_flow` / their async twin, sending each yielded request and
feeding back the response. Nothing about the API is written twice. See ``../shared/doto-api``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoHTTPError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
    DotoValidationError,
)

DEFAULT_BASE_URL = "https://app.usendoto.com"
DEFAULT_TIMEOUT = 30.0
TOKEN_HEADER = "api_access_token"
# Chatwoot's smallest page is 20 (lists without ``after``); a shorter page cannot have been cut.
PAGE_FULL_AT = 20
# Seconds re-read behind the cursor on every poll: covers messages that share the cursor's second
# or commit late (an older ``created_at`` showing up after a newer message).
DEFAULT_OVERLAP = 10
DELIVERY_KEY_ATTRIBUTE = "airflow_delivery_key"
# Chatwoot's flood guard counts a conversation's messages of the last minute and answers 422 with no
# Retry-After: waiting a quarter of that minute at a time lets the default retry budget (4 waits)
# see the whole window slide.
FLOOD_GUARD_WAIT = 15.0
# How a server reads ``before``/``after``: "doto" as Unix timestamps (Doto's reference), "chatwoot" as
# message ids (Chatwoot's finder, CHATWOOT.md); "auto" finds out (:func:`detect_flavor_flow`).
FLAVORS = ("auto", "doto", "chatwoot")
SERVER_FLAVORS = ("doto", "chatwoot")
# Chatwoot's page caps: ``after`` alone answers at most 100 messages, ``before_timestamp`` 20.
CHATWOOT_AFTER_PAGE = 100
CHATWOOT_BEFORE_PAGE = 20
# Seconds by which ids and ``created_at`` may disagree on order: both are assigned at insert, but
# concurrent inserts can take them in different orders. Id cursors step back this far in time.
ID_ORDER_SLACK = 2
# Chatwoot refuses longer content (validation, so a 422 after the request went out).
MAX_CONTENT_LENGTH = 150_000
# Doto's own 404 text for a record that does not exist; a 404 without it is not Doto's answer.
DOTO_NOT_FOUND_TEXT = "Resource could not be found"
PROFILE_PATH = "/api/v1/profile"
# An ``after`` no message reaches, read as an id (Chatwoot) or as a timestamp (Doto's reference).
_AFTER_EVERYTHING = 2**31 - 1

MESSAGE_TYPES = ("incoming", "outgoing", "activity", "template")
SENDABLE_MESSAGE_TYPES = ("outgoing", "incoming")
# Chatwoot sends message_type as an integer in lists.
_MESSAGE_TYPE_BY_INT = dict(enumerate(MESSAGE_TYPES))
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# created_at bounds that datetime can represent (years 1 to 9999).
_MIN_TIMESTAMP, _MAX_TIMESTAMP = -62135596800, 253402300799

Timestamp: TypeAlias = "int | float | dt.datetime | str"

# --------------------------------------------------------------------------------------------
# Connection settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DotoSettings:
    """What a ``doto`` connection resolves to. The token is kept out of ``repr``."""

    base_url: str
    token: str = field(repr=False)
    account_id: int
    timeout: float = DEFAULT_TIMEOUT
    conn_id: str = "doto_default"
    flavor: str = "auto"

    @classmethod
    def from_connection_fields(
        cls,
        conn_id: str,
        *,
        host: str | None,
        password: str | None,
        extra: Mapping[str, Any] | None,
        schema: str | None = None,
        port: int | None = None,
    ) -> DotoSettings:
        """Validate a connection's fields; every problem names the connection id and the field."""
        extra = dict(extra or {})
        if not password:
            raise DotoConfigError(
                f"Doto connection {conn_id!r} has no API Token (the connection's password)."
            )
        account = extra.get("account_id")
        if account in (None, ""):
            raise DotoConfigError(
                f"Doto connection {conn_id!r} has no Account ID (extra field 'account_id')."
            )
        try:
            account_id = int(str(account).strip())
        except ValueError:
            raise DotoConfigError(
                f"Doto connection {conn_id!r}: Account ID must be an integer, got {account!r}."
            ) from None
        timeout = extra.get("timeout")
        try:
            timeout = DEFAULT_TIMEOUT if timeout in (None, "") else float(timeout)
        except (TypeError, ValueError):
            raise DotoConfigError(
                f"Doto connection {conn_id!r}: timeout must be a number of seconds, got {timeout!r}."
            ) from None
        if timeout <= 0:
            raise DotoConfigError(f"Doto connection {conn_id!r}: timeout must be positive, got {timeout}.")
        base_url = normalise_base_url(
            conn_id, host, schema=schema, port=port, allow_insecure=_truthy(extra.get("allow_insecure_http"))
        )
        flavor = extra.get("flavor")
        flavor = "auto" if flavor in (None, "") else str(flavor).strip().lower()
        if flavor not in FLAVORS:
            raise DotoConfigError(
                f"Doto connection {conn_id!r}: flavor must be one of {', '.join(FLAVORS)}, "
                f"got {extra.get('flavor')!r}."
            )
        return cls(
            base_url=base_url,
            token=password,
            account_id=account_id,
            timeout=timeout,
            conn_id=conn_id,
            flavor=flavor,
        )

    @classmethod
    def from_connection(cls, conn_id: str, conn: Any, extra: Mapping[str, Any] | None) -> DotoSettings:
        """From an Airflow ``Connection`` and its decoded extra (read sync or async by the caller)."""
        return cls.from_connection_fields(
            conn_id, host=conn.host, password=conn.password, extra=extra, schema=conn.schema, port=conn.port
        )

    def conversation_url(self, conversation_id: int) -> str:
        """Where a person sees the conversation in Doto's web app."""
        return f"{self.base_url}/app/accounts/{self.account_id}/conversations/{conversation_id}"


def normalise_base_url(
    conn_id: str,
    host: str | None,
    *,
    schema: str | None = None,
    port: int | None = None,
    allow_insecure=False,
) -> str:
    """Turn the connection's host (a full URL or a bare host name) into a checked base URL.

    Plain ``http://`` is refused for any host but loopback unless the connection sets
    ``allow_insecure_http``: the token would travel in clear. Checked before any name lookup.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}" + (f":{port}" if port else "")
    try:
        parts = urlsplit(host)
        hostname, parsed_port = parts.hostname, parts.port
    except ValueError:  # a malformed [IPv6] literal or port
        parts, hostname, parsed_port = None, None, None
    # urlsplit silently drops tabs and newlines, so look for any whitespace or control character.
    unprintable = any(c.isspace() or not c.isprintable() for c in host)
    if parts is None or parts.scheme not in ("http", "https") or not hostname or unprintable:
        raise DotoConfigError(
            f"Doto connection {conn_id!r}: Base URL {host!r} is not an http(s) URL such as "
            f"{DEFAULT_BASE_URL!r}."
        )
    if parts.scheme == "http" and not allow_insecure and not is_loopback(hostname):
        raise DotoConfigError(
            f"Doto connection {conn_id!r}: Base URL {host!r} uses plain http to a non-loopback host, "
            "which would send the API token in clear. Use https, or set extra "
            "'allow_insecure_http': true if you really mean it."
        )
    netloc = hostname if ":" not in hostname else f"[{hostname}]"
    if parsed_port:
        netloc += f":{parsed_port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def is_loopback(hostname: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (decided from the text alone, no DNS)."""
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def to_timestamp(value: Timestamp, *, name: str = "timestamp") -> int:
    """Unix seconds from an int/float, a (pendulum) datetime or an ISO-8601 / digit string.

    Naive datetimes are taken as UTC, as Airflow does.
    """
    if isinstance(value, bool):
        raise DotoConfigError(f"{name} must be a Unix timestamp or a datetime, got {value!r}.")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise DotoConfigError(f"{name} must be a finite Unix timestamp, got {value!r}.")
        return int(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp())
    if isinstance(value, str):
        text = value.strip()
        # At most 30 digits: int() refuses more than 4,300 with a bare ValueError, and no
        # timestamp needs more than 12 (longer ones still end up refused as out of range).
        if re.fullmatch(r"-?\d{1,30}(\.\d+)?", text):
            return int(text.split(".")[0])  # truncates like int(float), without overflow
        try:
            return to_timestamp(dt.datetime.fromisoformat(text.replace("Z", "+00:00")), name=name)
        except ValueError:
            pass
    raise DotoConfigError(
        f"{name} must be a Unix timestamp, a datetime or an ISO-8601 string, got {value!r}."
    )


def is_template(value: Any) -> bool:
    """A Jinja template string: its value is only known, and checked, after rendering."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def to_id(value: Any, *, name: str) -> int:
    """A positive integer id (conversation, message); strings of digits are accepted (templates)."""
    if isinstance(value, bool):
        raise DotoConfigError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not '²'
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0:
        raise DotoConfigError(f"{name} must be a positive integer, got {value!r}.")
    return value


def validate_send(
    content: Any, message_type: Any, private: Any, content_type: Any, content_attributes: Any
) -> None:
    """Check a message before it is sent; the same rules at DAG parse and at run time."""
    if not isinstance(content, str) or not content.strip():
        raise DotoConfigError(f"content must be a non-empty string, got {content!r}.")
    if len(content) > MAX_CONTENT_LENGTH:
        raise DotoConfigError(
            f"content is {len(content):,} characters long; Doto accepts at most "
            f"{MAX_CONTENT_LENGTH:,} (MAX_CONTENT_LENGTH)."
        )
    if message_type not in SENDABLE_MESSAGE_TYPES:
        raise DotoConfigError(
            f"message_type must be one of {', '.join(SENDABLE_MESSAGE_TYPES)}, got {message_type!r}."
        )
    if not isinstance(private, bool):
        raise DotoConfigError(f"private must be True or False, got {private!r}.")
    if private and message_type == "incoming":
        raise DotoConfigError("private=True is only for outgoing messages (a note from the team).")
    if not isinstance(content_type, str) or not content_type:
        raise DotoConfigError(f"content_type must be a non-empty string, got {content_type!r}.")
    if content_attributes is not None and not isinstance(content_attributes, Mapping):
        raise DotoConfigError(f"content_attributes must be a dict, got {type(content_attributes).__name__}.")


# --------------------------------------------------------------------------------------------
# Requests and responses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DotoRequest:
    """One HTTP request to Doto, as data. ``safe_to_resend`` is False for anything that creates."""

    method: str
    path: str
    params: Mapping[str, int | str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None

    @property
    def safe_to_resend(self) -> bool:
        return self.method in ("GET", "DELETE", "HEAD")

    def url(self, base_url: str) -> str:
        return base_url + self.path

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
) -> DotoRequest:
    validate_send(content, message_type, private, content_type, content_attributes)
    body: dict[str, Any] = {
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": content_type,
    }
    if content_attributes:
        body["content_attributes"] = dict(content_attributes)
    return DotoRequest("POST", _messages_path(account_id, conversation_id), json=body)


def delete_request(account_id: int, conversation_id: int, message_id: int) -> DotoRequest:
    return DotoRequest("DELETE", f"{_messages_path(account_id, conversation_id)}/{message_id}")


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
        wait = retry_after_seconds(response.headers.get("retry-after"))
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


def tls_error(request: DotoRequest, base_url: str, cause: BaseException | None = None) -> DotoConnectError:
    """The TLS handshake failed: the connection never carried the request, so nothing reached Doto
    (a :class:`DotoConnectError`, safe to retry even for a POST). Names the likely causes."""
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    return DotoConnectError(
        f"Doto {request.describe()}: TLS handshake failed with {base_url}{detail}: is the server "
        "speaking https? / certificate not trusted (check the Base URL's scheme and port, and the "
        "CA bundle)",
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
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise DotoResponseError(
            f"Doto {request.describe()} returned HTTP {response.status} with a body that is not JSON "
            f"({len(response.body)} bytes, content-type {response.headers.get('content-type', '?')!r})",
            method=request.method,
            path=request.path,
        ) from None


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds to wait: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone accepts '²'
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    id: int | None
    name: str | None
    type: str | None


@dataclass(frozen=True)
class Message:
    """A Doto message, normalised: ``message_type`` is always a string, absent keys defaulted.

    ``raw`` keeps the payload exactly as the server sent it. ``to_dict()`` is the JSON-safe form
    that goes to XCom and trigger events.
    """

    id: int
    content: str | None
    message_type: str
    created_at: int
    private: bool = False
    status: str | None = None
    content_type: str = "text"
    content_attributes: Mapping[str, Any] = field(default_factory=dict)
    sender: Sender | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def created_at_datetime(self):
        """``created_at`` as a pendulum DateTime in UTC."""
        import pendulum

        return pendulum.from_timestamp(self.created_at, tz="UTC")

    @property
    def is_deleted(self) -> bool:
        """Chatwoot deletes softly: the message stays with ``content_attributes.deleted``."""
        return bool(self.content_attributes.get("deleted"))

    @property
    def sender_type(self) -> str | None:
        return self.sender.type if self.sender else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "message_type": self.message_type,
            "created_at": self.created_at,
            "private": self.private,
            "status": self.status,
            "content_type": self.content_type,
            "content_attributes": dict(self.content_attributes),
            "sender": None
            if self.sender is None
            else {"id": self.sender.id, "name": self.sender.name, "type": self.sender.type},
            "attachments": [dict(a) for a in self.attachments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Rebuild from ``to_dict()`` output or a raw payload (same parser)."""
        return parse_message(data)


def parse_message(data: Any, *, where: str = "message") -> Message:
    """Normalise one message payload; anything unusable raises :class:`DotoResponseError`."""

    def bad(why: str) -> DotoResponseError:
        return DotoResponseError(f"Doto returned a {where} that is not a valid message: {why}")

    if not isinstance(data, Mapping):
        raise bad(f"expected an object, got {type(data).__name__}")
    mid = data.get("id")
    if isinstance(mid, bool) or not isinstance(mid, int):
        raise bad(f"'id' must be an integer, got {type(mid).__name__}")
    created = data.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        if isinstance(created, str):
            try:
                created = to_timestamp(created, name="created_at")
            except DotoConfigError:
                raise bad("'created_at' is not a timestamp") from None
        else:
            raise bad(f"'created_at' must be a Unix timestamp, got {type(created).__name__}")
    if not _MIN_TIMESTAMP <= created <= _MAX_TIMESTAMP:  # also NaN and infinities (json accepts them)
        raise bad(f"'created_at' {created!r} is out of range")
    raw_type = data.get("message_type")
    if isinstance(raw_type, int) and not isinstance(raw_type, bool) and raw_type in _MESSAGE_TYPE_BY_INT:
        message_type = _MESSAGE_TYPE_BY_INT[raw_type]
    elif isinstance(raw_type, str) and raw_type:
        message_type = raw_type
    else:
        raise bad(f"unknown 'message_type' {raw_type!r}")
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    attributes = data.get("content_attributes")
    attributes = dict(attributes) if isinstance(attributes, Mapping) else {}
    sender_data = data.get("sender")
    sender = None
    if isinstance(sender_data, Mapping):
        sid = sender_data.get("id")
        sender = Sender(
            id=sid if isinstance(sid, int) and not isinstance(sid, bool) else None,
            name=sender_data.get("name") if isinstance(sender_data.get("name"), str) else None,
            type=sender_data.get("type") if isinstance(sender_data.get("type"), str) else None,
        )
    attachments = data.get("attachments")
    attachments_t = (
        tuple(a for a in attachments if isinstance(a, Mapping)) if isinstance(attachments, list) else ()
    )
    status = data.get("status")
    content_type = data.get("content_type")
    return Message(
        id=mid,
        content=content,
        message_type=message_type,
        created_at=int(created),
        private=data.get("private") is True,
        status=status if isinstance(status, str) else None,
        content_type=content_type if isinstance(content_type, str) and content_type else "text",
        content_attributes=attributes,
        sender=sender,
        attachments=attachments_t,
        raw=dict(data),
    )


def parse_message_list(request: DotoRequest, response: DotoResponse) -> list[Message]:
    data = parse_json(request, response)
    payload = data.get("payload") if isinstance(data, Mapping) else data
    if not isinstance(payload, list):
        raise DotoResponseError(
            f"Doto {request.describe()} returned no 'payload' list of messages",
            method=request.method,
            path=request.path,
        )
    try:
        return [parse_message(item, where=f"message in {request.describe()}") for item in payload]
    except DotoResponseError as error:
        error.method, error.path = request.method, request.path
        raise


def parse_single_message(request: DotoRequest, response: DotoResponse) -> Message:
    data = parse_json(request, response)
    # Some deployments wrap single objects as {"payload": {...}}.
    if isinstance(data, Mapping) and "id" not in data and isinstance(data.get("payload"), Mapping):
        data = data["payload"]
    return parse_message(data, where=f"answer to {request.describe()}")


def sort_messages(messages: Iterable[Message]) -> list[Message]:
    """Oldest first; ids break ties inside one second."""
    return sorted(messages, key=lambda m: (m.created_at, m.id))


# --------------------------------------------------------------------------------------------
# Flows: generators that yield requests and receive responses; the transports drive them.
# --------------------------------------------------------------------------------------------

Flow: TypeAlias = Generator[DotoRequest, DotoResponse, Any]


def run_flow(flow: Flow, send: Callable[[DotoRequest], DotoResponse]) -> Any:
    """Drive a flow with a synchronous ``send``; the async transport has the same five lines."""
    try:
        request = next(flow)
        while True:
            request = flow.send(send(request))
    except StopIteration as done:
        return done.value


async def arun_flow(flow: Flow, send: Callable[[DotoRequest], Awaitable[DotoResponse]]) -> Any:
    """:func:`run_flow` for an async ``send``."""
    try:
        request = next(flow)
        while True:
            request = flow.send(await send(request))
    except StopIteration as done:
        return done.value


@dataclass
class ServerFlavor:
    """How a connection's server reads ``before``/``after``: as configured, or as ``auto`` found out.

    The hooks keep one per connection and process, so detection runs once; watches also keep the
    resolved flavor in their state, so a reschedule or a restarted trigger does not probe again.
    """

    configured: str = "auto"
    detected: str | None = None
    announced: bool = False

    def __post_init__(self) -> None:
        if self.configured not in FLAVORS:
            raise DotoConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {self.configured!r}.")

    @classmethod
    def of(cls, flavor: str | ServerFlavor) -> ServerFlavor:
        return flavor if isinstance(flavor, ServerFlavor) else cls(flavor)

    @property
    def known(self) -> str | None:
        """``doto`` or ``chatwoot`` once known; None while ``auto`` has not decided."""
        return self.configured if self.configured != "auto" else self.detected

    def resolve_flow(
        self, account_id: int, conversation_id: int
    ) -> Generator[DotoRequest, DotoResponse, str | None]:
        """The server's flavor, detecting it with this conversation if needed (None: it is empty)."""
        if self.known is None:
            self.detected = yield from detect_flavor_flow(account_id, conversation_id)
        return self.known

    def announce(self) -> str | None:
        """The detected flavor the first time it is asked after detection, else None (log it once)."""
        if self.configured != "auto" or self.detected is None or self.announced:
            return None
        self.announced = True
        return self.detected


def detect_flavor_flow(
    account_id: int, conversation_id: int | str
) -> Generator[DotoRequest, DotoResponse, str | None]:
    """Whether the server reads ``before``/``after`` as timestamps or as ids; None if the conversation is empty.

    Two requests, the same under both readings until the answer. First the newest messages (no
    parameters). Then, with the newest id ``i``, ``after=i&before=i+1``: read as ids (Chatwoot's
    ``after`` is inclusive when both are given) that is message ``i`` itself; read as timestamps it
    is the open interval between two consecutive seconds, where no whole-second ``created_at`` can
    lie. So the answer does not depend on how ids compare with Unix timestamps.
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    request = list_request(account_id, conversation_id)
    newest = parse_message_list(request, (yield request))
    if not newest:
        return None
    probe = max(m.id for m in newest)
    request = list_request(account_id, conversation_id, after=probe, before=probe + 1)
    answer = parse_message_list(request, (yield request))
    return "chatwoot" if any(m.id == probe for m in answer) else "doto"


def list_messages_flow(
    account_id: int,
    conversation_id: int | str,
    *,
    before: Timestamp | None = None,
    after: Timestamp | None = None,
    flavor: str | ServerFlavor = "doto",
    page_full_at: int = PAGE_FULL_AT,
    max_pages: int = 100_000,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Every message with ``after < created_at < before`` exactly once, oldest first.

    ``before``/``after`` are always times here; ``flavor`` says how the server is asked for them
    (``auto`` detects it first, see :class:`ServerFlavor`).
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    before = None if before is None else to_timestamp(before, name="before")
    after = None if after is None else to_timestamp(after, name="after")
    server = ServerFlavor.of(flavor)
    resolved = yield from server.resolve_flow(account_id, conversation_id)
    if resolved is None:  # auto, and the conversation has no messages yet
        return []
    if resolved == "chatwoot":
        found = yield from id_paged_flow(
            account_id, conversation_id, after=after, until=before, max_pages=max_pages
        )
        return [m for m in found if _in_window(m, after, before)]
    return (
        yield from _timestamp_paged_flow(
            account_id, conversation_id, before, after, page_full_at=page_full_at, max_pages=max_pages
        )
    )


def _in_window(message: Message, after: int | None, before: int | None) -> bool:
    return (after is None or message.created_at > after) and (before is None or message.created_at < before)


def id_paged_flow(
    account_id: int,
    conversation_id: int,
    *,
    after: int | None = None,
    after_id: int | None = None,
    until: int | None = None,
    max_pages: int = 100_000,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Chatwoot: every message with an id above ``after_id``, oldest first, paging forwards by id.

    Without ``after_id`` the window's first id is looked up from the time ``after``: the newest
    messages created before it (``before_timestamp``, one request) end below the window, so a
    recent window never reads the whole history. Pages answer at most 100 messages ordered by
    ``created_at``; the next page starts from an id safely behind the page's end
    (:data:`ID_ORDER_SLACK`), re-reading a little and de-duplicating. Paging stops at a short page,
    or once a page lies wholly after ``until`` (a time).
    """
    if after_id is None:
        after_id = (
            0 if after is None else (yield from window_start_id_flow(account_id, conversation_id, after))
        )
    by_id: dict[int, Message] = {}
    for _ in range(max_pages):
        request = list_request(account_id, conversation_id, after=after_id)
        page = parse_message_list(request, (yield request))
        by_id.update((m.id, m) for m in page if m.id > after_id)
        if len(page) < CHATWOOT_AFTER_PAGE:
            break
        if until is not None and min(m.created_at for m in page) > until + ID_ORDER_SLACK:
            break
        newest = max(m.created_at for m in page)
        settled = [m.id for m in page if m.created_at < newest - ID_ORDER_SLACK and m.id > after_id]
        next_id = max(settled) if settled else max(m.id for m in page)
        if next_id <= after_id:  # a server that ignores ``after``: stop rather than loop
            break
        after_id = next_id
    return sort_messages(by_id.values())


def window_start_id_flow(
    account_id: int, conversation_id: int, after: int
) -> Generator[DotoRequest, DotoResponse, int]:
    """Chatwoot: an id below every message created after ``after`` (0 if none is older)."""
    request = list_request(account_id, conversation_id, before_timestamp=after - ID_ORDER_SLACK + 1)
    older = parse_message_list(request, (yield request))
    return max((m.id for m in older), default=0)


def _timestamp_paged_flow(
    account_id: int,
    conversation_id: int,
    before: int | None,
    after: int | None,
    *,
    page_full_at: int,
    max_pages: int,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Doto's reference: ``before``/``after`` are times; pages through a capped server too.

    A capped server answers with the oldest page after ``after``, or the newest page before
    ``before`` when there is no ``after``. A page that could have been cut is followed by the
    next one, overlapping by one second (timestamps are whole seconds) and de-duplicated by id.
    A full page that brings nothing new means one second holds a whole page: paging steps past
    that second (going backwards, after reading it forwards, where pages are larger).
    Paging stops at a short page.
    """
    by_id: dict[int, Message] = {}
    forward = after is not None
    page_before, page_after = before, after
    for _ in range(max_pages):
        request = list_request(account_id, conversation_id, before=page_before, after=page_after)
        page = parse_message_list(request, (yield request))
        # The window is strict on both ends; drop anything a lax server sent outside it.
        page = [
            m
            for m in page
            if (after is None or m.created_at > after) and (before is None or m.created_at < before)
        ]
        fresh = [m for m in page if m.id not in by_id]
        by_id.update((m.id, m) for m in fresh)
        if len(page) < page_full_at:
            break
        if fresh:
            # The page may end inside a second: the next page re-reads that second.
            if forward:
                page_after = max(m.created_at for m in page) - 1
            else:
                page_before = min(m.created_at for m in page) + 1
            continue
        # A full page of known messages: one second holds a whole page. Step past it, or stop
        # if that makes no progress (a server that ignores before/after).
        if forward:
            crowded = max(m.created_at for m in page)
            if page_after is not None and crowded <= page_after:
                break
            page_after = crowded
        else:
            crowded = min(m.created_at for m in page)
            if page_before is not None and crowded >= page_before:
                break
            request = list_request(account_id, conversation_id, before=crowded + 1, after=crowded - 1)
            rest = parse_message_list(request, (yield request))
            by_id.update((m.id, m) for m in rest if m.created_at == crowded and m.id not in by_id)
            page_before = crowded
    return sort_messages(by_id.values())


def send_message_flow(
    account_id: int, conversation_id: int | str, content: str, **options: Any
) -> Generator[DotoRequest, DotoResponse, Message]:
    request = send_request(account_id, to_id(conversation_id, name="conversation_id"), content, **options)
    return parse_single_message(request, (yield request))


def delete_message_flow(
    account_id: int, conversation_id: int | str, message_id: int | str, *, missing_ok: bool = False
) -> Generator[DotoRequest, DotoResponse, bool]:
    """True if deleted now; False if it was already gone and ``missing_ok``.

    A 404 on DELETE does not say whether the message or the conversation is missing, so with
    ``missing_ok`` one cheap list request (``after`` beyond every id and timestamp: an empty page
    for an existing conversation under either server's reading) tells them apart; a missing
    conversation is always an error. Chatwoot deletes softly: a second DELETE answers 200.
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    request = delete_request(account_id, conversation_id, to_id(message_id, name="message_id"))
    response = yield request
    error = error_for_status(request, response)
    if isinstance(error, DotoNotFoundError) and missing_ok:
        check = list_request(account_id, conversation_id, after=_AFTER_EVERYTHING)
        check_response = yield check
        check_error = error_for_status(check, check_response)
        if isinstance(check_error, DotoNotFoundError) and is_doto_not_found(check_error.doto_error):
            raise DotoNotFoundError(
                f"Doto conversation {conversation_id} does not exist in account {account_id}"
                + (f" at {response.base_url}" if response.base_url else "")
                + f" ({request.describe()} and {check.describe()} both answered HTTP 404)",
                method=request.method,
                path=request.path,
                status=404,
                doto_error=error.doto_error,
            )
        parse_message_list(check, check_response)  # any other failure is raised as it is
        return False
    if error is not None:
        raise error
    if response.body.strip():
        # A 2xx that is not JSON (an HTML login page, a proxy) is not Doto's answer: nothing was deleted.
        parse_json(request, response)
    return True


def profile_request() -> DotoRequest:
    """``GET /api/v1/profile``: the token's user, with the accounts it belongs to (user tokens only)."""
    return DotoRequest("GET", PROFILE_PATH)


def check_connection_flow(settings: DotoSettings) -> Generator[DotoRequest, DotoResponse, tuple[bool, str]]:
    """``(ok, text)`` for a connection test: does the token work, and does it belong to the account?

    One ``GET /api/v1/profile``: its ``accounts`` list shows whether the token's user is a member of
    the connection's account. A 401 names a wrong token or an agent bot's token (bots may only send),
    a 404 that is not Doto's own means no Doto API at the Base URL. A Doto server without the
    profile endpoint (its own 404) gets the older probe: a list request that is empty or Doto's 404.
    The text never contains the token.
    """
    where = f"Doto at {settings.base_url}"
    request = profile_request()
    try:
        response = yield request
        error = error_for_status(request, response)
        if isinstance(error, DotoNotFoundError) and is_doto_not_found(error.doto_error):
            return (yield from _check_messages_probe(settings))
        data = parse_json(request, response)
    except DotoError as err:
        return False, str(err)
    accounts = data.get("accounts") if isinstance(data, Mapping) else None
    if not isinstance(accounts, list):
        return False, (
            f"{where} answered {request.describe()} without an 'accounts' list: no Doto API at "
            f"{settings.base_url}? Check the Base URL (its path)."
        )
    name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else None
    user = name or f"user {data.get('id')!r}"
    members = [a for a in accounts if isinstance(a, Mapping)]
    for account in members:
        if str(account.get("id")) == str(settings.account_id):
            role = account.get("role")
            return True, (
                f"Connected to {where} as {user}, account {settings.account_id}"
                + (f" ({role})" if isinstance(role, str) and role else "")
                + "."
            )
    listed = ", ".join(
        f"{a.get('id')}" + (f" ({a['name']})" if isinstance(a.get("name"), str) else "") for a in members
    )
    return False, (
        f"{where}: the API Token ({user}) does not belong to account {settings.account_id}; "
        + (f"it has access to account(s) {listed}." if listed else "it has access to no account.")
        + " Check the connection's Account ID."
    )


def _check_messages_probe(settings: DotoSettings) -> Generator[DotoRequest, DotoResponse, tuple[bool, str]]:
    """The fallback probe: the newest second of a conversation that need not exist."""
    request = list_request(settings.account_id, 1, after=_AFTER_EVERYTHING)
    response = yield request
    error = error_for_status(request, response)
    if error is None:
        parse_message_list(request, response)  # a Base URL pointing at some other web server can answer 200
    elif not (isinstance(error, DotoNotFoundError) and is_doto_not_found(error.doto_error)):
        raise error
    # Doto's own 404 here means "no such conversation": the token and account were accepted.
    return True, (
        f"Connected to Doto at {settings.base_url} (account {settings.account_id}; this server has "
        f"no {PROFILE_PATH}, so whether the token belongs to the account was not checked)."
    )


# --------------------------------------------------------------------------------------------
# Retry policy (the transports apply it with tenacity)
# --------------------------------------------------------------------------------------------

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def is_retryable(request: DotoRequest, error: BaseException) -> bool:
    """Whether ``error`` on ``request`` may be retried without risking a duplicate.

    Reads and deletes are idempotent: retried on connection errors, timeouts, 429 and
    502/503/504. A POST is retried only when it certainly created nothing: the connection never
    opened, or the server refused it with 429 before doing anything. After a timeout, a dropped
    connection or a 5xx, a POST may have been committed, so it is never blindly re-sent.
    """
    if isinstance(error, DotoConnectError | DotoRateLimitError):
        return True
    if not request.safe_to_resend:
        return False
    if isinstance(error, DotoTimeoutError | DotoConnectionLostError):
        return True
    return isinstance(error, DotoHTTPError) and error.status in RETRYABLE_STATUS


def retry_wait(error: BaseException | None) -> float | None:
    """The server's own wait (429 Retry-After), or None to use exponential backoff."""
    return error.retry_after if isinstance(error, DotoRateLimitError) else None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for automatic retries of one request."""

    attempts: int = 5  # including the first
    backoff: float = 1.0  # first wait in seconds; doubles each time
    max_wait: float = 60.0  # cap on one wait, Retry-After included
    total: float = 120.0  # give up once this much time has passed since the first attempt

    def wait_for(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        server_wait = retry_wait(error)
        if server_wait is not None:
            return min(server_wait, self.max_wait)
        return min(self.backoff * 2 ** (attempt - 1), self.max_wait)


# --------------------------------------------------------------------------------------------
# Polling for new messages: cursor, overlap, de-duplication, filters
# --------------------------------------------------------------------------------------------


def _sender_key(sender_type: str | None) -> str | None:
    """Doto's reference spells sender types "Contact", "User", "AgentBot"; Chatwoot's push data
    "contact", "user", "agent_bot". Compared without case and underscores, they are the same."""
    return None if sender_type is None else sender_type.lower().replace("_", "")


@dataclass(frozen=True)
class MessageFilter:
    """Which new messages count. Defaults: incoming, public, any sender, any text."""

    message_types: Sequence[str] = ("incoming",)  # stored as a tuple
    include_private: bool = False
    sender_types: Sequence[str] | None = None  # stored as a tuple; a bare string is one type
    content_pattern: str | None = None

    def __post_init__(self) -> None:
        types = self.message_types
        if (
            isinstance(types, str)
            or not isinstance(types, Iterable)
            or not (types := tuple(types))
            or not all(isinstance(t, str) and t in MESSAGE_TYPES for t in types)
        ):
            raise DotoConfigError(
                f"message_types must be a list drawn from {', '.join(MESSAGE_TYPES)} (at least one), got {self.message_types!r}."
            )
        object.__setattr__(self, "message_types", types)
        if self.sender_types is not None:
            senders = (self.sender_types,) if isinstance(self.sender_types, str) else self.sender_types
            senders = tuple(senders) if isinstance(senders, Iterable) else (None,)
            if not senders or not all(isinstance(s, str) and s for s in senders):
                raise DotoConfigError(
                    f"sender_types must be a list of sender types such as ['Contact'], got {self.sender_types!r}."
                )
            object.__setattr__(self, "sender_types", senders)
        if not isinstance(self.include_private, bool):
            raise DotoConfigError(f"include_private must be True or False, got {self.include_private!r}.")
        if self.content_pattern is not None:
            try:
                re.compile(self.content_pattern)
            except (re.error, TypeError) as err:
                raise DotoConfigError(
                    f"content_pattern {self.content_pattern!r} is not a valid regular expression: {err}"
                ) from None

    def matches(self, message: Message) -> bool:
        if message.message_type not in self.message_types:
            return False
        if message.private and not self.include_private:
            return False
        if self.sender_types is not None and _sender_key(message.sender_type) not in {
            _sender_key(s) for s in self.sender_types
        }:
            return False
        if self.content_pattern is not None:
            return re.search(self.content_pattern, message.content or "") is not None
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_types": list(self.message_types),
            "include_private": self.include_private,
            "sender_types": None if self.sender_types is None else list(self.sender_types),
            "content_pattern": self.content_pattern,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MessageFilter:
        sender_types = data.get("sender_types")
        return cls(
            message_types=tuple(data.get("message_types", ("incoming",))),
            include_private=bool(data.get("include_private", False)),
            sender_types=None if sender_types is None else tuple(sender_types),
            content_pattern=data.get("content_pattern"),
        )


@dataclass
class MessageWatch:
    """State of a wait for new messages, shared by the sensor (all modes) and the trigger.

    New means ``created_at >= start``, not reported before, not deleted, and matching the filter.
    Each poll asks for ``after = position - overlap``; ``seen`` holds the ids inside that overlap
    so nothing is reported twice, and a message that commits late (an older ``created_at`` after a
    newer message was seen) is still inside the window and still found. On a server that reads
    ``after`` as an id (Chatwoot) the same overlap is kept in ids: ``after_id`` is the newest id
    that left the overlap window, so a lower id committed late is still above it. ``to_state()``
    is plain JSON (with the resolved server flavor), so the watch survives reschedules, trigger
    restarts and serialisation without probing the server again.
    """

    start: int
    filter: MessageFilter = field(default_factory=MessageFilter)
    min_messages: int = 1
    overlap: int = DEFAULT_OVERLAP
    position: int | None = None
    seen: dict[int, int] = field(default_factory=dict)  # id -> created_at
    matched: list[Message] = field(default_factory=list)  # found, not yet reported (< min_messages)
    flavor: str | None = None  # the server's flavor once known (doto or chatwoot)
    after_id: int | None = None  # chatwoot: ids at or below this are behind the overlap window

    def __post_init__(self) -> None:
        if (
            isinstance(self.min_messages, bool)
            or not isinstance(self.min_messages, int)
            or self.min_messages < 1
        ):
            raise DotoConfigError(f"min_messages must be a positive integer, got {self.min_messages!r}.")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0:
            raise DotoConfigError(f"overlap must be a non-negative integer of seconds, got {self.overlap!r}.")
        if self.position is None:
            self.position = self.start - 1

    @property
    def poll_after(self) -> int:
        """The ``after`` to ask with: the cursor, less the overlap."""
        assert self.position is not None
        return self.position - self.overlap

    def poll_flow(
        self, account_id: int, conversation_id: int | str, flavor: str | ServerFlavor = "doto"
    ) -> Generator[DotoRequest, DotoResponse, list[Message] | None]:
        """One poll: list from the cursor (paging if needed) and :meth:`feed` the result."""
        conversation_id = to_id(conversation_id, name="conversation_id")
        server = ServerFlavor.of(flavor)
        if server.configured == "auto" and server.detected is None and self.flavor is not None:
            server.detected = self.flavor  # found by an earlier try or process: no new probe
        resolved = yield from server.resolve_flow(account_id, conversation_id)
        if resolved is None:  # auto, and nothing in the conversation yet: nothing new either
            return self.feed([])
        if resolved != self.flavor:
            self.flavor, self.after_id = resolved, None
        if resolved == "chatwoot":
            if self.after_id is None:
                self.after_id = yield from window_start_id_flow(account_id, conversation_id, self.poll_after)
            page = yield from id_paged_flow(account_id, conversation_id, after_id=self.after_id)
        else:
            page = yield from list_messages_flow(
                account_id, conversation_id, after=self.poll_after, flavor=resolved
            )
        return self.feed(page)

    def feed(self, messages: Sequence[Message]) -> list[Message] | None:
        """Take one poll's messages; return the batch of new matches once there are ``min_messages``."""
        assert self.position is not None
        for message in sort_messages(messages):
            if message.id in self.seen:
                continue
            self.seen[message.id] = message.created_at
            if message.created_at >= self.start and not message.is_deleted and self.filter.matches(message):
                self.matched.append(message)
        if messages:
            self.position = max(self.position, max(m.created_at for m in messages))
        horizon = self.position - self.overlap
        if self.flavor == "chatwoot":
            # Ids leave ``seen`` only by moving below ``after_id``, so no re-read id is new again.
            horizon -= ID_ORDER_SLACK
            left = [mid for mid, ts in self.seen.items() if ts < horizon]
            if left:
                self.after_id = max(self.after_id or 0, *left)
        self.seen = {mid: ts for mid, ts in self.seen.items() if ts >= horizon}
        if len(self.matched) >= self.min_messages:
            batch, self.matched = sort_messages(self.matched), []
            return batch
        return None

    def to_state(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "position": self.position,
            "seen": [[mid, ts] for mid, ts in self.seen.items()],
            "matched": [m.to_dict() for m in self.matched],
            "flavor": self.flavor,
            "after_id": self.after_id,
        }

    def restore(self, state: Mapping[str, Any] | None) -> MessageWatch:
        """Continue from ``to_state()`` output taken with the same start point; ignore anything else."""
        if not state or state.get("start") != self.start:
            return self
        self.position = int(state["position"])
        self.seen = {int(mid): int(ts) for mid, ts in state.get("seen", [])}
        self.matched = [Message.from_dict(m) for m in state.get("matched", [])]
        flavor = state.get("flavor")
        self.flavor = flavor if flavor in SERVER_FLAVORS else None
        after_id = state.get("after_id")
        self.after_id = int(after_id) if self.flavor == "chatwoot" and after_id is not None else None
        return self


# --------------------------------------------------------------------------------------------
# Duplicate-safe sending
# --------------------------------------------------------------------------------------------


def delivery_key(
    dag_id: str, task_id: str, run_id: str, map_index: int = -1, conversation_id: int = 0
) -> str:
    """A stable key for "this task instance's message to this conversation" (not secret)."""
    text = f"{dag_id}\x1f{task_id}\x1f{run_id}\x1f{map_index}\x1f{conversation_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def find_delivered(
    messages: Iterable[Message], key: str, content: str, message_type: str, private: bool
) -> Message | None:
    """The message an earlier try already delivered, if any.

    Matched by the delivery key stamped in ``content_attributes``; when the server does not echo
    content attributes back, by identical content, type and privacy (the caller bounds the window).
    """
    candidates = [m for m in messages if not m.is_deleted]
    for message in candidates:
        if message.content_attributes.get(DELIVERY_KEY_ATTRIBUTE) == key:
            return message
    for message in candidates:
        if (
            DELIVERY_KEY_ATTRIBUTE not in message.content_attributes
            and message.content == content
            and message.message_type == message_type
            and message.private == private
        ):
            return message
    return None


def describe_error(error: BaseException) -> str:
    """One line for logs and trigger events: the typed error's text (never carries the token)."""
    if isinstance(error, DotoError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}"


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_OVERLAP",
    "DEFAULT_TIMEOUT",
    "DELIVERY_KEY_ATTRIBUTE",
    "FLAVORS",
    "MAX_CONTENT_LENGTH",
    "MESSAGE_TYPES",
    "DotoRequest",
    "DotoResponse",
    "DotoSettings",
    "Message",
    "MessageFilter",
    "MessageWatch",
    "RetryPolicy",
    "Sender",
    "ServerFlavor",
    "check_connection_flow",
    "delete_message_flow",
    "delivery_key",
    "detect_flavor_flow",
    "find_delivered",
    "headers",
    "is_retryable",
    "list_messages_flow",
    "parse_message",
    "run_flow",
    "send_message_flow",
    "to_id",
    "to_timestamp",
]
