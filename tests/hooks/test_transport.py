"""The transport tables (hooks/_transport.py): every listed exception of requests and of aiohttp maps
onto the same typed error for the same failure, chained; and TLS failures against real servers on
127.0.0.1 (a self-signed certificate, https to a plain-http server, plain http to a TLS server) are
"never sent" on both hooks, naming the likely cause, with nothing reaching the server."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import requests
import urllib3.exceptions

from airflow_provider_doto import api
from airflow_provider_doto.api._http import DotoRequest
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoTimeoutError,
)
from airflow_provider_doto.hooks import _transport
from airflow_provider_doto.hooks._transport import (
    AIOHTTP_ERRORS,
    HTTP_TO_TLS,
    REQUESTS_ERRORS,
    Exchange,
    map_error,
    map_errors,
)
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator.tls import self_signed_certificate

TOKEN = "tok-SECRET-3f9a7c"
GET = DotoRequest("GET", "/api/v1/accounts/1/conversations/5/messages")
POST = DotoRequest("POST", "/api/v1/accounts/1/conversations/5/messages", json={"content": "hi"})
EXCHANGE = Exchange(GET, "http://127.0.0.1:9", 7.0, proxied=True)  # proxied: never probed here


# ---- the tables: one failure, one typed error, on both transports ----------------------------


def _verify_error() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.verify_message = "self-signed certificate"
    return err


def _with_handshake_frame(exc: BaseException) -> BaseException:
    """``exc`` raised from a function named like ssl's, as a real handshake failure is (the sync
    hook tells a handshake failure from a later one by that frame)."""

    def do_handshake() -> None:
        raise exc

    try:
        do_handshake()
    except BaseException as err:
        return err
    raise AssertionError


def _conn_key() -> Any:
    # Only read by aiohttp's __str__; the mapping never formats transport errors.
    return SimpleNamespace(host="127.0.0.1", port=9, ssl=True, is_ssl=True)


# (failure, requests' exception, aiohttp's exception(s), the typed error, text it must contain)
FAILURES: list[tuple[str, BaseException, list[BaseException], type[DotoError], str]] = [
    (
        "refused",
        requests.ConnectionError(
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]
                "/",
                urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[arg-type]
            )
        ),
        [aiohttp.ClientConnectorError(_conn_key(), ConnectionRefusedError(111, "refused"))],
        DotoConnectError,
        "could not connect to",
    ),
    (
        "connect timeout",
        requests.ConnectTimeout(),
        [aiohttp.ConnectionTimeoutError()],
        DotoConnectError,
        "could not connect within 7 s",
    ),
    (
        "proxy never opened the tunnel",
        requests.exceptions.ProxyError(OSError("Tunnel connection failed: 407")),
        [aiohttp.ClientHttpProxyError(None, (), status=407)],  # type: ignore[arg-type]
        DotoConnectError,
        "could not connect to",
    ),
    (
        "certificate not trusted",
        requests.exceptions.SSLError(urllib3.exceptions.SSLError(_verify_error())),
        [aiohttp.ClientConnectorCertificateError(_conn_key(), _verify_error())],
        DotoConnectError,
        "certificate is not trusted (self-signed certificate)",
    ),
    (
        "https to a plain-http server",
        requests.exceptions.SSLError(
            _with_handshake_frame(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"))
        ),
        [
            aiohttp.ClientConnectorSSLError(_conn_key(), OSError("wrong version number")),
            aiohttp.ServerFingerprintMismatch(b"a", b"b", "127.0.0.1", 9),
        ],
        DotoConnectError,
        "TLS handshake failed",
    ),
    (
        "no answer in time",
        requests.ReadTimeout(),
        [aiohttp.SocketTimeoutError(), aiohttp.ServerTimeoutError(), TimeoutError()],
        DotoTimeoutError,
        "no answer within 7 s",
    ),
    (
        "body stopped coming in",
        requests.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")),  # type: ignore[arg-type]
        [aiohttp.SocketTimeoutError()],
        DotoTimeoutError,
        "no answer within 7 s",
    ),
    (
        "timeout of another kind",
        requests.Timeout(),
        [TimeoutError()],
        DotoTimeoutError,
        "no answer within 7 s",
    ),
    (
        "dropped before an answer",
        requests.ConnectionError(
            urllib3.exceptions.ProtocolError("Connection aborted.", http.client.RemoteDisconnected())
        ),
        [aiohttp.ServerDisconnectedError(), aiohttp.ClientOSError(104, "Connection reset by peer")],
        DotoConnectionLostError,
        "the connection broke before an answer arrived",
    ),
    (
        "TLS failing after the handshake",
        requests.exceptions.SSLError(ssl.SSLError(1, "[SSL: BAD_RECORD_MAC] bad record mac")),
        [aiohttp.ClientOSError(1, "bad record mac")],
        DotoConnectionLostError,
        "the connection broke before an answer arrived",
    ),
    (
        "broken body",
        requests.exceptions.ChunkedEncodingError(),
        [aiohttp.ClientPayloadError("incomplete")],
        DotoConnectionLostError,
        "the connection broke before an answer arrived",
    ),
    (
        "body not decodable",
        requests.exceptions.ContentDecodingError(),
        [aiohttp.ClientPayloadError("Can not decode content-encoding: gzip")],
        DotoConnectionLostError,
        "the connection broke before an answer arrived",
    ),
    (
        "anything else the client raises (catch-all rows)",
        requests.exceptions.RetryError(),
        [aiohttp.ClientResponseError(None, ())],  # type: ignore[arg-type]
        DotoConnectionLostError,
        "the connection broke before an answer arrived (",
    ),
    (
        "header refused by the client",
        requests.exceptions.InvalidHeader(),
        [ValueError("Forbidden control character detected in headers.")],
        DotoConfigError,
        "refused the request before connecting",
    ),
    (
        "header refused by http.client under an older requests (a bare ValueError)",
        ValueError("Invalid header value b'x\\n'"),
        [],
        DotoConfigError,
        "refused the request before connecting",
    ),
    *[
        (
            f"URL refused by the client ({name})",
            getattr(requests.exceptions, name)(),
            [aiohttp.InvalidURL("http://[::1")],
            DotoConfigError,
            "refused the request before connecting",
        )
        for name in ("InvalidURL", "InvalidSchema", "MissingSchema", "InvalidJSONError")
    ],
]


def _first_row(table: tuple[tuple[str, Any], ...], exc: BaseException) -> str:
    for (path, _), (cls, _) in zip(table, _transport._resolved(table), strict=True):
        if isinstance(exc, cls):
            return path
    raise AssertionError(f"no row for {type(exc).__name__}")


@pytest.mark.parametrize(
    ("failure", "sync_exc", "async_excs", "typed", "text"), FAILURES, ids=[f[0] for f in FAILURES]
)
def test_both_tables_put_one_failure_on_one_typed_error(
    failure: str, sync_exc: BaseException, async_excs: list[BaseException], typed: type[DotoError], text: str
) -> None:
    for table, exc in [(REQUESTS_ERRORS, sync_exc), *((AIOHTTP_ERRORS, e) for e in async_excs)]:
        error = map_error(table, EXCHANGE, exc)
        assert type(error) is typed, f"{failure}: {type(exc).__name__} -> {type(error).__name__}"
        assert text in str(error), str(error)
        assert (error.method, error.path) == (GET.method, GET.path)


def test_every_row_of_both_tables_is_exercised() -> None:
    """No row is dead: each is the first match of some failure above."""
    for table, excs in [
        (REQUESTS_ERRORS, [f[1] for f in FAILURES]),
        (AIOHTTP_ERRORS, [e for f in FAILURES for e in f[2]]),
    ]:
        first = {_first_row(table, exc) for exc in excs}
        assert first == {path for path, _ in table}


@pytest.mark.parametrize("table", [REQUESTS_ERRORS, AIOHTTP_ERRORS], ids=["requests", "aiohttp"])
def test_rows_come_subclass_first(table: tuple[tuple[str, Any], ...]) -> None:
    """First match wins: no row is shadowed by an earlier row for one of its bases."""
    classes = [cls for cls, _ in _transport._resolved(table)]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls


def test_mapped_error_is_raised_from_the_transports_exception() -> None:
    exc = requests.ReadTimeout()
    with pytest.raises(DotoTimeoutError) as raised, map_errors(REQUESTS_ERRORS, EXCHANGE):
        raise exc
    assert raised.value.__cause__ is exc
    other = KeyError("not a transport error")
    with pytest.raises(KeyError) as passed, map_errors(REQUESTS_ERRORS, EXCHANGE):
        raise other
    assert passed.value is other


def test_every_mapped_error_keeps_its_cause_unless_its_row_is_hidden() -> None:
    """``from exc`` for every row but the Hidden ones, whose errors are ``from None``."""
    for failure, sync_exc, async_excs, _, _ in FAILURES:
        for table, exc in [(REQUESTS_ERRORS, sync_exc), *((AIOHTTP_ERRORS, e) for e in async_excs)]:
            with pytest.raises(DotoError) as raised, map_errors(table, EXCHANGE):
                raise exc
            hidden = not _transport.keeps_cause(table, exc)
            assert raised.value.__cause__ is (None if hidden else exc), (failure, type(exc).__name__)
            assert raised.value.__suppress_context__  # (``from exc`` suppresses it too)
            assert f"({type(exc).__name__})" in str(raised.value) or not hidden, str(raised.value)


def test_from_none_only_for_the_hidden_rows() -> None:
    """The hooks cut a chain in two places only, both here: the Hidden rows' raise in ``map_errors``
    and an attachment download's transport failure (``map_download_errors``)."""
    hooks = Path(_transport.__file__).parent
    found = {
        path.name: len(re.findall(r"raise .* from None", path.read_text())) for path in hooks.glob("*.py")
    }
    assert found == {
        "__init__.py": 0,
        "_pacing.py": 0,
        "_transport.py": 2,
        "_uploads.py": 0,
        "doto.py": 0,
        "doto_async.py": 0,
    }


