"""The throwaway certificate: made for 127.0.0.1, trusted through its own file, a handshake succeeds."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from airflow_provider_doto.testing.emulator.tls import self_signed_certificate


def test_a_client_trusting_the_file_completes_a_handshake_with_127_0_0_1(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path / "tls")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certfile, keyfile)
    client_context = ssl.create_default_context(cafile=str(certfile))  # verifies the name too

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        server.join(10)


def test_each_call_makes_a_new_key_and_certificate(tmp_path: Path) -> None:
    certfile, _ = self_signed_certificate(tmp_path)
    other, _ = self_signed_certificate(tmp_path / "other")
    assert certfile.read_bytes() != other.read_bytes()
