"""The one way to start the local stack: ``python -m airflow_provider_doto.testing.stack``.

Starts :class:`AirflowStack`, prints how to use it, stops it on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_doto.testing.emulator import DEFAULT_TOKEN
from airflow_provider_doto.testing.stack import airflow_stack
from airflow_provider_doto.testing.stack.airflow_stack import AirflowStack
from airflow_provider_doto.testing.stack.processes import StackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stack command's options."""
    parser.add_argument(
        "--home", type=Path, help="AIRFLOW_HOME to create and keep (default: a temp dir, deleted)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        default=os.environ.get("DOTO_STACK_DB", "").lower() == "postgres",
        help="use a throwaway PostgreSQL cluster on loopback (also: DOTO_STACK_DB=postgres)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="api-server / UI port on 127.0.0.1; 0 picks a free one"
    )
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help=f"the emulator's API token (default {DEFAULT_TOKEN})"
    )
    parser.add_argument("--seed", type=int, default=12, help="messages seeded in the demo conversation")
    parser.add_argument(
        "--flavor",
        choices=("doto", "chatwoot"),
        default="doto",
        help="the emulator's server personality: doto (the reference) or chatwoot (its finder rules)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local (LocalExecutor, default) or celery (a Redis broker and Celery workers; implies --postgres)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery workers with --executor celery (default 2)"
    )
    parser.add_argument(
        "--triggerers", type=int, default=1, help="triggerer processes sharing the triggers (default 1)"
    )
    parser.add_argument(
        "--dags",
        type=Path,
        action="append",
        help="DAG file or folder to link into the DAGs folder (repeatable; default: the example DAGs shipped in the package)",
    )


def run(args: argparse.Namespace) -> int:
    """Start the stack, print how to use it, and serve until Ctrl-C / SIGTERM or a component dies."""
    interrupted: list[int] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if not interrupted:  # raise once; later signals must not interrupt the cleanup
            interrupted.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    stack = AirflowStack(
        home=args.home,
        dags=args.dags,
        database="postgres" if args.postgres or args.executor == "celery" else "sqlite",
        executor=args.executor,
        workers=args.workers,
        triggerers=args.triggerers,
        token=args.token,
        flavor=args.flavor,
        seed=args.seed,
        api_port=args.port,
        echo=lambda line: print(line, flush=True),
    )
    try:
        with stack:
            emulator = stack.emulator
            assert emulator is not None
            add_message = (
                f"curl -X POST -H 'api_access_token: {emulator.token}' -H 'Content-Type: application/json' "
                f"""-d '{{"content": "I want a refund", "message_type": "incoming"}}' """
                f"{emulator.messages_url(stack.conversation_id)}"
            )
            print(
                "\n".join(
                    [
                        "",
                        f"Airflow UI:        {stack.ui_url}  (no password: SimpleAuthManager, everyone is admin)",
                        f"REST API token:    curl {stack.base_url}/auth/token",
                        f"AIRFLOW_HOME:      {stack.home}",
                        f"Component logs:    {stack.log_dir}/<component>.log",
                        f"Components:        {', '.join(stack.components)}",
                        f"Doto emulator:     {emulator.base_url}  (connection doto_default, in the metadata DB)",
                        f"Conversation id:   {stack.conversation_id}  (watched by doto_new_message_watcher)",
                        f"Customer message:  {add_message}",
                        "Press Ctrl-C to stop every process.",
                    ]
                ),
                flush=True,
            )
            while True:
                stack.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        print("Stopped every process the stack started.", flush=True)
        return 0
    except (StackError, TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        print("Stopped every process the stack started.", file=sys.stderr, flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_doto.testing.stack",
        description=airflow_stack.__doc__,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
