"""``_batch``: building and checking a batch, per-conversation results, counts and the verdict."""

from __future__ import annotations

import json
import pickle
import traceback

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._batch import (
    batch_ids,
    batch_output,
    batch_result,
    batch_source,
    build_batch,
    check_items,
    failed_result,
    validate_batch_options,
    validate_max_in_flight,
    validate_tolerance,
    waited_result,
)
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.api._values import MAX_CONTENT_LENGTH
from airflow_provider_doto.exceptions import (
    DotoBatchError,
    DotoConfigError,
    DotoConnectionLostError,
    DotoDeliveryError,
    DotoNotFoundError,
)

from ._support import T0, msg


class TestBuildBatch:
    def test_from_messages(self):
        items = build_batch(
            [{"conversation_id": 4, "content": "a"}, {"conversation_id": "7", "content": "b"}]
        )
        assert items == [api.BatchItem(4, "a"), api.BatchItem(7, "b")]

    def test_from_ids_and_one_content(self):
        assert build_batch(conversation_ids=[3, 1], content="hi") == [
            api.BatchItem(3, "hi"),
            api.BatchItem(1, "hi"),
        ]

    def test_from_ids_and_one_content_each(self):
        items = build_batch(conversation_ids=[3, 1], content=["hi 3", "hi 1"])
        assert [(i.conversation_id, i.content) for i in items] == [(3, "hi 3"), (1, "hi 1")]

    def test_empty_batch_is_nothing_to_do(self):
        assert build_batch([]) == []
        assert build_batch(conversation_ids=[], content="hi") == []

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            (
                {
                    "messages": [
                        {"conversation_id": 1, "content": "a"},
                        {"conversation_id": 0, "content": "b"},
                    ]
                },
                r"messages\[1\]: conversation_id must be a positive integer, got 0",
            ),
            ({"messages": [{"conversation_id": True, "content": "a"}]}, r"messages\[0\]: conversation_id"),
            ({"messages": [{"conversation_id": "x", "content": "a"}]}, r"messages\[0\]: conversation_id"),
            (
                {"messages": [{"conversation_id": 1, "content": "  "}]},
                r"messages\[0\]: content must be a non-empty string",
            ),
            ({"messages": [{"conversation_id": 1, "content": 5}]}, r"messages\[0\]: content must be"),
            ({"messages": [{"conversation_id": 1, "content": None}]}, r"messages\[0\]: content must be"),
            (
                {"messages": [{"conversation_id": 1, "content": "x" * (MAX_CONTENT_LENGTH + 1)}]},
                r"messages\[0\]: content is 150,001 characters long",
            ),
            (
                {"messages": [{"conversation_id": 1, "content": "a", "private": True}]},
                r"messages\[0\] has unknown key\(s\) 'private'",
            ),
            ({"messages": [{"content": "a"}]}, r"messages\[0\] lacks conversation_id"),
            ({"messages": [{}]}, r"messages\[0\] lacks content and conversation_id"),
            ({"messages": [7]}, r"messages\[0\] must be a mapping"),
            ({"messages": "[{...}]"}, r"messages must be a list"),
            ({"messages": {"conversation_id": 1, "content": "a"}}, r"messages must be a list"),
            (
                {
                    "messages": [
                        {"conversation_id": 5, "content": "a"},
                        {"conversation_id": "5", "content": "b"},
                    ]
                },
                r"messages\[1\]: conversation 5 is already messages\[0\]",
            ),
            (
                {"conversation_ids": [1, 2, 1], "content": "hi"},
                r"conversation_ids\[2\]: conversation 1 is already conversation_ids\[0\]",
            ),
            ({"conversation_ids": [1, -2], "content": "hi"}, r"conversation_ids\[1\]: conversation_id"),
            ({"conversation_ids": [1, 2], "content": ["a"]}, r"one string per conversation id \(2\)"),
            ({"conversation_ids": [1, 2], "content": ["a", ""]}, r"conversation_ids\[1\]: content must be"),
            ({"conversation_ids": [1]}, r"conversation_ids needs content"),
            ({"conversation_ids": "1,2", "content": "hi"}, r"conversation_ids must be a list"),
            ({"conversation_ids": [1], "content": 3}, r"content must be one string"),
            ({}, r"either messages or conversation_ids"),
            ({"messages": [], "conversation_ids": []}, r"either messages or conversation_ids"),
            ({"messages": [], "content": "hi"}, r"content goes inside each"),
        ],
    )
    def test_refuses_what_is_wrong_naming_the_item(self, kwargs, expected):
        with pytest.raises(DotoConfigError, match=expected):
            build_batch(**kwargs)

    def test_item_error_keeps_its_cause(self):
        with pytest.raises(DotoConfigError) as caught:
            build_batch(conversation_ids=[1, 0], content="hi")
        assert isinstance(caught.value.__cause__, DotoConfigError)

    def test_send_options_are_checked_once_even_for_an_empty_batch(self):
        with pytest.raises(DotoConfigError, match="message_type"):
            build_batch([], message_type="activity")
        with pytest.raises(DotoConfigError, match="private=True is only for outgoing"):
            build_batch(conversation_ids=[1], content="hi", message_type="incoming", private=True)


