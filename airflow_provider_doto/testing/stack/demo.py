"""The demo: run the ``doto_escalation`` example DAG in real Airflow against a local Doto emulator.

``python -m airflow_provider_doto.testing.stack.demo`` (what ``bash scripts/demo.sh`` runs on a fresh
machine from a clone, after creating ``.venv``):

1. makes a throwaway ``AIRFLOW_HOME`` (SQLite, no example DAGs) and migrates its metadata DB;
2. starts the Doto emulator on 127.0.0.1 with a random throwaway token and seeds a conversation
   with a short support exchange;
3. runs ``airflow dags test doto_escalation`` as a subprocess, with the example DAGs shipped in the
   package (``airflow_provider_doto/example_dags``) as the DAGs folder and
   ``AIRFLOW_CONN_DOTO_DEFAULT`` pointing at the emulator;
   a few seconds after the sensor starts waiting, the customer writes again, asking for a refund;
4. prints the conversation as it now stands, one line per message, private notes marked.

Exits non-zero if the DAG run failed (the tail of Airflow's output is shown then). The token is
never printed, and is masked in anything copied from Airflow's output.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.stack.local_airflow import (
    EXAMPLE_DAGS,
    airflow_settings,
    isolated_environment,
    tail,
)

DAG_ID = "doto_escalation"
CUSTOMER = "Maria Lopez"
AGENT = "Sam Rivera"
BOT = "Doto Bot"
# (minutes ago, message_type, private, sender_type, sender_name, content)
EXCHANGE: tuple[tuple[int, str, bool, str, str, str], ...] = (
    (
        14,
        "incoming",
        False,
        "Contact",
        CUSTOMER,
        "Hi! My order #1042 arrived today, but the blender jar is cracked.",
    ),
    (
        14,
        "outgoing",
        False,
        "AgentBot",
        BOT,
        "Thanks for your message! An agent will be with you in a moment.",
    ),
    (11, "outgoing", False, "User", AGENT, "Sorry about that, Maria! Could you send us a photo of the jar?"),
    (9, "incoming", False, "Contact", CUSTOMER, "Sure, just uploaded it."),
    (7, "outgoing", True, "User", AGENT, "Photo checked: jar broken in transit. Eligible for a replacement."),
    (6, "outgoing", False, "User", AGENT, "Thanks! A replacement jar ships tomorrow, tracking by email."),
)
ESCALATION = "Honestly, this is the second broken jar this year. I'd rather cancel and get a refund."
ROLE = {"Contact": "customer", "User": "agent", "AgentBot": "bot"}
RUN_TIMEOUT = 240.0


def airflow_env(home: Path, dags_folder: Path, connection: str) -> dict[str, str]:
    """The subprocesses' environment: this one without any Airflow settings, plus the demo's."""
    return isolated_environment(
        {**airflow_settings(home, dags_folder), "AIRFLOW_CONN_DOTO_DEFAULT": connection}
    )


def seed(emulator: DotoEmulator) -> int:
    """A conversation holding a short, realistic support exchange that ended a few minutes ago."""
    conversation = emulator.add_conversation()
    now = emulator.clock.now()
    for minutes_ago, message_type, private, sender_type, sender_name, content in EXCHANGE:
        emulator.add_message(
            conversation,
            content,
            message_type=message_type,
            private=private,
            created_at=now - minutes_ago * 60,
            sender_type=sender_type,
            sender_name=sender_name,
        )
    return conversation


def customer_writes_again(
    emulator: DotoEmulator, conversation: int, delay: float, stop: threading.Event
) -> None:
    """Once the sensor has polled (it is waiting), wait ``delay`` seconds and post the customer's message."""
    path = f"/conversations/{conversation}/messages"
    while not stop.is_set():
        if any(r.method == "GET" and r.path.endswith(path) for r in emulator.requests):
            break
        stop.wait(0.1)
    if stop.wait(delay):
        return
    emulator.add_message(conversation, ESCALATION, sender_type="Contact", sender_name=CUSTOMER)
    print(f"      ... {CUSTOMER} writes: {ESCALATION!r}", flush=True)


