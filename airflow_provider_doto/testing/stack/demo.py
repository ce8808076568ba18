"""The demo: run the ``doto_escalation`` example DAG in real Airflow against a local Doto emulator,
then the account-wide ``doto_escalation_watcher``.

``python -m airflow_provider_doto.testing.stack.demo`` (what ``bash scripts/demo.sh`` runs on a fresh
machine from a clone, after creating ``.venv``):

1. makes a throwaway ``AIRFLOW_HOME`` (SQLite, no example DAGs) and migrates its metadata DB;
2. starts the Doto emulator on 127.0.0.1 with a random throwaway token and seeds a conversation
   with a short support exchange;
3. runs ``airflow dags test doto_escalation`` as a subprocess, with the example DAGs shipped in the
   package (``airflow_provider_doto/example_dags``) as the DAGs folder and
   ``AIRFLOW_CONN_DOTO_DEFAULT`` pointing at the emulator;
   a few seconds after the sensor starts waiting, the customer writes again, asking for a refund;
4. prints the conversation as it now stands, one line per message, private notes marked;
5. seeds three more customers' conversations and runs ``doto_escalation_watcher``'s AssetWatcher
   trigger (no conversation id: the whole account) in a subprocess, as Airflow's triggerer runs it,
   until a customer writes "refund" in one of the four conversations: its event names that one;
6. runs ``airflow dags test doto_escalation_watcher`` with that event's payload as the config (a
   replay by hand, the DAG's documented way without a scheduler), and prints that conversation.

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
ACCOUNT_DAG_ID = "doto_escalation_watcher"
MODULE = "airflow_provider_doto.testing.stack.demo"  # also when run as __main__
# Other customers' conversations for the account watcher: (name, what they wrote minutes ago).
OTHER_CUSTOMERS = (
    ("Ken Ito", "Hello! Is the store open on Sunday?"),
    ("Ada Obi", "All sorted, thanks a lot!"),
    ("Lee Park", "Can I still change my delivery address?"),
)
ACCOUNT_WRITER = "Ken Ito"
ACCOUNT_ESCALATION = "The parcel never arrived and nobody answers. I want a refund, please."
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
            print("  [1/6] airflow db migrate ...", end=" ", flush=True)
            step = time.monotonic()
            if _run([sys.executable, "-m", "airflow", "db", "migrate"], env, log, RUN_TIMEOUT) != 0:
                print("failed\n" + tail(log, secret=token))
                return 1
            print(f"done ({time.monotonic() - step:.1f} s)")

            conversation = seed(emulator)
            print(f"  [2/6] Doto emulator at {emulator.base_url}: conversation {conversation} seeded")
            for line in format_conversation(emulator.messages(conversation)):
                print(("    " + line).rstrip())

            conf = json.dumps({"conversation_id": conversation, "poke_interval": 1})
            print(f"  [3/6] airflow dags test {DAG_ID} -c '{conf}'")
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

            print(f"  [4/6] Conversation {conversation} as it now stands:")
            for line in format_conversation(emulator.messages(conversation)):
                print(("    " + line).rstrip())
            if code != 0:
                print("\nLast lines of Airflow's output:\n" + tail(log, secret=token))
                return 1
            if account_watcher(args, emulator, env, log, token) != 0:
                return 1
            ok = True
            print(f"\nDone in {time.monotonic() - started:.1f} s.")
            return 0
    finally:
        if ok and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"(kept {home})")


def account_watcher(
    args: argparse.Namespace, emulator: DotoEmulator, env: dict[str, str], log: Path, token: str
) -> int:
    """Steps 5 and 6: the account watcher's trigger finds the customer among several conversations,
    and the watcher DAG answers in that conversation; 0 if its run succeeded."""
    others = {}
    now = emulator.clock.now()
    for name, text in OTHER_CUSTOMERS:
        cid = emulator.add_conversation(contact=name)
        emulator.add_message(cid, text, created_at=now - 300, sender_type="Contact", sender_name=name)
        others[name] = cid
    print(
        f"  [5/6] {ACCOUNT_DAG_ID}: its AssetWatcher trigger (no conversation: every one of the account's "
        f"{1 + len(others)} conversations), run here as Airflow's triggerer runs it"
    )
    dag_file = args.dags_folder.resolve() / f"{ACCOUNT_DAG_ID}.py"
    watch_env = {**env, "DOTO_WATCH_POLL_INTERVAL": "1"}
    code = f"from {MODULE} import first_account_event; first_account_event({str(dag_file)!r})"
    lists_before = _account_lists(emulator)
    with log.open("ab") as err:
        watcher = subprocess.Popen(
            [sys.executable, "-c", code], env=watch_env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        deadline = time.monotonic() + RUN_TIMEOUT
        while _account_lists(emulator) < lists_before + 2 and watcher.poll() is None:
            if time.monotonic() > deadline:
                watcher.kill()
                break
            time.sleep(0.1)
        writer = others[ACCOUNT_WRITER]
        emulator.add_message(writer, ACCOUNT_ESCALATION, sender_type="Contact", sender_name=ACCOUNT_WRITER)
        print(
            f"      ... {ACCOUNT_WRITER} writes in conversation {writer}: {ACCOUNT_ESCALATION!r}", flush=True
        )
        try:
            out, _ = watcher.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            watcher.kill()
            out = ""
    payload = json.loads(out.strip().splitlines()[-1]) if watcher.returncode == 0 and out.strip() else None
    if payload is None:
        print("      the watcher gave no event\n" + tail(log, secret=token))
        return 1
    found = [(m["conversation_id"], m["id"]) for m in payload.get("messages", [])]
    print(f"      event: {len(found)} message(s), (conversation, message) {found}")

    conf = json.dumps({"payload": payload})
    print(f"  [6/6] airflow dags test {ACCOUNT_DAG_ID} -c '{{\"payload\": <that event>}}'")
    step = time.monotonic()
    code_run = _run(
        [sys.executable, "-m", "airflow", "dags", "test", ACCOUNT_DAG_ID, "-c", conf], env, log, RUN_TIMEOUT
    )
    outcome = "succeeded" if code_run == 0 else f"FAILED (exit code {code_run})"
    print(f"      DAG run {outcome} in {time.monotonic() - step:.1f} s")
    for cid in sorted({c for c, _ in found}):
        print(f"      Conversation {cid} as it now stands:")
        for line in format_conversation(emulator.messages(cid)):
            print(("    " + line).rstrip())
    if code_run != 0:
        print("\nLast lines of Airflow's output:\n" + tail(log, secret=token))
    return code_run


def _account_lists(emulator: DotoEmulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET" and r.path.endswith("/conversations"))


def first_account_event(dag_file: str) -> None:
    """Run the DAG file's AssetWatcher trigger as Airflow's triggerer does (no task instance, a
    trigger id) until its first event; print the event's payload as one line of JSON."""
    import asyncio
    import runpy

    asset = runpy.run_path(dag_file)["escalations"]
    trigger = asset.watchers[0].trigger
    trigger.trigger_id, trigger.task_instance = 1, None

    async def first() -> Any:
        events = trigger.run()
        try:
            return (await anext(events)).payload
        finally:
            await events.aclose()

    print(json.dumps(asyncio.run(asyncio.wait_for(first(), RUN_TIMEOUT))), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_doto.testing.stack.demo", description=__doc__
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