def _request_info() -> Any:
    # What aiohttp keeps on a ClientResponseError: the request, its headers (and so the token) included.
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = URL("http://127.0.0.1:9/api/v1/accounts/1/conversations/5/messages")
    headers = CIMultiDictProxy(CIMultiDict({"api_access_token": TOKEN}))
    return aiohttp.RequestInfo(url, "GET", headers, url)


# Exceptions that quote or hold the token, as those of a refused header or a catch-all row can.
QUOTING: list[tuple[tuple[tuple[str, Any], ...], BaseException]] = [
    (
        REQUESTS_ERRORS,
        requests.exceptions.InvalidHeader(
            f"Invalid leading whitespace, reserved character(s), or return character(s) in header value: {TOKEN + chr(10)!r}"
        ),
    ),
    (REQUESTS_ERRORS, requests.exceptions.RetryError(f"api_access_token: {TOKEN}")),
    (REQUESTS_ERRORS, requests.exceptions.StreamConsumedError(f"api_access_token: {TOKEN}")),
    (AIOHTTP_ERRORS, ValueError(f"Invalid header value {TOKEN + chr(10)!r}")),
    (REQUESTS_ERRORS, ValueError(f"Invalid header value {(TOKEN + chr(10)).encode()!r}")),
    (AIOHTTP_ERRORS, aiohttp.ClientResponseError(_request_info(), (), status=400, message=TOKEN)),
    (AIOHTTP_ERRORS, aiohttp.ClientHttpProxyError(_request_info(), (), status=407)),
    (AIOHTTP_ERRORS, aiohttp.ContentTypeError(_request_info(), ())),
]


