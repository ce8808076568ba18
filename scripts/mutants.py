"""A small mutation check for the guarantees the README makes (see RELIABILITY.md, "Mutation check").

Each mutation below breaks one promise with a precise textual replacement in one file, and names
the few tests that must catch it. For every mutation the script restores a pristine copy of the
file in an isolated copy of the repository (never the working tree), applies the replacement,
runs only those tests (``pytest -x``) and reports the first test that failed (KILLED) or that all
passed (SURVIVED). Before any mutation it runs every selected test on the unmutated copy: a
selection that fails there proves nothing.

An ``old`` snippet that is not found exactly once stops the script at once, so the list cannot
rot silently when the code changes: fix the snippet, not the check.

    .venv/bin/python scripts/mutants.py              # all mutations; exit 1 if any survives
    .venv/bin/python scripts/mutants.py --write      # ... and put the report into RELIABILITY.md
    .venv/bin/python scripts/mutants.py overlap-off  # only the named mutation(s)
    .venv/bin/python scripts/mutants.py --list       # names, files and tests, nothing run
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RELIABILITY_MD = REPO / "RELIABILITY.md"
BEGIN, END = "<!-- mutants:begin -->", "<!-- mutants:end -->"
PER_MUTATION_TIMEOUT = 300  # seconds; a hang counts as killed (reported as such)

TRIGGER = "airflow_provider_doto/triggers/doto.py"
WATCH = "airflow_provider_doto/api/_watch.py"
ACCOUNT_WATCH = "airflow_provider_doto/api/_account_watch.py"
LISTING = "airflow_provider_doto/api/_listing.py"
SETTINGS = "airflow_provider_doto/api/_settings.py"
SYNC_HOOK = "airflow_provider_doto/hooks/doto.py"
ASYNC_HOOK = "airflow_provider_doto/hooks/doto_async.py"
TRANSPORT = "airflow_provider_doto/hooks/_transport.py"
LINK = "airflow_provider_doto/links/doto.py"
SENSOR = "airflow_provider_doto/sensors/doto.py"
RUNS = "airflow_provider_doto/_runs.py"
DELIVERY = "airflow_provider_doto/api/_delivery.py"
UPLOADS = "airflow_provider_doto/api/_uploads.py"
HTTP = "airflow_provider_doto/api/_http.py"

T_TRIGGER = "tests/triggers/test_doto.py"
T_TRANSPORT = "tests/hooks/test_transport.py"
T_ACCOUNT_HOOKS = "tests/hooks/test_doto_account_watch.py"
SERIALISE_TESTS = (
    f"{T_TRIGGER}::test_rebuilt_trigger_keeps_every_constructor_argument",
    f"{T_TRIGGER}::test_serialize_round_trip_rebuilds_an_equal_trigger[server=doto]",
)


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str  # the README / RELIABILITY.md guarantee this breaks
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids (a file, a test, or one parametrisation)


def _drop_serialised(key: str, line: str) -> Mutation:
    return Mutation(
        f"serialize-drops-{key}",
        f"a deferred or watching trigger keeps its {key} (serialize)",
        TRIGGER,
        line,
        "",
        SERIALISE_TESTS,
    )


def _drop_filter_key(key: str) -> Mutation:
    return Mutation(
        f"serialize-drops-{key}",
        f"a deferred or watching trigger keeps its {key} (serialize)",
        TRIGGER,
        "                **self.filter.to_dict(),\n",
        f"                **{{k: v for k, v in self.filter.to_dict().items() if k != {key!r}}},\n",
        SERIALISE_TESTS,
    )


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "serialize-drops-conversation_id",
        "a deferred or watching trigger keeps its conversation_id (serialize)",
        TRIGGER,
        '                "conversation_id": self.conversation_id,\n                **query,\n',
        "                **query,\n",
        SERIALISE_TESTS,
    ),
    Mutation(
        "serialize-drops-conversation_query",
        "an account watcher keeps its conversation_query (serialize)",
        TRIGGER,
        '        query = {} if self.conversation_query is None else {"conversation_query": self._query_text or None}\n',
        "        query = {}\n",
        SERIALISE_TESTS,
    ),
    Mutation(
        "account-watch-ignores-updates",
        "the account watch reads a watched conversation again when its updated_at moves",
        ACCOUNT_WATCH,
        "        return known is None or conversation.updated_at is None or version_of(conversation) != known\n",
        "        return known is None\n",
        (
            f"{T_ACCOUNT_HOOKS}::test_late_commits_updates_without_a_message_deletions_and_the_filter",
            f"{T_ACCOUNT_HOOKS}::test_a_restored_watch_continues_without_reporting_twice",
        ),
    ),
    Mutation(
        "account-watch-updated-at-only",
        "a message committed in the same updated_at second as the last read is still read (Version)",
        ACCOUNT_WATCH,
        "    return (\n        conversation.updated_at,\n",
        "    return (conversation.updated_at, 0, None, 0)\n    return (\n        conversation.updated_at,\n",
        (
            "tests/reliability/test_account_soak.py::test_a_message_committed_in_the_second_of_the_last_read_is_reported",
        ),
    ),
    Mutation(
        "account-watch-floor-off",
        "a conversation whose cursor was dropped is watched again from the floor: nothing reported twice",
        ACCOUNT_WATCH,
        "        return max(self.start, math.floor(self.listed_at) - self.overlap - CLOCK_SLACK)\n",
        "        return self.start\n",
        (f"{T_ACCOUNT_HOOKS}::test_state_stays_bounded_and_a_dropped_conversation_is_watched_again",),
    ),
    Mutation(
        "account-watch-never-forgets",
        "the account watch's state stays bounded: quiet cursors are dropped",
        ACCOUNT_WATCH,
        "            if cursor.position < floor and updated_at is not None and updated_at < floor:\n",
        "            if False:\n",
        (f"{T_ACCOUNT_HOOKS}::test_state_stays_bounded_and_a_dropped_conversation_is_watched_again",),
    ),
    _drop_serialised("doto_conn_id", '                "doto_conn_id": self.doto_conn_id,\n'),
    _drop_serialised("start", '                "start": self.start,\n'),
    _drop_serialised("poll_interval", '                "poll_interval": self.poll_interval,\n'),
    _drop_filter_key("message_types"),
    _drop_filter_key("include_private"),
    _drop_filter_key("sender_types"),
    _drop_filter_key("content_pattern"),
    _drop_serialised("min_messages", '                "min_messages": self.min_messages,\n'),
    _drop_serialised("overlap", '                "overlap": self.overlap,\n'),
    _drop_serialised("max_failures", '                "max_failures": self.max_failures,\n'),
    _drop_serialised("state", '                "state": self.state,\n'),
    _drop_serialised("timeout_at", '                "timeout_at": self.timeout_at,\n'),
    Mutation(
        "overlap-off",
        "polls re-read `overlap` seconds behind the cursor (late commits, shared seconds)",
        WATCH,
        "        return self.position - self.overlap\n",
        "        return self.position\n",
        (
            "tests/api/test_watch.py::TestMessageWatch::test_polls_with_overlap_behind_the_cursor",
            "tests/api/test_watch.py::TestMessageWatch::test_late_message_is_still_reported",
        ),
    ),
    Mutation(
        "dedup-off",
        "a message is reported once: MessageWatch.feed de-duplicates by id",
        WATCH,
        "            if message.id in self.seen:\n                continue\n",
        "",
        (
            "tests/api/test_watch.py::TestMessageWatch::test_message_sharing_the_cursors_second",
            "tests/api/test_watch.py::TestMessageWatch::test_late_message_is_still_reported",
        ),
    ),
    Mutation(
        "chatwoot-id-overlap-off",
        "on Chatwoot the overlap is kept in ids: after_id only passes ids that left the window",
        WATCH,
        "            left = [mid for mid, ts in self.seen.items() if ts < horizon]\n",
        "            left = list(self.seen)\n",
        (
            "tests/api/test_watch.py::test_late_commits_are_reported_once",
            "tests/api/test_watch.py::test_no_loss_no_repeat_under_late_commits",
        ),
    ),
    Mutation(
        "id-pager-skips-unread-ids",
        "the Chatwoot id pager never moves past an id it has not read (a page within the id-order slack)",
        LISTING,
        "                page += yield from id_range_flow(\n"
        "                    self.account_id, self.conversation_id, after_id + 1, next_id + 1\n"
        "                )\n",
        "",
        (
            "tests/api/test_listing.py::"
            "test_a_page_within_the_slack_reads_the_ids_below_its_highest_before_moving_past_them",
            "tests/hooks/test_doto_iter_messages.py::test_busy_seconds_with_an_id_out_of_order_lose_nothing",
        ),
    ),
    Mutation(
        "id-order-slack-off",
        "id cursors step back ID_ORDER_SLACK: a lower id created up to 2 s after a higher one is still read",
        LISTING,
        "ID_ORDER_SLACK = 2\n",
        "ID_ORDER_SLACK = 0\n",
        (
            "tests/api/test_listing.py::TestPager::"
            "test_a_lower_id_created_a_second_later_and_committed_between_pages_is_read",
            "tests/api/test_watch.py::"
            "test_a_lower_id_created_2_s_after_a_higher_one_and_committed_late_inside_the_overlap",
        ),
    ),
    Mutation(
        "state-drops-flavor",
        "the detected server flavor travels in the cursor (no new probe after a restart)",
        WATCH,
        '            "flavor": self.reading.known,\n            "after_id"',
        '            "after_id"',
        (
            "tests/api/test_watch.py::test_state_keeps_the_flavor_so_a_restart_does_not_probe",
            f"{T_TRIGGER}::test_a_restarted_watcher_keeps_the_flavor_in_its_stored_cursor",
        ),
    ),
    Mutation(
        "retry-skips-delivery-lookup",
        "a retried send task (single or batch) finds what its earlier try delivered instead of posting again",
        RUNS,
        '        look_back_since=run_start(context["dag_run"]) if ti.try_number > 1 else None,\n',
        "        look_back_since=None,\n",
        (
            "tests/operators/test_doto.py::test_retry_after_commit_then_dropped_connection_does_not_post_twice"
            "[server=doto]",
            "tests/operators/test_batch.py::test_retry_after_committed_but_unanswered_posts_sends_nothing_twice[server=doto]",
        ),
    ),
    Mutation(
        "token-logged-at-debug-sync",
        "the token never reaches a log, at any level (sync hook)",
        SYNC_HOOK,
        "        session.headers.update(headers(self.settings.token))\n",
        "        session.headers.update(headers(self.settings.token))\n"
        '        log.debug("Doto session for %s with token %s", self.settings.base_url, self.settings.token)\n',
        ("tests/hooks/test_doto.py::test_no_token_in_debug_logs",),
    ),
    Mutation(
        "token-logged-at-debug-async",
        "the token never reaches a log, at any level (async hook)",
        ASYNC_HOOK,
        # The request path (the attachment download reads its settings the same way).
        "        settings = await self.get_settings()\n        timeout = self._timeout if self._timeout is not None"
        " else settings.timeout\n        exchange = ",
        "        settings = await self.get_settings()\n"
        '        log.debug("Doto request headers %s", headers(settings.token))\n'
        "        timeout = self._timeout if self._timeout is not None else settings.timeout\n        exchange = ",
        ("tests/hooks/test_doto_async.py::test_no_token_in_debug_logs",),
    ),
    Mutation(
        "follow-redirects-sync",
        "a redirect is never followed with the token (sync hook)",
        SYNC_HOOK,
        "                allow_redirects=False,\n",
        "                allow_redirects=True,\n",
        ("tests/reliability/test_secrets.py::test_a_redirect_is_not_followed_with_the_token",),
    ),
    Mutation(
        "follow-redirects-async",
        "a redirect is never followed with the token (async hook)",
        ASYNC_HOOK,
        "                allow_redirects=False,  # a redirect",
        "                allow_redirects=True,  # a redirect",
        ("tests/reliability/test_secrets.py::test_a_redirect_is_not_followed_with_the_token",),
    ),
    Mutation(
        "attachment-token-to-any-origin",
        "an attachment download sends the token only to the Base URL's origin",
        "airflow_provider_doto/api/_attachments.py",
        "    return origin(url) == origin(base_url)\n",
        "    return True\n",
        (
            "tests/hooks/test_doto_attachments.py::test_download_follows_the_redirect_and_keeps_the_token_home",
            "tests/reliability/test_secrets.py::test_an_attachment_download_keeps_the_token_on_its_origin",
        ),
    ),
    Mutation(
        "fallback-template-always",
        "a fallback template is sent only where the reply window is closed",
        "airflow_provider_doto/api/_flows.py",
        "                if fallback is None:\n                    raise error\n                request = fallback\n",
        "                if fallback is None:\n                    raise error\n            request = fallback or request\n",
        ("tests/hooks/test_doto_templates.py::test_the_fallback_is_sent_only_where_the_window_is_closed",),
    ),
    Mutation(
        "plain-http-to-remote-host",
        "the token is never sent over plain http to a non-loopback host",
        SETTINGS,
        '    if parts.scheme == "http" and not allow_insecure and not is_loopback(hostname):\n',
        "    if False:\n",
        ("tests/api/test_settings.py::TestNormaliseBaseUrl::test_plain_http_refused_for_non_loopback",),
    ),
    Mutation(
        "reschedule-drops-cursor-save",
        "a rescheduled sensor keeps its cursor in the task state store between pokes",
        SENSOR,
        "            store.set(STATE_KEY, watch.to_state())\n",
        "            pass\n",
        ("tests/sensors/test_doto.py::test_sensor_run_loses_and_repeats_nothing[server=doto-reschedule]",),
    ),
    Mutation(
        "watcher-drops-state-store-write",
        "an asset watcher keeps its cursor in the asset state store across triggerer restarts",
        TRIGGER,
        "            await self._state_store.aset(self._state_key, state)\n",
        "            pass\n",
        (f"{T_TRIGGER}::test_restarted_watcher_resumes_from_the_stored_cursor[server=doto]",),
    ),
    Mutation(
        "trigger-ignores-retry-after",
        "a trigger's pause after a 429 is never shorter than the server's Retry-After",
        TRIGGER,
        "                delay = max(delay, retry_wait(err) or 0.0)\n",
        "",
        (
            "tests/triggers/test_doto_poll_spread.py::test_the_pause_after_a_429_is_never_shorter_than_retry_after[server=doto]",
        ),
    ),
    Mutation(
        "watcher-forgets-a-failed-save",
        "a cursor save that failed is made again on a later poll (else a batch stays pending for good)",
        TRIGGER,
        "        if self._state_store is None or state == self._stored_state:\n            return\n",
        "        if self._state_store is None or state == self._stored_state:\n            return\n"
        "        self._stored_state = state\n",
        (
            "tests/triggers/test_doto_watcher_handover.py::"
            "test_a_failed_save_is_made_again_so_no_batch_stays_pending_for_good[server=doto]",
        ),
    ),
    Mutation(
        "tls-failure-as-lost-sync",
        "a TLS handshake failure means nothing was sent: DotoConnectError, safe to retry (sync hook)",
        TRANSPORT,
        '    ("requests.exceptions.SSLError", _requests_ssl),  # handshake: never sent; later: lost\n',
        '    ("requests.exceptions.SSLError", _lost),\n',
        (
            "tests/hooks/test_doto.py::test_tls_handshake_failure_is_a_connect_error_never_sent",
            f"{T_TRANSPORT}::test_both_tables_put_one_failure_on_one_typed_error",
        ),
    ),
    Mutation(
        "tls-failure-as-lost-async",
        "a TLS handshake failure means nothing was sent: DotoConnectError, safe to retry (async hook)",
        TRANSPORT,
        '    ("aiohttp.ClientSSLError", _tls),  # ClientConnectorSSLError, ClientConnectorCertificateError\n',
        '    ("aiohttp.ClientSSLError", _lost),\n',
        (
            "tests/hooks/test_doto_async.py::test_tls_handshake_failure_is_a_connect_error_never_sent",
            f"{T_TRANSPORT}::test_both_tables_put_one_failure_on_one_typed_error",
        ),
    ),
    Mutation(
        "http-to-tls-server-as-lost",
        "plain http spoken to a TLS server sent nothing: DotoConnectError naming https (both hooks)",
        TRANSPORT,
        '        isinstance(error, DotoConnectionLostError) and not x.proxied and urlsplit(x.base_url).scheme == "http"\n',
        "        False\n",
        (f"{T_TRANSPORT}::test_tls_failure_is_never_sent_and_names_the_cause",),
    ),
    Mutation(
        "watcher-cursor-moves-before-event",
        "an asset watcher keeps a found batch pending until its event is stored: a kill loses nothing",
        TRIGGER,
        "                        watch.announce(batch)\n",
        "                        pass\n",
        (
            "tests/triggers/test_doto_watcher_handover.py::"
            "test_killed_after_the_cursor_save_before_the_event_was_stored_announces_the_batch_again",
        ),
    ),
    Mutation(
        "lookup-failure-as-config-error",
        "only a connection that is not defined is a DotoConfigError; a lookup failure keeps its type",
        SYNC_HOOK,
        "        except AirflowNotFoundException as err:\n",
        "        except Exception as err:\n",
        ("tests/triggers/test_doto_connection.py::test_any_other_lookup_failure_keeps_its_type_and_cause",),
    ),
    Mutation(
        "lookup-outage-ends-trigger",
        "a trigger waits out a secrets backend or metadata DB outage like any transient failure",
        TRIGGER,
        "                if not isinstance(err, DotoError) and hook.connection_loaded:\n",
        "                if not isinstance(err, DotoError):\n",
        (
            "tests/triggers/test_doto_connection.py::test_trigger_waits_out_a_secrets_backend_failure_and_fires",
        ),
    ),
    Mutation(
        "link-error-on-failed-task",
        "a task failing before its conversation is known logs its own error only (no link traceback)",
        LINK,
        "        except DotoConfigError:  # nothing to link; the task failed on it already and says so\n",
        "        except KeyError:\n",
        ("tests/links/test_doto.py::test_a_task_failing_before_its_conversation_is_known_logs_one_error",),
    ),
    Mutation(
        "token-with-whitespace-accepted",
        "a token with whitespace or a control character is refused at settings, naming the API Token",
        SETTINGS,
        "        check_token(conn_id, password)\n",
        "",
        (
            "tests/hooks/test_doto_bad_token.py::test_a_token_with_whitespace_is_refused_naming_the_api_token_field",
        ),
    ),
    Mutation(
        "header-error-chained",
        "an exception that may quote a request header (the token) is never chained into the raised error",
        TRANSPORT,
        "            raise error from None  # the cause may quote a header (the token): only its type is named\n",
        "            raise error from exc\n",
        (f"{T_TRANSPORT}::test_an_exception_that_may_quote_a_header_is_not_chained",),
    ),
    Mutation(
        "trigger-error-not-typed",
        "a deferred sensor or a watcher's run fails with the error class the trigger met, as in poke mode",
        TRIGGER,
        '        raise error_from_event(payload.get("error_type"), str(text), payload.get("error_fields"))\n',
        "        raise DotoTriggerError(str(text))\n",
        (f"{T_TRIGGER}::test_an_error_event_is_raised_again_as_the_error_the_trigger_met",),
    ),
    Mutation(
        "failed-message-counts-as-delivered",
        "a retry sends again a message its channel marked failed (it was not delivered)",
        DELIVERY,
        '    candidates = [m for m in messages if not m.is_deleted and m.status != "failed"]\n',
        "    candidates = [m for m in messages if not m.is_deleted]\n",
        (
            "tests/api/test_delivery.py::TestDelivery::test_a_message_its_channel_failed_is_not_delivered",
            "tests/hooks/test_doto_delivery_status.py::test_a_retry_sends_a_failed_message_again[sync-server=doto]",
        ),
    ),
    Mutation(
        "batch-wait-ignores-the-status",
        "a batch with wait_for never reports as sent a message its channel marked failed",
        ASYNC_HOOK,
        "                    pause = wait.after_read(message, time.monotonic())\n",
        "                    pause = None\n",
        (
            "tests/hooks/test_doto_async_send_messages.py::"
            "test_wait_for_times_out_a_message_that_never_moves_as_its_own_failure[server=doto]",
            "tests/operators/test_batch.py::"
            "test_wait_for_fails_the_conversations_the_channel_failed_and_reports_each_final_status[server=doto]",
        ),
    ),
    Mutation(
        "upload-size-unchecked",
        "an attachment over the server's size limit is refused before anything is sent",
        UPLOADS,
        "        if upload.size > max_bytes:\n",
        "        if upload.size > 2 * max_bytes:\n",
        ("tests/api/test_uploads.py::test_the_size_limit_is_inclusive_and_forty_megabytes_by_default",),
    ),
    Mutation(
        "multipart-drops-delivery-key",
        "a retried attachment message finds the one an earlier try committed (its key survives multipart)",
        HTTP,
        '        return DotoRequest("POST", path, multipart=multipart_body(body, attachments))\n',
        '        form = {k: v for k, v in body.items() if k != "content_attributes"}\n'
        '        return DotoRequest("POST", path, multipart=multipart_body(form, attachments))\n',
        (
            "tests/reliability/test_fault_matrix.py::test_a_retried_send_with_attachments_neither_duplicates"
            "_nor_loses[server=doto-connection dropped after commit-sync]",
        ),
    ),
)


@dataclass
class Result:
    mutation: Mutation
    killed_by: str | None  # first failing test, or None: survived
    seconds: float

    @property
    def status(self) -> str:
        return "SURVIVED" if self.killed_by is None else "KILLED"


def source_files(repo: Path) -> list[str]:
    """The working tree's files as git sees them: tracked and untracked, minus ignored and deleted."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (repo / name).is_file()]