class TestCheckItems:
    def test_ready_made_items_pass_through(self):
        items = [api.BatchItem(4, "a"), api.BatchItem(7, "b")]
        assert check_items(iter(items)) == items

    @pytest.mark.parametrize(
        ("items", "expected"),
        [
            ([api.BatchItem(4, "a"), (7, "b")], r"items\[1\] must be an api.BatchItem, got tuple"),
            (
                [api.BatchItem(4, "a"), api.BatchItem(4, "b")],
                r"items\[1\]: conversation 4 is already items\[0\]",
            ),
            ([api.BatchItem(0, "a")], r"items\[0\]: conversation_id must be a positive integer"),
            ([api.BatchItem(4, "")], r"items\[0\]: content must be a non-empty string"),
        ],
    )
    def test_refuses_what_is_wrong_naming_the_item(self, items, expected):
        with pytest.raises(DotoConfigError, match=expected):
            check_items(items)


class TestResults:
    def test_sent_and_already_delivered(self):
        message = parse_message(msg(91, T0, "outgoing", content="hi"))
        item = api.BatchItem(4, "hi")
        assert batch_result(item, message, False) == api.BatchResult(4, "sent", message_id=91)
        assert batch_result(item, message, True).status == "already_delivered"

    def test_failed_result_is_the_typed_errors_text(self):
        error = DotoNotFoundError("Doto POST /m failed with HTTP 404", status=404)
        result = failed_result(api.BatchItem(4, "hi"), error)
        assert result == api.BatchResult(
            4, "failed", error="DotoNotFoundError: Doto POST /m failed with HTTP 404"
        )

    def test_a_wait_keeps_the_status_read_back(self):
        sent = batch_result(
            api.BatchItem(4, "hi"), parse_message(msg(91, T0, "outgoing", status="sent")), True
        )
        assert (sent.message_status, sent.message.status) == ("sent", "sent")
        read = parse_message(msg(91, T0, "outgoing", status="read"))
        waited = waited_result(sent, read)
        assert waited.to_dict() == {
            "conversation_id": 4,
            "status": "already_delivered",
            "message_id": 91,
            "message_status": "read",
            "error": None,
        }
        assert waited.message is read

    def test_a_message_failed_by_its_channel_is_a_failed_result_with_its_id_and_status(self):
        error = DotoDeliveryError(
            "Doto message 91 in conversation 4 was created, then marked failed by its channel: Template not found",
            conversation_id=4,
            message_id=91,
            message_status="failed",
            external_error="Template not found",
        )
        result = failed_result(api.BatchItem(4, "hi"), error)
        assert (result.status, result.message_id, result.message_status) == ("failed", 91, "failed")
        assert result.error == f"DotoDeliveryError: {error}"

    def test_failed_result_names_other_exceptions_by_type_only_and_stays_short(self):
        assert failed_result(api.BatchItem(4, "hi"), RuntimeError("token=abc")).error == "RuntimeError"
        long = failed_result(api.BatchItem(4, "hi"), DotoConnectionLostError("x" * 1000)).error
        assert long is not None and len(long) == 300 and long.endswith("...")

    def test_to_dict_is_json(self):
        result = api.BatchResult(4, "failed", error="DotoServerError: boom")
        assert json.loads(json.dumps(result.to_dict())) == {
            "conversation_id": 4,
            "status": "failed",
            "message_id": None,
            "message_status": None,
            "error": "DotoServerError: boom",
        }

    def test_counts(self):
        results = [
            api.BatchResult(1, "sent", 10),
            api.BatchResult(2, "already_delivered", 11),
            api.BatchResult(3, "failed", error="e"),
            api.BatchResult(4, "sent", 12),
        ]
        assert api.batch_counts(results) == {"total": 4, "sent": 2, "already_delivered": 1, "failed": 1}
        assert api.batch_counts([]) == {"total": 0, "sent": 0, "already_delivered": 0, "failed": 0}


