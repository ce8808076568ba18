"""``_delivery``: delivery keys, finding what an earlier try delivered, sending once."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._delivery import find_delivered, send_once_flow
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError

from ._support import BIG_IDS, T0, FakeServer, drive, history, msg, ok


class TestDelivery:
    def test_delivery_key_stable_and_distinct(self):
        key = api.delivery_key("dag", "task", "run", 0, 42)
        assert key == api.delivery_key("dag", "task", "run", 0, 42)
        assert len(key) == 24 and int(key, 16) >= 0
        others = {
            api.delivery_key("dag2", "task", "run", 0, 42),
            api.delivery_key("dag", "task2", "run", 0, 42),
            api.delivery_key("dag", "task", "run2", 0, 42),
            api.delivery_key("dag", "task", "run", 1, 42),
            api.delivery_key("dag", "task", "run", 0, 43),
            api.delivery_key("da", "gtask", "run", 0, 42),
        }
        assert key not in others and len(others) == 6

    def test_find_delivered_by_key(self):
        key = api.delivery_key("d", "t", "r")
        messages = [
            parse_message(msg(1, T0, "outgoing", content="hi")),
            parse_message(
                msg(2, T0, "outgoing", content="other", content_attributes={"airflow_delivery_key": key})
            ),
        ]
        assert find_delivered(messages, key, "hi", "outgoing", False).id == 2

    def test_find_delivered_skips_deleted_and_other_keys(self):
        key = api.delivery_key("d", "t", "r")
        messages = [
            parse_message(
                msg(
                    1,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": key, "deleted": True},
                )
            ),
            parse_message(
                msg(
                    2,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": "someone-else"},
                )
            ),
        ]
        assert find_delivered(messages, key, "hi", "outgoing", False) is None

    def test_find_delivered_by_content_when_attributes_not_echoed(self):
        messages = [
            parse_message(msg(1, T0, "outgoing", content="hi", private=True)),
            parse_message(msg(2, T0, "incoming", content="hi")),
            parse_message(msg(3, T0, "outgoing", content="hi")),
        ]
        assert find_delivered(messages, "k", "hi", "outgoing", False).id == 3
        assert find_delivered(messages, "k", "bye", "outgoing", False) is None
        assert find_delivered([], "k", "hi", "outgoing", False) is None

    @pytest.mark.parametrize("attributes", [{"airflow_delivery_key": "k"}, {}])
    def test_a_message_its_channel_failed_is_not_delivered(self, attributes):
        """By key or by content: a failed one may be sent again, any other status stands."""
        failed = msg(1, T0, "outgoing", content="hi", status="failed", content_attributes=attributes)
        assert find_delivered([parse_message(failed)], "k", "hi", "outgoing", False) is None
        for status in ("sent", "delivered", "read", None):
            kept = parse_message({**failed, "status": status})
            assert find_delivered([kept], "k", "hi", "outgoing", False) is kept


class TestSendOnceFlow:
    """The flow the hooks drive for a duplicate-safe send: look back (on a retry), then post."""

    KEY = "k" * 24

    def mine(self, mid=7, ts=T0 + 5, **extra) -> dict:
        return msg(
            mid, ts, "outgoing", content="hi", content_attributes={"airflow_delivery_key": self.KEY}, **extra
        )

    def test_a_first_try_only_posts_with_the_key_among_the_attributes(self):
        (message, already), sent = drive(
            send_once_flow(1, "42", "hi", key=self.KEY, content_attributes={"ref": "A-1"}, flavor="doto"),
            [ok(self.mine())],
        )
        assert (message.id, already) == (7, False)
        assert [r.method for r in sent] == ["POST"]
        assert sent[0].json["content_attributes"] == {"ref": "A-1", "airflow_delivery_key": self.KEY}

    def test_a_retry_returns_what_an_earlier_try_delivered(self):
        (message, already), sent = drive(
            send_once_flow(1, 42, "hi", key=self.KEY, look_back_since=T0, flavor="doto"),
            [ok({"payload": [msg(6, T0 + 1, "outgoing", content="hi"), self.mine()]})],
        )
        assert (message.id, already) == (7, True)
        # ``after`` is strict: the look-back starts one second early, so the run's first second counts.
        assert [(r.method, dict(r.params)) for r in sent] == [("GET", {"after": T0 - 1})]

    def test_a_retry_posts_when_nothing_was_delivered(self):
        (message, already), sent = drive(
            send_once_flow(1, 42, "hi", key=self.KEY, look_back_since=T0, private=True, flavor="doto"),
            [ok({"payload": [msg(6, T0 + 1, "outgoing", content="hi")]}), ok(self.mine(private=True))],
        )
        assert (message.id, already) == (7, False)
        assert [r.method for r in sent] == ["GET", "POST"]
        assert sent[1].json["private"] is True

    def test_the_look_back_takes_any_time_value(self):
        since = dt.datetime.fromtimestamp(T0, dt.UTC)
        for value in (since, since.isoformat(), str(T0), float(T0)):
            first = next(send_once_flow(1, 42, "hi", key=self.KEY, look_back_since=value, flavor="doto"))
            assert dict(first.params) == {"after": T0 - 1}

    @pytest.mark.parametrize("flavor", ["chatwoot", "auto"])
    def test_the_look_back_pages_as_the_server_reads_after(self, flavor):
        server = FakeServer("chatwoot")
        history(server, 150, first_id=BIG_IDS, start=T0 - 100)
        server.add(BIG_IDS + 500, T0 + 60, content_attributes={"airflow_delivery_key": self.KEY})
        flow = send_once_flow(1, 42, "m", key=self.KEY, look_back_since=T0, flavor=flavor)
        message, already = run_flow(flow, server)
        assert (message.id, already) == (BIG_IDS + 500, True)
        # Asked by id, from the window's first id (Chatwoot's reading), never with a time as ``after``.
        assert {"after": T0 - 1} not in server.calls
        assert any("before_timestamp" in c for c in server.calls)

    def test_an_empty_conversation_under_auto_posts(self):
        (message, already), sent = drive(
            send_once_flow(1, 42, "hi", key=self.KEY, look_back_since=T0, flavor="auto"),
            [ok({"payload": []}), ok(self.mine())],
        )
        assert (message.id, already) == (7, False)
        assert [r.method for r in sent] == ["GET", "POST"]  # the probe found nothing: nothing to look at

    @pytest.mark.parametrize(
        ("content", "options", "match"),
        [
            ("  ", {}, "content must be a non-empty string"),
            ("hi", {"content_attributes": ["not", "a", "dict"]}, "content_attributes must be a dict"),
            ("hi", {"message_type": "activity"}, "message_type must be one of"),
        ],
    )
    def test_checked_before_anything_is_read_or_sent(self, content, options, match):
        flow = send_once_flow(1, 42, content, key=self.KEY, look_back_since=T0, **options, flavor="doto")
        with pytest.raises(DotoConfigError, match=match):
            next(flow)

    def test_a_failed_look_back_is_raised_not_posted_over(self):
        with pytest.raises(DotoAuthError):
            drive(
                send_once_flow(1, 42, "hi", key=self.KEY, look_back_since=T0, flavor="doto"),
                [ok({"error": "Invalid Access Token"}, status=401)],
            )
