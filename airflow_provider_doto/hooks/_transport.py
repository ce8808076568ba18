"""Each transport's exceptions onto the provider's typed errors: one ordered table per transport.

Every row names a failure by what it means for the request:

* never sent (:class:`DotoConnectError`): the connection never opened, a proxy never opened the
  tunnel, or TLS failed before a byte of the request went out (an untrusted certificate, https
  spoken to a plain-http server, plain http spoken to a TLS server). Safe to resend, even a POST.
* never built (:class:`DotoConfigError`): the client refused the URL or a header before connecting.
* maybe committed (:class:`DotoTimeoutError`, :class:`DotoConnectionLostError`): the request may
  have reached Doto, so a POST is never blindly resent.

The same failure lands on the same error with requests and with aiohttp, and the mapped error is
raised ``from`` the transport's own exception (httpx's ``map_exceptions`` is the model), except
where that exception may quote a request header, and so the token: a refused header, a catch-all
row (whatever it catches may carry the request), aiohttp's errors that hold the request's headers.
Those rows' constructors are wrapped in :class:`Hidden`: their error is raised ``from None`` and
names the exception's type only. Rows are ``(exception class path, constructor)``, first match
wins, so a subclass comes before its base; the classes are named, not imported, so requests and
aiohttp still load only when a hook sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from airflow_provider_doto.api._attachments import Hop, transport_failure
from airflow_provider_doto.api._http import (
    DotoRequest,
    connect_error,
    connection_lost_error,
    timeout_error,
    tls_error,
)
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
)


@dataclass(frozen=True)
class Exchange:
    """What a constructor needs to describe a failed exchange (never the token)."""

    request: DotoRequest
    base_url: str
    timeout: float
    proxied: bool = False  # a proxy sits in between: the server cannot be probed directly


Constructor = Callable[[Exchange, BaseException], DotoError]


@dataclass(frozen=True)
class Hidden:
    """A row whose transport exception may quote a request header (the token is one): the typed
    error names only the exception's type and is raised ``from None``, so neither the exception's
    text nor its attributes (aiohttp keeps the request's headers) reach a traceback or a log."""

    make: Constructor

    def __call__(self, x: Exchange, exc: BaseException) -> DotoError:
        return self.make(x, exc)


# ---- constructors ----------------------------------------------------------------------------


def _never_sent(x: Exchange, exc: BaseException) -> DotoError:
    return connect_error(x.request, x.base_url)


def _proxy_refused(x: Exchange, exc: BaseException) -> DotoError:
    return DotoConnectError(
        f"Doto {x.request.describe()}: could not connect to {x.base_url} through the proxy "
        f"({type(exc).__name__})",
        method=x.request.method,
        path=x.request.path,
    )


def _connect_timeout(x: Exchange, exc: BaseException) -> DotoError:
    return connect_error(x.request, x.base_url, x.timeout)


def _no_answer(x: Exchange, exc: BaseException) -> DotoError:
    return timeout_error(x.request, x.timeout)


def _lost(x: Exchange, exc: BaseException) -> DotoError:
    return connection_lost_error(x.request, exc)


def _refused(x: Exchange, exc: BaseException, check: str) -> DotoError:
    # The exception's text is left out: it may quote a header, and the token is one.
    return DotoConfigError(
        f"Doto {x.request.describe()}: the HTTP client refused the request before connecting "
        f"({type(exc).__name__}); check the connection's {check}",
        method=x.request.method,
        path=x.request.path,
    )


def _not_built(x: Exchange, exc: BaseException) -> DotoError:
    return _refused(x, exc, "Base URL")


def _bad_header(x: Exchange, exc: BaseException) -> DotoError:
    return _refused(x, exc, "API Token")  # the one header a connection puts into a request


def _bad_url_or_header(x: Exchange, exc: BaseException) -> DotoError:
    return _refused(x, exc, "Base URL and API Token")


def tls_failure(x: Exchange, exc: BaseException, hint: str | None = None) -> DotoError:
    """:func:`tls_error` (never sent), naming the likely cause this failure points at."""
    return tls_error(x.request, x.base_url, exc, hint=hint or tls_hint(exc))


def _tls(x: Exchange, exc: BaseException) -> DotoError:
    return tls_failure(x, exc)


def _requests_ssl(x: Exchange, exc: BaseException) -> DotoError:
    # requests raises SSLError for a TLS failure at any point; only one in the handshake (or the
    # certificate check right after it) is before the request went out.
    return tls_failure(x, exc) if _in_handshake(exc) else connection_lost_error(x.request, exc)


def _requests_connection(x: Exchange, exc: BaseException) -> DotoError:
    import urllib3.exceptions

    if _find(exc, urllib3.exceptions.NewConnectionError, ConnectionRefusedError):
        return connect_error(x.request, x.base_url)
    if _find(exc, urllib3.exceptions.ReadTimeoutError):  # the body stopped coming in (requests wraps it)
        return timeout_error(x.request, x.timeout)
    return connection_lost_error(x.request, exc)


# ---- the tables ------------------------------------------------------------------------------

REQUESTS_ERRORS: tuple[tuple[str, Constructor], ...] = (
    ("requests.exceptions.SSLError", _requests_ssl),  # handshake: never sent; later: lost
    ("requests.exceptions.ProxyError", _never_sent),  # the proxy (or its tunnel) never opened
    ("requests.exceptions.ConnectTimeout", _connect_timeout),
    ("requests.exceptions.ReadTimeout", _no_answer),
    ("requests.exceptions.ConnectionError", _requests_connection),  # refused/unreachable, or dropped
    ("requests.exceptions.Timeout", _no_answer),
    ("requests.exceptions.InvalidURL", _not_built),
    ("requests.exceptions.InvalidSchema", _not_built),
    ("requests.exceptions.MissingSchema", _not_built),
    ("requests.exceptions.InvalidHeader", Hidden(_bad_header)),  # its text quotes the header's value
    ("requests.exceptions.InvalidJSONError", _not_built),
    ("requests.exceptions.ChunkedEncodingError", _lost),  # a broken body
    ("requests.exceptions.ContentDecodingError", _lost),
    ("requests.exceptions.RequestException", Hidden(_lost)),  # anything else
    # Older requests let http.client refuse a header it cannot send, with a bare ValueError quoting it.
    ("builtins.ValueError", Hidden(_bad_url_or_header)),
)

AIOHTTP_ERRORS: tuple[tuple[str, Constructor], ...] = (
    ("aiohttp.ServerFingerprintMismatch", _tls),  # checked right after the handshake
    ("aiohttp.ClientSSLError", _tls),  # ClientConnectorSSLError, ClientConnectorCertificateError
    ("aiohttp.ConnectionTimeoutError", _connect_timeout),  # before ServerTimeoutError, its base
    ("aiohttp.ClientConnectorError", _never_sent),  # refused, DNS, proxy unreachable
    # The proxy refused the tunnel; the error holds the CONNECT request's headers (proxy credentials).
    ("aiohttp.ClientHttpProxyError", Hidden(_proxy_refused)),
    ("aiohttp.ServerTimeoutError", _no_answer),  # SocketTimeoutError: a read took too long
    ("builtins.TimeoutError", _no_answer),  # asyncio.TimeoutError since Python 3.11
    ("aiohttp.InvalidURL", _not_built),
    ("aiohttp.ClientConnectionError", _lost),  # ServerDisconnectedError, ClientOSError, ...
    ("aiohttp.ClientPayloadError", _lost),  # a broken body
    ("aiohttp.ClientError", Hidden(_lost)),  # anything else (ClientResponseError holds the headers)
    # aiohttp refuses a header it cannot send (a control character) with a bare ValueError.
    ("builtins.ValueError", Hidden(_bad_url_or_header)),
)


@cache
def _resolved(
    table: tuple[tuple[str, Constructor], ...],
) -> tuple[tuple[type[BaseException], Constructor], ...]:
    rows = []
    for path, make in table:
        module, _, name = path.rpartition(".")
        rows.append((getattr(importlib.import_module(module), name), make))
    return tuple(rows)


def _row(table: tuple[tuple[str, Constructor], ...], exc: BaseException) -> Constructor | None:
    """The constructor of the first row ``exc`` is an instance of, or None (not a transport error)."""
    for cls, make in _resolved(table):
        if isinstance(exc, cls):
            return make
    return None


def map_error(
    table: tuple[tuple[str, Constructor], ...], x: Exchange, exc: BaseException
) -> DotoError | None:
    """The typed error of the first row ``exc`` is an instance of, or None (not a transport error)."""
    make = _row(table, exc)
    return None if make is None else make(x, exc)


def keeps_cause(table: tuple[tuple[str, Constructor], ...], exc: BaseException) -> bool:
    """Whether the typed error for ``exc`` is raised ``from`` it (not a :class:`Hidden` row)."""
    return not isinstance(_row(table, exc), Hidden)


@contextlib.contextmanager
def map_errors(
    table: tuple[tuple[str, Constructor], ...], x: Exchange, *, probe_tls: bool = True
) -> Iterator[None]:
    """Raise the typed error for a transport exception, ``from`` it (the sync hook's exchange), or
    ``from None`` for a :class:`Hidden` row.

    A plain-http exchange dropped unanswered is then probed: if the port speaks TLS, the error says
    so (``probe_tls=False`` leaves that to the caller, as :func:`amap_errors` does).
    """
    try:
        yield
    except DotoError:
        raise
    except Exception as exc:
        make = _row(table, exc)
        if make is None:
            raise
        error = make(x, exc)
        if isinstance(make, Hidden):
            raise error from None  # the cause may quote a header (the token): only its type is named
        if probe_tls and _worth_probing(x, error) and speaks_tls(x.base_url, x.timeout):
            error = tls_failure(x, exc, HTTP_TO_TLS)
        raise error from exc


@contextlib.contextmanager
def map_download_errors(hop: Hop, *transport_errors: type[BaseException]) -> Iterator[None]:
    """An attachment download's transport failure (``transport_errors``: requests' or aiohttp's) as
    a :class:`DotoAttachmentError` naming the exception's type only, raised ``from None`` like a
    :class:`Hidden` row: those exceptions hold the request, its headers and so the token."""
    try:
        yield
    except DotoError:
        raise
    except transport_errors as exc:
        raise transport_failure(hop, exc) from None


@contextlib.asynccontextmanager
async def amap_errors(table: tuple[tuple[str, Constructor], ...], x: Exchange) -> AsyncIterator[None]:
    """:func:`map_errors` for the async hook: the same mapping, the TLS probe run in a thread."""
    try:
        with map_errors(table, x, probe_tls=False):
            yield
    except DotoConnectionLostError as error:
        cause = error.__cause__
        if cause is None or not _worth_probing(x, error):
            raise
        if await asyncio.to_thread(speaks_tls, x.base_url, x.timeout):
            raise tls_failure(x, cause, HTTP_TO_TLS) from cause
        raise


# ---- TLS: which side of the handshake, and the likely cause ----------------------------------

HTTP_TO_TLS = "the server speaks https at that address; write https:// in the Base URL"
# OpenSSL's reasons when the peer answered a ClientHello with something that is not TLS.
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "HTTP_REQUEST",
    }
)