def _results(ok: int, failed: int) -> list[api.BatchResult]:
    return [api.BatchResult(1000 + i, "sent", i) for i in range(ok)] + [
        api.BatchResult(i + 1, "failed", error=f"DotoNotFoundError: missing {i + 1}") for i in range(failed)
    ]


class TestCheckBatch:
    def test_no_failure_passes(self):
        api.check_batch(_results(3, 0))
        api.check_batch([])

    def test_one_failure_fails_naming_it(self):
        with pytest.raises(DotoBatchError) as caught:
            api.check_batch(_results(3, 1))
        error = caught.value
        assert str(error) == "1 of 4 Doto message(s) failed: conversation 1: DotoNotFoundError: missing 1"
        assert (error.failed, error.total, error.conversation_ids) == (1, 4, (1,))

    def test_tolerated_share(self):
        api.check_batch(_results(71, 29), tolerate_failures=0.29)  # 29 of 100 is 29%
        api.check_batch(_results(1, 1), tolerate_failures=0.5)
        with pytest.raises(DotoBatchError, match=r"30 of 100 Doto message\(s\) failed \(tolerated: 29%\)"):
            api.check_batch(_results(70, 30), tolerate_failures=0.29)
        api.check_batch(_results(0, 5), tolerate_failures=1.0)

    def test_names_the_first_twenty_then_counts(self):
        with pytest.raises(DotoBatchError) as caught:
            api.check_batch(_results(2, 25))
        text = str(caught.value)
        assert text.startswith(
            "25 of 27 Doto message(s) failed: conversation 1: DotoNotFoundError: missing 1;"
        )
        assert "conversation 20: DotoNotFoundError: missing 20; and 5 more" in text
        assert "conversation 21:" not in text
        assert caught.value.conversation_ids == tuple(range(1, 26))

    @pytest.mark.parametrize("bad", [-0.1, 1.5, "0.1", None, True, float("nan"), float("inf")])
    def test_tolerance_is_a_share(self, bad):
        with pytest.raises(DotoConfigError, match=r"tolerate_failures must be a share from 0\.0 to 1\.0"):
            validate_tolerance(bad)
        with pytest.raises(DotoConfigError):
            api.check_batch(_results(1, 0), tolerate_failures=bad)

    @pytest.mark.parametrize("bad", [0, -1, True, "3", 2.0, None])
    def test_max_in_flight_is_a_positive_integer(self, bad):
        with pytest.raises(DotoConfigError, match=r"max_in_flight must be a positive integer, got "):
            validate_max_in_flight(bad)

    def test_max_in_flight_of_one_or_more_is_fine(self):
        assert validate_max_in_flight(1) == 1 and validate_max_in_flight(50) == 50

    def test_batch_error_pickles_with_its_fields(self):
        with pytest.raises(DotoBatchError) as caught:
            api.check_batch(_results(1, 2))
        again = pickle.loads(pickle.dumps(caught.value))
        assert str(again) == str(caught.value) and vars(again) == vars(caught.value)


