"""Connection settings: what a ``doto`` connection resolves to, and the checks on its Base URL.

Rule: fields in, checked values out, every problem a :class:`DotoConfigError` naming the connection
and the field. No I/O: the hooks read the connection (sync or async) and hand its fields here, and no
name is looked up (whether a host is loopback is decided from its text alone).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_doto.api._flavors import FLAVORS, ServerReading
from airflow_provider_doto.api._pacing import (
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    DEFAULT_RATE_LIMIT_WAIT,
    DEFAULT_RATE_LIMIT_WINDOW,
    PaceSettings,
)
from airflow_provider_doto.api._uploads import DEFAULT_MAX_UPLOAD_MB, MEGABYTE, max_upload_bytes
from airflow_provider_doto.exceptions import DotoConfigError

DEFAULT_BASE_URL = "https://app.usendoto.com"
DEFAULT_TIMEOUT = 30.0
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass(frozen=True)
class DotoSettings:
    """What a ``doto`` connection resolves to. The token is kept out of ``repr``."""

    base_url: str
    token: str = field(repr=False)
    account_id: int
    timeout: float = DEFAULT_TIMEOUT
    conn_id: str = "doto_default"
    flavor: str = "auto"
    pace: PaceSettings = field(default_factory=PaceSettings)
    # The largest attachment the server takes, in bytes (extra ``max_upload_mb``, default 40 MB).
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * MEGABYTE

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
        check_token(conn_id, password)
        account = extra.get("account_id")
        if account in (None, ""):
            raise DotoConfigError(
                f"Doto connection {conn_id!r} has no Account ID (extra field 'account_id')."
            )
        try:
            account_id = int(str(account).strip())
        except ValueError as err:
            raise DotoConfigError(
                f"Doto connection {conn_id!r}: Account ID must be an integer, got {account!r}."
            ) from err
        timeout = extra.get("timeout")
        try:
            timeout = DEFAULT_TIMEOUT if timeout in (None, "") else float(timeout)
        except (TypeError, ValueError) as err:
            raise DotoConfigError(
                f"Doto connection {conn_id!r}: timeout must be a number of seconds, got {timeout!r}."
            ) from err
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
            pace=pace_settings(conn_id, extra),
            max_upload_bytes=max_upload_bytes(
                _number(conn_id, extra, "max_upload_mb", DEFAULT_MAX_UPLOAD_MB, 1)
            ),
        )

    @classmethod
    def from_connection(cls, conn_id: str, conn: Any, extra: Mapping[str, Any] | None) -> DotoSettings:
        """From an Airflow ``Connection`` and its decoded extra (read sync or async by the caller)."""
        return cls.from_connection_fields(
            conn_id, host=conn.host, password=conn.password, extra=extra, schema=conn.schema, port=conn.port
        )

    @property
    def reading(self) -> ServerReading:
        """How the connection says its server reads ``before``/``after`` (``auto``: not known yet)."""
        return ServerReading(self.flavor)

    def conversation_url(self, conversation_id: int) -> str:
        """Where a person sees the conversation in Doto's web app."""
        return f"{self.base_url}/app/accounts/{self.account_id}/conversations/{conversation_id}"


def pace_settings(conn_id: str, extra: Mapping[str, Any]) -> PaceSettings:
    """The pacing extras: ``max_requests_per_minute`` (0 turns pacing off), ``rate_limit_wait_seconds``
    (how long a throttle may last before the waiting requests fail) and ``rate_limit_window_seconds``
    (the server's fixed window, which a 429 without Retry-After waits out)."""
    per_minute = _number(conn_id, extra, "max_requests_per_minute", DEFAULT_MAX_REQUESTS_PER_MINUTE, 0)
    if per_minute != int(per_minute):
        raise DotoConfigError(
            f"Doto connection {conn_id!r}: max_requests_per_minute must be a whole number, got {per_minute:g}."
        )
    wait = _number(conn_id, extra, "rate_limit_wait_seconds", DEFAULT_RATE_LIMIT_WAIT, 0)
    window = _number(conn_id, extra, "rate_limit_window_seconds", DEFAULT_RATE_LIMIT_WINDOW, 1)
    return PaceSettings(per_minute=int(per_minute), wait=wait, window=window)


def _number(conn_id: str, extra: Mapping[str, Any], name: str, default: float, minimum: float) -> float:
    value = extra.get(name)
    if value in (None, ""):
        return float(default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number >= minimum or math.isinf(number) or isinstance(value, bool):
        raise DotoConfigError(
            f"Doto connection {conn_id!r}: {name} must be a number of at least {minimum:g}, got {value!r}."
        )
    return number


def check_token(conn_id: str, token: str) -> None:
    """Refuse a token no header can carry as is: whitespace (a secret file's trailing newline, a
    pasted space), a control character or anything outside printable ASCII. Refused, not stripped:
    the connection is fixed once instead of every reader guessing. The error says what and where,
    never the token (nor its length)."""
    bad = [i for i, c in enumerate(token) if not "!" <= c <= "~"]
    if not bad:
        return
    char = token[bad[0]]
    what = (
        "a line break"
        if char in "\r\n"
        else "whitespace"
        if char.isspace()
        else "a control character"
        if not char.isprintable()
        else "a non-ASCII character"
    )
    n = len(bad)
    where = (
        "at its start"
        if bad == list(range(n))
        else "at its end"
        if bad == list(range(len(token) - n, len(token)))
        else "inside it"
    )
    raise DotoConfigError(
        f"Doto connection {conn_id!r}: the API Token (the connection's password) has {what} {where}; "
        "an API token is printable ASCII without spaces (a trailing newline from a secret file or a "
        "pasted space?). Fix the token in the connection; it is refused, not stripped."
    )


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