def tls_hint(exc: BaseException) -> str | None:
    """The likely cause of a TLS failure, in words a connection's owner can act on (None: unknown)."""
    if _find(exc, ssl.SSLCertVerificationError) is not None:
        verify = _find(exc, ssl.SSLCertVerificationError, having="verify_message")
        why = getattr(verify, "verify_message", None) or "the certificate failed verification"
        return (
            f"the server's certificate is not trusted ({why}); give it one from a trusted CA, or "
            "point REQUESTS_CA_BUNDLE at a CA bundle that includes its CA (both hooks read it)"
        )
    tls = _find(exc, ssl.SSLError, having="reason")
    if tls is not None and getattr(tls, "reason", None) in _NOT_TLS_REASONS:
        return "the server is not speaking https (it answered in plain http); check the Base URL's scheme and port"
    return None


def _in_handshake(exc: BaseException) -> bool:
    """Whether a TLS failure happened before the request went out: a certificate check, or an error
    raised inside the handshake (its traceback passes through ``do_handshake``)."""
    if _find(exc, ssl.SSLCertVerificationError) is not None:
        return True
    return any(
        isinstance(tls, ssl.SSLError)
        and any(frame.f_code.co_name == "do_handshake" for frame, _ in traceback.walk_tb(tls.__traceback__))
        for tls in _chain(exc)
    )