@pytest.mark.parametrize(
    ("table", "exc"), QUOTING, ids=[f"{type(e).__module__}.{type(e).__name__}" for _, e in QUOTING]
)
def test_an_exception_that_may_quote_a_header_is_not_chained(
    table: tuple[tuple[str, Any], ...], exc: BaseException
) -> None:
    assert TOKEN in str(exc) + repr(exc)  # (each of these does show it)
    with pytest.raises(DotoError) as raised, map_errors(table, EXCHANGE):
        raise exc
    error = raised.value
    assert error.__cause__ is None and error.__suppress_context__
    assert f"({type(exc).__name__})" in str(error)  # only its type is named
    shown = "".join(traceback.format_exception(error))
    assert TOKEN not in shown and TOKEN not in str(error) + repr(error)


# ---- real servers on 127.0.0.1 ---------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    hits: list[str] = field(default_factory=list)  # "METHOD path" of every request it parsed
    cert: Path | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still reading a TLS hello as http must not hold teardown


def _run(httpd: ThreadingHTTPServer) -> Callable[[], None]:
    """Serve in a thread; returns the stop function."""
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)

    return stop


def _serve(tls: tuple[Path, Path] | None) -> Iterator[Server]:
    server = Server("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server.hits.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = b"[]"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:  # a TLS hello read as http is logged as a 400
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme, server.cert = "https", tls[0]
    server.base_url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    stop = _run(httpd)
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Server]:
    """An https server with a self-signed certificate (trusted by nobody unless told)."""
    yield from _serve(self_signed_certificate(tmp_path))


