"""Command line: ``python -m airflow_provider_doto.testing.emulator`` serves the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_doto.testing.emulator.account import TEMPLATE_CHANNELS
from airflow_provider_doto.testing.emulator.flavors import FLAVORS
from airflow_provider_doto.testing.emulator.server import DEFAULT_TOKEN, DotoEmulator
from airflow_provider_doto.testing.emulator.throttle import ThrottleRule


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_doto.testing.emulator",
        description="Serve the Doto Messages API emulator until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the api_access_token clients must send")
    parser.add_argument("--account", type=int, default=1, help="account id (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="messages to seed in each conversation")
    parser.add_argument(
        "--flavor", choices=FLAVORS, default="doto", help="server personality: doto (default) or chatwoot"
    )
    parser.add_argument(
        "--conversations",
        type=int,
        default=1,
        help="conversations to create, spread over inboxes, statuses and labels, --seed lines each (default 1)",
    )
    parser.add_argument(
        "--no-updated-within",
        action="store_true",
        help="play a server older than February 2024: the conversation list ignores updated_within",
    )
    parser.add_argument(
        "--window-failure-delay",
        type=int,
        default=None,
        metavar="SECONDS",
        help="seconds after the 200 at which free text outside a WhatsApp window fails (default 3)",
    )
    parser.add_argument(
        "--delivery-receipts",
        type=_receipts,
        default=None,
        metavar="DELIVERED,READ",
        help="seconds after the 200 at which messages inside a messaging channel's window are delivered, "
        "then read (default: they stay sent)",
    )
    parser.add_argument(
        "--template",
        dest="templates",
        action="append",
        type=_template,
        default=[],
        metavar="NAME[:LANGUAGE]",
        help="approve a template in every WhatsApp inbox (repeatable; without a language: in any); "
        "an unknown template fails like free text outside the window, with Meta's error",
    )
    parser.add_argument(
        "--first-message-id", type=int, default=1, help="first message id (e.g. 2000000000, above timestamps)"
    )
    parser.add_argument(
        "--throttle",
        type=ThrottleRule.parse,
        metavar="LIMIT/PERIOD",
        help="throttle like Chatwoot's rack-attack: LIMIT requests per client per PERIOD seconds, windows "
        "aligned to the epoch, then 429 text/plain 'Retry later' without Retry-After (Chatwoot: 3000/60)",
    )
    parser.add_argument(
        "--allow-non-loopback", action="store_true", help="allow binding beyond loopback (unsafe)"
    )
    return parser


def _receipts(value: str) -> tuple[int, int]:
    """``--delivery-receipts 2,30``: delivered after 2 s, read after 30 s."""
    delivered, _, read = value.partition(",")
    try:
        return int(delivered), int(read)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DELIVERED,READ seconds (e.g. 2,30), got {value!r}"
        ) from None


def _template(value: str) -> tuple[str, str | None]:
    """``--template order_update:en_US``: that name in that language; ``--template order_update``: any."""
    name, _, language = value.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME:LANGUAGE, got {value!r}")
    return name, language or None


def serve(
    emulator: DotoEmulator,
    seed: int,
    conversations: int = 1,
    templates: Sequence[tuple[str, str | None]] = (),
) -> int:
    """Serve until SIGINT or SIGTERM, after printing how to reach the emulator."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with emulator:  # already started by main(); stops on the way out
        ids = emulator.build_account(conversations, seed)
        for inbox in emulator.inboxes():
            if inbox.channel in TEMPLATE_CHANNELS:
                for name, language in templates:
                    emulator.add_template(inbox.inbox_id, name, language)
        print(f"base_url={emulator.base_url}")
        print(f"account_id={emulator.account_id}")
        print(f"flavor={emulator.flavor}")
        if emulator.throttle is not None:
            print(f"throttle={emulator.throttle[0]}/{emulator.throttle[1]:g}")
        print(f"conversation_id={ids[0]}")
        print(f"conversation_ids={','.join(str(i) for i in ids)}")
        print(f"AIRFLOW_CONN_DOTO_DEFAULT={shlex.quote(emulator.connection_json())}")
        print("Doto emulator running; press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    print("Doto emulator stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        emulator = DotoEmulator(
            token=args.token,
            account_id=args.account,
            host=args.host,
            port=args.port,
            allow_non_loopback=args.allow_non_loopback,
            flavor=args.flavor,
            first_message_id=args.first_message_id,
        )
        if args.conversations < 1:
            raise ValueError("--conversations must be at least 1")
        emulator.supports_updated_within = not args.no_updated_within
        if args.window_failure_delay is not None:
            emulator.window_failure_delay = args.window_failure_delay
        emulator.delivery_receipts = args.delivery_receipts
        if args.throttle is not None:
            emulator.set_throttle(args.throttle.limit, args.throttle.period)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        emulator.start()
    except OSError as exc:
        parser.exit(1, f"cannot listen on {args.host}:{args.port}: {exc}\n")
    return serve(emulator, args.seed, args.conversations, args.templates)


if __name__ == "__main__":
    raise SystemExit(main())