class TestUnexpectedErrors:
    """Only the provider's errors are a message's failure; anything else is a bug and fails the batch."""

    @staticmethod
    def _bug() -> RuntimeError:
        try:
            raise RuntimeError("bug: token=abc")
        except RuntimeError as err:
            return err

    def test_a_doto_error_is_a_failed_item_only(self):
        result = failed_result(api.BatchItem(4, "hi"), DotoNotFoundError("gone", status=404))
        assert result.exception is None
        api.check_batch([result], tolerate_failures=1.0)

    def test_a_bug_is_kept_on_its_result_but_never_in_its_dict(self):
        bug = self._bug()
        result = failed_result(api.BatchItem(4, "hi"), bug)
        assert result.exception is bug
        assert result.to_dict() == {
            "conversation_id": 4,
            "status": "failed",
            "message_id": None,
            "message_status": None,
            "error": "RuntimeError",
        }
        assert result == api.BatchResult(4, "failed", error="RuntimeError")  # not part of equality

    @pytest.mark.parametrize("tolerate", [0.0, 0.5, 1.0])
    def test_a_bug_is_raised_with_its_traceback_whatever_is_tolerated(self, tolerate):
        bug = self._bug()
        results = [*_results(2, 1), failed_result(api.BatchItem(7, "hi"), bug)]
        with pytest.raises(RuntimeError, match="bug: token=abc") as caught:
            api.check_batch(results, tolerate_failures=tolerate)
        assert caught.value is bug
        assert any(frame.name == "_bug" for frame in traceback.extract_tb(bug.__traceback__))
        assert caught.value.__notes__ == [
            "Raised sending a batch's message to conversation 7: an unexpected error, not a Doto error, "
            "so the batch fails whatever it tolerates (1 of 4 message(s) hit one)."
        ]

    def test_the_note_is_added_once(self):
        results = [failed_result(api.BatchItem(7, "hi"), self._bug())]
        for _ in range(2):
            with pytest.raises(RuntimeError) as caught:
                api.check_batch(results, tolerate_failures=1.0)
        assert len(caught.value.__notes__) == 1


class TestBatchSource:
    def test_messages_or_ids_with_content(self):
        assert batch_source(messages="{{ x }}") == "messages"
        assert batch_source(conversation_ids="{{ x }}", content="{{ y }}") == "conversation_ids"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({}, "either messages or conversation_ids"),
            ({"messages": [], "conversation_ids": []}, "either messages or conversation_ids"),
            ({"messages": [], "content": "x"}, "content goes inside each"),
            ({"conversation_ids": [1]}, "conversation_ids needs content"),
        ],
    )
    def test_refuses_both_or_neither(self, kwargs, match):
        with pytest.raises(DotoConfigError, match=match):
            batch_source(**kwargs)


class TestBatchIds:
    def test_checked_ids(self):
        assert batch_ids([3, "7", 1]) == [3, 7, 1]
        assert batch_ids([]) == []

    @pytest.mark.parametrize(
        ("ids", "match"),
        [
            ([1, 0], r"conversation_ids\[1\]: conversation_id must be a positive integer"),
            ([1, "1"], r"conversation_ids\[1\]: conversation 1 is already conversation_ids\[0\]"),
            ("1,2", "conversation_ids must be a list"),
        ],
    )
    def test_refuses_naming_the_item(self, ids, match):
        with pytest.raises(DotoConfigError, match=match):
            batch_ids(ids)


class TestRenderedContent:
    def test_content_rendered_per_checked_id(self):
        items = build_batch(conversation_ids=["3", 1], content=lambda cid: f"Hi #{cid}")
        assert items == [api.BatchItem(3, "Hi #3"), api.BatchItem(1, "Hi #1")]

    def test_a_bad_id_fails_before_anything_is_rendered(self):
        rendered: list[int] = []

        def render(cid: int) -> str:
            rendered.append(cid)
            return "hi"

        with pytest.raises(DotoConfigError, match=r"conversation_ids\[2\]"):
            build_batch(conversation_ids=[1, 2, 0], content=render)
        assert rendered == []

    def test_rendered_content_is_checked_naming_the_item(self):
        with pytest.raises(
            DotoConfigError, match=r"conversation_ids\[1\]: content must be a non-empty string"
        ):
            build_batch(conversation_ids=[1, 2], content=lambda cid: "hi" if cid == 1 else " ")


class TestBatchOptions:
    def test_defaults_are_fine(self):
        validate_batch_options()

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"message_type": "activity"}, "message_type must be one of"),
            ({"private": "no"}, "private must be True or False"),
            ({"content_type": ""}, "content_type must be a non-empty string"),
            ({"content_attributes": ["a"]}, "content_attributes must be a dict"),
            ({"max_in_flight": 0}, "max_in_flight must be a positive integer"),
            ({"tolerate_failures": 1.5}, "tolerate_failures must be a share"),
        ],
    )
    def test_each_setting_is_checked(self, kwargs, match):
        with pytest.raises(DotoConfigError, match=match):
            validate_batch_options(**kwargs)


def test_batch_output_is_the_counts_and_the_results_in_order():
    results = [api.BatchResult(2, "sent", 10), api.BatchResult(1, "failed", error="DotoServerError: boom")]
    assert batch_output(results) == {
        "total": 2,
        "sent": 1,
        "already_delivered": 0,
        "failed": 1,
        "results": [r.to_dict() for r in results],
    }