@pytest.fixture
def plain_server() -> Iterator[Server]:
    yield from _serve(None)


def _use(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    conn = {
        "conn_type": "doto",
        "host": base_url,
        "password": TOKEN,
        "extra": {"account_id": 1, "flavor": "doto"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_TLS", json.dumps(conn))
    for name in (
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def _call(client: str, method: str) -> Callable[[], Any]:
    """List (GET) or send (POST) through the hook's public API, two attempts allowed."""
    policy = api.RetryPolicy(attempts=2, backoff=0.01)
    if client == "sync":
        hook = DotoHook("doto_tls", retry_policy=policy)
        return (lambda: hook.list_messages(5)) if method == "GET" else (lambda: hook.send_message(5, "hi"))
    ahook = DotoAsyncHook("doto_tls", retry_policy=policy)
    if method == "GET":
        return lambda: asyncio.run(ahook.list_messages(5))
    return lambda: asyncio.run(ahook.send_message(5, "hi"))


CAUSES = {
    # (the failure, client): what the typed error is raised from
    ("untrusted", "sync"): requests.exceptions.SSLError,
    ("untrusted", "async"): aiohttp.ClientConnectorCertificateError,
    ("https to http", "sync"): requests.exceptions.SSLError,
    ("https to http", "async"): aiohttp.ClientConnectorSSLError,
    ("http to https", "sync"): requests.exceptions.ConnectionError,
    ("http to https", "async"): aiohttp.ClientError,
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize(
    ("failure", "hint"),
    [
        ("untrusted", "certificate is not trusted (self"),
        ("https to http", "not speaking https (it answered in plain http)"),
        ("http to https", HTTP_TO_TLS),
    ],
)
def test_tls_failure_is_never_sent_and_names_the_cause(
    tls_server: Server,
    plain_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    hint: str,
    client: str,
    method: str,
) -> None:
    target, base_url = {
        "untrusted": (tls_server, tls_server.base_url),
        "https to http": (plain_server, plain_server.base_url.replace("http://", "https://")),
        "http to https": (tls_server, tls_server.base_url.replace("https://", "http://")),
    }[failure]
    _use(monkeypatch, base_url)
    with pytest.raises(DotoConnectError) as raised:
        _call(client, method)()
    err = raised.value
    assert not isinstance(err, DotoConnectionLostError | DotoTimeoutError)  # never "may have been committed"
    assert "TLS handshake failed" in str(err) and hint in str(err), str(err)
    assert err.method == method
    assert isinstance(err.__cause__, CAUSES[(failure, client)]), repr(err.__cause__)
    assert TOKEN not in str(err)
    assert target.hits == []  # no request was ever read by the server, POST or not


@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_ca_bundle_makes_the_certificate_trusted_on_both_hooks(
    tls_server: Server, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """REQUESTS_CA_BUNDLE, which the hint names, is what both hooks verify https with."""
    _use(monkeypatch, tls_server.base_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.cert))
    request = DotoRequest("GET", "/ping")
    if client == "sync":
        response = DotoHook("doto_tls")._send_once(request)
    else:
        response = asyncio.run(DotoAsyncHook("doto_tls")._send_once(request))
    assert response.status == 200 and response.body == b"[]"
    assert tls_server.hits == ["GET /ping"]


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_plain_http_server_dropping_the_connection_is_still_connection_lost(
    monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """The TLS probe after a dropped plain-http exchange finds no TLS: the POST may have been committed."""

    class Dropper(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.close_connection = True  # read the request, answer nothing

        def log_message(self, *args: Any) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Dropper)
    stop = _run(httpd)
    try:
        _use(monkeypatch, f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(DotoConnectionLostError) as raised:
            _call(client, "POST")()
        assert HTTP_TO_TLS not in str(raised.value)
        assert raised.value.__cause__ is not None
    finally:
        stop()