def make_copy(repo: Path, copy: Path) -> None:
    """An isolated copy of the repository's files (no .git, no venv); mutations happen only here."""
    if copy.exists():
        shutil.rmtree(copy)
    for name in source_files(repo):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)


def check_snippets(repo: Path, mutations: tuple[Mutation, ...]) -> None:
    """Every ``old`` snippet must occur exactly once in its file, or the list has rotted."""
    problems = []
    for m in mutations:
        count = (repo / m.path).read_text().count(m.old)
        if count != 1:
            problems.append(f"  {m.name}: the snippet occurs {count} times in {m.path}:\n{m.old}")
    if problems:
        sys.exit("Mutation list out of date (fix scripts/mutants.py):\n" + "\n".join(problems))


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutated module must never be read back from a stale .pyc
    env.pop("DOTO_SOAK", None)
    return env


def check_imports_from(copy: Path) -> None:
    """PYTHONPATH must win over the editable install's .pth, or the mutants would go untested."""
    out = subprocess.run(
        [sys.executable, "-c", "import airflow_provider_doto as p; print(p.__file__)"],
        cwd=copy,
        env=env_for(copy),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        sys.exit(f"airflow_provider_doto imports from {out}, not from the copy {copy}")
    print(f"airflow_provider_doto imports from the copy: {out}")


def run_pytest(copy: Path, tests: tuple[str, ...], *, stop_first: bool) -> tuple[int, list[str], str]:
    """Run ``tests`` in the copy: (exit code, failed node ids in order, output tail)."""
    report = copy / ".mutants-junit.xml"
    report.unlink(missing_ok=True)
    # Fixed order (no pytest-randomly): the named tests run as listed, cheapest killer first.
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    cmd.append(f"--junitxml={report}")
    if stop_first:
        cmd.append("-x")
    try:
        proc = subprocess.run(
            cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True, timeout=PER_MUTATION_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return -1, [f"(hung: no result within {PER_MUTATION_TIMEOUT} s)"], ""
    failed = []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(_node(case))
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    if proc.returncode not in (0, 1) and not failed:
        failed.append(f"(pytest exit {proc.returncode}: collection or usage error)")
    return proc.returncode, failed, tail


def _node(case: ET.Element) -> str:
    """A junit testcase as a pytest node id: tests/x/test_y.py::Class::test_z[param]."""
    parts = (case.get("classname") or "").split(".")
    # classname is the dotted module path, then any classes (capitalised by convention here).
    classes: list[str] = []
    while parts and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    return "::".join(["/".join(parts) + ".py", *classes, case.get("name") or "?"])


def run_mutation(copy: Path, m: Mutation) -> Result:
    target = copy / m.path
    pristine = target.read_text()
    started = time.monotonic()
    try:
        target.write_text(pristine.replace(m.old, m.new, 1))
        code, failed, _ = run_pytest(copy, m.tests, stop_first=True)
    finally:
        target.write_text(pristine)
    if code == 0:
        return Result(m, None, time.monotonic() - started)
    return Result(m, failed[0] if failed else f"(pytest exit {code})", time.monotonic() - started)


def report_table(results: list[Result], baseline_seconds: float, total_seconds: float, jobs: int) -> str:
    killed = sum(r.killed_by is not None for r in results)
    lines = [
        f"{killed} of {len(results)} mutations killed; baseline (every selected test, unmutated) "
        f"passed in {baseline_seconds:.0f} s; whole check {total_seconds:.0f} s with {jobs} job(s).",
        "",
        "| mutation | promise it breaks | file | result | first failing test |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        m = r.mutation
        lines.append(
            f"| `{m.name}` | {m.promise} | `{m.path.removeprefix('airflow_provider_doto/')}` | "
            f"{r.status} | {'`' + r.killed_by + '`' if r.killed_by else 'none'} |"
        )
    return "\n".join(lines)


def write_report(table: str) -> None:
    text = RELIABILITY_MD.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"RELIABILITY.md has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    RELIABILITY_MD.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="only these mutations (default: all)")
    parser.add_argument("--write", action="store_true", help="write the report into RELIABILITY.md")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the copies go (default: a new temporary directory)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="mutations tested at once, each in its own copy (default 2)"
    )
    parser.add_argument(
        "--baseline-junit",
        type=Path,
        default=None,
        help="a JUnit report of the same tree's suite: selected tests it shows passed skip the baseline",
    )
    args = parser.parse_args(argv)

    by_name = {m.name: m for m in MUTATIONS}
    if len(by_name) != len(MUTATIONS):
        sys.exit("two mutations share a name")
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        sys.exit(f"unknown mutation(s) {', '.join(unknown)}; --list shows them")
    selected = tuple(by_name[n] for n in args.names) or MUTATIONS
    if args.write and args.names:
        sys.exit("--write needs the whole list")

    check_snippets(REPO, selected)
    if args.list:
        for m in selected:
            print(f"{m.name}  ({m.path})\n    {m.promise}\n    " + "\n    ".join(m.tests))
        return 0

    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="doto-mutants-"))
    try:
        passed = passed_in(args.baseline_junit) if args.baseline_junit else set()
        return run_all(selected, workdir, max(1, args.jobs), args.write, started, passed)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def passed_in(report: Path) -> set[str]:
    """Node ids of the tests a JUnit report shows passed (not failed, errored or skipped)."""
    return {
        _node(case)
        for case in ET.parse(report).getroot().iter("testcase")
        if not any(case.find(tag) is not None for tag in ("failure", "error", "skipped"))
    }


