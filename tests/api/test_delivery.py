"""``_delivery``: delivery keys, finding what an earlier try delivered, sending once."""

from __future__ import annotations

from airflow_provider_doto import api

from ._support import (
    T0,
    msg,
)


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
            api.parse_message(msg(1, T0, "outgoing", content="hi")),
            api.parse_message(
                msg(2, T0, "outgoing", content="other", content_attributes={"airflow_delivery_key": key})
            ),
        ]
        assert api.find_delivered(messages, key, "hi", "outgoing", False).id == 2

    def test_find_delivered_skips_deleted_and_other_keys(self):
        key = api.delivery_key("d", "t", "r")
        messages = [
            api.parse_message(
                msg(
                    1,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": key, "deleted": True},
                )
            ),
            api.parse_message(
                msg(
                    2,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": "someone-else"},
                )
            ),
        ]
        assert api.find_delivered(messages, key, "hi", "outgoing", False) is None

    def test_find_delivered_by_content_when_attributes_not_echoed(self):
        messages = [
            api.parse_message(msg(1, T0, "outgoing", content="hi", private=True)),
            api.parse_message(msg(2, T0, "incoming", content="hi")),
            api.parse_message(msg(3, T0, "outgoing", content="hi")),
        ]
        assert api.find_delivered(messages, "k", "hi", "outgoing", False).id == 3
        assert api.find_delivered(messages, "k", "bye", "outgoing", False) is None
        assert api.find_delivered([], "k", "hi", "outgoing", False) is None