def _worth_probing(x: Exchange, error: DotoError) -> bool:
    """A plain-http exchange dropped without an answer, straight to the server: was it a TLS port?"""
    return (
        isinstance(error, DotoConnectionLostError) and not x.proxied and urlsplit(x.base_url).scheme == "http"
    )


def speaks_tls(base_url: str, timeout: float) -> bool:
    """Whether the server of an ``http://`` Base URL answers a TLS handshake on that port.

    If it does, it could not have read the plain-http request that just failed (nothing reached
    Doto), and the Base URL wants ``https://``. Costs one connection, only after such a failure.
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "", url.port or 80
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the question is whether it speaks TLS, not whom to trust
    try:
        with (
            socket.create_connection((host, port), timeout=min(timeout, 5.0)) as sock,
            context.wrap_socket(sock, server_hostname=host or None),
        ):
            return True
    except ssl.SSLError as err:
        return "ALERT" in (err.reason or "")  # it answered in TLS, refusing this client
    except OSError:
        return False


def ca_bundle() -> str | None:
    """The CA bundle both hooks verify https with: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``,
    else None (requests then uses certifi, aiohttp the system's store)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def ssl_context(bundle: str | None) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` for a CA bundle file or directory; True (aiohttp's default) for none."""
    if bundle is None:
        return True
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, and the errors requests/urllib3/aiohttp keep in
    ``reason``, ``args``, ``certificate_error`` or ``os_error``; outermost first."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend((current.__cause__, current.__context__, *current.args))
        todo.extend(getattr(current, name, None) for name in ("reason", "certificate_error", "os_error"))


def _find(exc: BaseException, *types: type[BaseException], having: str | None = None) -> BaseException | None:
    """The first exception of ``types`` in ``exc``'s chain (with a value for ``having``, if named:
    aiohttp's errors subclass ssl's without carrying ssl's details)."""
    for current in _chain(exc):
        if isinstance(current, types) and (having is None or getattr(current, having, None)):
            return current
    return None