def run_all(
    selected: tuple[Mutation, ...], workdir: Path, jobs: int, write: bool, started: float, passed: set[str]
) -> int:
    copies = [workdir / f"repo-{i}" for i in range(min(jobs, len(selected)))]
    for copy in copies:
        make_copy(REPO, copy)
    print(f"{len(copies)} copies of the working tree in {workdir}")
    check_imports_from(copies[0])
    copy = copies[0]

    tests = tuple(dict.fromkeys(t for m in selected for t in m.tests))
    # A selection the suite run of this same tree passed (a test node id) needs no baseline run.
    # A file or a test with parameters is a selection of several node ids: always run.
    known = [t for t in tests if t in passed]
    tests = tuple(t for t in tests if t not in passed)
    if known:
        print(f"baseline: {len(known)} test selections passed in the suite's report", flush=True)
    print(f"baseline: {len(tests)} test selections on the unmutated copy ...", flush=True)
    t0 = time.monotonic()
    code, failed, tail = run_pytest(copy, tests, stop_first=False) if tests else (0, [], "")
    baseline_seconds = time.monotonic() - t0
    if code != 0:
        print(tail)
        print(f"BASELINE FAILED ({baseline_seconds:.0f} s): {', '.join(failed) or 'see above'}")
        print("The selected tests must pass unmutated, or killing a mutant proves nothing.")
        return 1
    print(f"baseline passed in {baseline_seconds:.0f} s")

    free: queue.Queue[Path] = queue.Queue()
    for c in copies:
        free.put(c)

    def one(m: Mutation) -> Result:
        c = free.get()
        try:
            result = run_mutation(c, m)
        finally:
            free.put(c)
        print(f"{result.status:8} {m.name:36} {result.seconds:5.0f} s  {result.killed_by or ''}", flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(copies)) as pool:
        results = list(pool.map(one, selected))
    total = time.monotonic() - started
    table = report_table(results, baseline_seconds, total, len(copies))
    print()
    print(table)
    if write:
        write_report(table)
        print("report written to RELIABILITY.md")
    survivors = [r.mutation.name for r in results if r.killed_by is None]
    if survivors:
        print(f"SURVIVED: {', '.join(survivors)}: a promise is broken and no selected test noticed.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