def format_conversation(messages: Sequence[dict[str, Any]]) -> list[str]:
    """One line per message (continuation lines indented): time, who, private marker, content."""
    rows = []
    for message in messages:
        sender = message.get("sender") or {}
        sender_type = sender.get("type")
        who = f"{sender.get('name')} ({ROLE.get(sender_type, sender_type)})" if sender_type else "(system)"
        when = time.strftime("%H:%M:%S", time.localtime(message["created_at"]))
        marker = "[private note] " if message.get("private") else ""
        if (message.get("content_attributes") or {}).get("deleted"):
            marker += "[deleted] "
        rows.append((when, who, marker + (message.get("content") or "")))
    width = max((len(who) for _, who, _ in rows), default=0)
    lines = []
    for when, who, text in rows:
        first, *rest = text.splitlines() or [""]
        lines.append(f"  {when}  {who:<{width}}  {first}".rstrip())
        lines.extend(f"  {'':8}  {'':<{width}}  {line}".rstrip() for line in rest)
    return lines


def _run(command: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    with log.open("ab") as out:
        try:
            return subprocess.run(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n[demo] gave up after {timeout:.0f} s\n".encode())
            return 124


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=EXAMPLE_DAGS,
        help=f"where {DAG_ID}.py is (default: the example DAGs shipped in the package, %(default)s)",
    )
    parser.add_argument("--delay", type=float, default=3.0, help="seconds before the customer writes again")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME and its logs")
    parser.add_argument(
        "--flavor",
        choices=("doto", "chatwoot"),
        default="doto",
        help="the emulator's server personality (the connection stays on auto and finds it out)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo once (see the module docstring); 0 if the DAG run succeeded."""
    if not (args.dags_folder / f"{DAG_ID}.py").is_file():
        print(f"error: {args.dags_folder}/{DAG_ID}.py not found: pass --dags-folder", file=sys.stderr)
        return 2

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="doto-demo-airflow-home-"))
    log = home / "airflow-output.log"
    token = secrets.token_urlsafe(24)  # throwaway: valid only for this emulator, never printed
    ok = False
    print(f"Doto demo: the {DAG_ID} example DAG in real Airflow, against a local Doto emulator")
    print(f"  AIRFLOW_HOME={home} (temporary), Airflow output in {log.name}")
    try:
        with DotoEmulator(token=token, flavor=args.flavor) as emulator:
            env = airflow_env(home, args.dags_folder.resolve(), emulator.connection_json())
            print("  [1/4] airflow db migrate ...", end=" ", flush=True)
            step = time.monotonic()
            if _run([sys.executable, "-m", "airflow", "db", "migrate"], env, log, RUN_TIMEOUT) != 0:
                print("failed\n" + tail(log, secret=token))
                return 1
            print(f"done ({time.monotonic() - step:.1f} s)")

            conversation = seed(emulator)
            print(f"  [2/4] Doto emulator at {emulator.base_url}: conversation {conversation} seeded")
            for line in format_conversation(emulator.messages(conversation)):
                print(("    " + line).rstrip())

            conf = json.dumps({"conversation_id": conversation, "poke_interval": 1})
            print(f"  [3/4] airflow dags test {DAG_ID} -c '{conf}'")
            print(
                f"      (the sensor waits for the customer; they write again {args.delay:g} s into the wait)"
            )
            stop = threading.Event()
            writer = threading.Thread(
                target=customer_writes_again, args=(emulator, conversation, args.delay, stop), daemon=True
            )
            writer.start()
            step = time.monotonic()
            command = [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", conf]
            code = _run(command, env, log, RUN_TIMEOUT)
            stop.set()
            writer.join(timeout=5)
            outcome = "succeeded" if code == 0 else f"FAILED (exit code {code})"
            print(f"      DAG run {outcome} in {time.monotonic() - step:.1f} s")

            print(f"  [4/4] Conversation {conversation} as it now stands:")
            for line in format_conversation(emulator.messages(conversation)):
                print(("    " + line).rstrip())
            if code != 0:
                print("\nLast lines of Airflow's output:\n" + tail(log, secret=token))
                return 1
            ok = True
            print(f"\nDone in {time.monotonic() - started:.1f} s.")
            return 0
    finally:
        if ok and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"(kept {home})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_doto.testing.stack.demo", description=__doc__
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
