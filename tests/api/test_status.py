"""``_status``: reading a created message back, and deciding whether it reached the status waited for."""

from __future__ import annotations

import pytest

from airflow_provider_doto.api._flavors import ServerReading
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.api._status import (
    DeliveryWait,
    delivery_reached,
    delivery_timeout_error,
    read_back_flow,
    read_back_request,
)
from airflow_provider_doto.api._values import check_wait_for
from airflow_provider_doto.exceptions import DotoConfigError, DotoDeliveryError

from ._support import T0, answer, drive, msg

WHY = "Template not found or invalid template name"


def sent(status: str | None = "sent", **attributes) -> object:
    return parse_message(msg(41, T0, message_type="outgoing", status=status, content_attributes=attributes))


@pytest.mark.parametrize(
    ("status", "wait_for", "reached"),
    [
        ("sent", "sent", True),
        ("sent", "delivered", False),
        ("delivered", "sent", True),
        ("delivered", "delivered", True),
        ("delivered", "read", False),
        ("read", "delivered", True),
        ("read", "read", True),
        (None, "sent", False),
        ("progress", "sent", False),
    ],
)
def test_a_later_status_satisfies_an_earlier_target(status, wait_for, reached):
    assert delivery_reached(sent(status), wait_for, 7) is reached


@pytest.mark.parametrize("wait_for", ["sent", "delivered", "read"])
def test_failed_raises_with_the_servers_external_error(wait_for):
    with pytest.raises(DotoDeliveryError, match=rf"message 41 in conversation 7 .*failed.*{WHY}") as caught:
        delivery_reached(sent("failed", external_error=WHY), wait_for, 7)
    error = caught.value
    assert (error.conversation_id, error.message_id, error.message_status, error.external_error) == (
        7,
        41,
        "failed",
        WHY,
    )


def test_failed_without_a_reason_says_so():
    with pytest.raises(DotoDeliveryError, match="gave no external_error"):
        delivery_reached(sent("failed"), "sent", 7)


def test_the_timeout_error_names_the_last_status():
    error = delivery_timeout_error(sent("delivered"), "read", 7, 30)
    assert "timed out after 30 s" in str(error) and "'read'" in str(error) and "'delivered'" in str(error)
    assert (error.message_status, error.external_error) == ("delivered", None)


@pytest.mark.parametrize(
    ("wait_for", "timeout"),
    [("delivred", 10), ("", 10), ("sent", -1), ("sent", float("inf")), ("sent", True), ("sent", "10")],
)
def test_bad_wait_for_or_timeout_is_refused(wait_for, timeout):
    with pytest.raises(DotoConfigError):
        check_wait_for(wait_for, timeout)


def test_good_values_pass():
    for wait_for in (None, "sent", "delivered", "read"):
        check_wait_for(wait_for, 0)
        check_wait_for(wait_for, 12.5)


def test_one_request_by_id_on_chatwoot_and_by_second_on_a_timestamp_server():
    message = sent()
    chatwoot = read_back_request(1, 7, message, ServerReading("chatwoot"))
    assert chatwoot.params == {"after": 41, "before": 42}  # Chatwoot: after <= id < before
    doto = read_back_request(1, 7, message, ServerReading("doto"))
    assert doto.params == {"after": T0 - 1, "before": T0 + 1}
    assert chatwoot.path == doto.path == "/api/v1/accounts/1/conversations/7/messages"


def test_the_read_back_returns_the_message_as_the_server_has_it():
    now_failed = msg(
        41, T0, message_type="outgoing", status="failed", content_attributes={"external_error": WHY}
    )
    neighbour = msg(40, T0, message_type="incoming", status="read")
    found, requests = drive(
        read_back_flow(1, 7, sent(), ServerReading("doto")), [answer({"payload": [neighbour, now_failed]})]
    )
    assert (found.id, found.status, found.external_error) == (41, "failed", WHY)
    assert len(requests) == 1


def test_a_read_back_without_the_message_keeps_the_last_known_status():
    message = sent("delivered")
    found, _ = drive(read_back_flow(1, 7, message, ServerReading("chatwoot")), [answer({"payload": []})])
    assert found is message


def test_the_wait_says_how_long_to_pause_until_the_status_is_reached():
    wait = DeliveryWait(7, "delivered", timeout=10, started=100.0, poll_interval=2)
    assert wait.after_read(sent("sent"), 100.0) == 2
    assert wait.after_read(sent("sent"), 109.0) == 1  # never past the deadline
    assert wait.after_read(sent("delivered"), 109.5) is None
    assert wait.after_read(sent("read"), 200.0) is None  # reached wins over a time up


def test_the_wait_raises_when_the_time_is_up_or_the_channel_failed_it():
    wait = DeliveryWait(7, "read", timeout=10, started=100.0)
    with pytest.raises(DotoDeliveryError, match=r"timed out after 10 s .*last status was 'delivered'"):
        wait.after_read(sent("delivered"), 110.0)
    with pytest.raises(DotoDeliveryError, match=WHY):
        wait.after_read(sent("failed", external_error=WHY), 100.0)


@pytest.mark.parametrize(("wait_for", "timeout"), [(None, 10), ("delivred", 10), ("sent", -1)])
def test_a_wait_needs_a_status_and_a_timeout(wait_for, timeout):
    with pytest.raises(DotoConfigError):
        DeliveryWait(7, wait_for, timeout, started=0.0)
