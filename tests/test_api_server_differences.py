"""Server differences every flavor must survive (issue 12 item 4), in the pure core: sender-type
spellings, Chatwoot's 422 flood guard, the content limit, bot tokens, 404s that are not Doto's,
the connection check and deletes in a conversation that does not exist."""

from __future__ import annotations

import json
import pickle

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConfigError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoValidationError,
)
from airflow_provider_doto.triggers.doto import FATAL_ERRORS

T0 = 1_712_001_000
BASE = "https://doto.example.test/chat"
TOKEN = "tok-SECRET-3f9a7c"
POST = api.send_request(1, 42, "hello")
GET = api.list_request(1, 42)
RAILS_404 = {"status": 404, "error": "Not Found"}
BOT_401 = {"error": "Access to this endpoint is not authorized for bots"}
DOTO_404 = {"error": "Resource could not be found"}


def answer(payload, status: int = 200, base_url: str | None = BASE) -> api.DotoResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return api.DotoResponse(status, {}, body, base_url=base_url)


def message(sender_type: str | None, mid: int = 1) -> api.Message:
    payload: dict = {"id": mid, "content": "hi", "message_type": 0, "created_at": T0}
    if sender_type is not None:
        payload["sender"] = {"id": 3, "name": "Sam", "type": sender_type}
    return api.parse_message(payload)


def settings(account_id: int = 1) -> api.DotoSettings:
    return api.DotoSettings(base_url=BASE, token=TOKEN, account_id=account_id)


def drive(flow, answers):
    """Run a flow against a list of canned answers; returns (result, requests sent)."""
    sent: list[api.DotoRequest] = []
    pending = list(answers)

    def send(request):
        sent.append(request)
        return pending.pop(0)

    return api.run_flow(flow, send), sent


# -- a. sender types --------------------------------------------------------------------------


class TestSenderTypes:
    @pytest.mark.parametrize(
        ("wanted", "actual"),
        [
            ("Contact", "contact"),
            ("contact", "Contact"),
            ("Contact", "Contact"),
            ("User", "user"),
            ("user", "User"),
            ("AgentBot", "agent_bot"),
            ("agent_bot", "AgentBot"),
            ("agentbot", "Agent_Bot"),
        ],
    )
    def test_spellings_match(self, wanted, actual):
        assert api.MessageFilter(sender_types=[wanted]).matches(message(actual))

    @pytest.mark.parametrize(
        ("wanted", "actual"), [("Contact", "user"), ("AgentBot", "agent"), ("User", None)]
    )
    def test_other_types_do_not(self, wanted, actual):
        assert not api.MessageFilter(sender_types=[wanted]).matches(message(actual))

    def test_to_dict_keeps_the_users_spelling(self):
        f = api.MessageFilter(sender_types=["AgentBot", "contact"])
        assert f.to_dict()["sender_types"] == ["AgentBot", "contact"]
        assert api.MessageFilter.from_dict(f.to_dict()) == f


# -- b. the 422 flood guard -------------------------------------------------------------------


class TestFloodGuard:
    def test_is_rate_limiting(self):
        error = api.error_for_status(POST, answer({"error": "Too many messages"}, 422))
        assert type(error) is DotoRateLimitError
        assert (error.status, error.retry_after, error.doto_error) == (422, 15.0, "Too many messages")
        assert "flood guard" in str(error) and "HTTP 422" in str(error)

    def test_other_422s_stay_validation_errors(self):
        error = api.error_for_status(
            POST, answer({"error": "Incoming messages are only allowed in Api inboxes"}, 422)
        )
        assert type(error) is DotoValidationError

    def test_retried_even_for_a_post(self):
        error = api.error_for_status(POST, answer({"error": "Validation failed: Too many messages"}, 422))
        assert api.is_retryable(POST, error)
        policy = api.RetryPolicy(backoff=1.0)
        # No Retry-After from Chatwoot: a quarter of its one-minute window each time, so the
        # default budget's four waits see the window slide (capped by the policy's max_wait).
        assert [policy.wait_for(n, error) for n in (1, 2, 3)] == [15.0, 15.0, 15.0]
        assert api.RetryPolicy(max_wait=5).wait_for(1, error) == 5

    def test_not_fatal_for_the_trigger(self):
        assert not issubclass(DotoRateLimitError, DotoValidationError)
        error = api.error_for_status(POST, answer({"error": "Too many messages"}, 422))
        assert not isinstance(error, FATAL_ERRORS)

    def test_survives_pickling(self):
        error = api.error_for_status(POST, answer({"error": "Too many messages"}, 422))
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again), again.status) == (DotoRateLimitError, str(error), 422)


# -- c. content limit -------------------------------------------------------------------------


class TestContentLimit:
    def test_at_the_limit_is_fine(self):
        request = api.send_request(1, 42, "x" * api.MAX_CONTENT_LENGTH)
        assert len(request.json["content"]) == 150_000

    def test_over_the_limit_is_refused_before_sending(self):
        with pytest.raises(DotoConfigError, match=r"150,001 characters.*at most 150,000"):
            api.validate_send("x" * 150_001, "outgoing", False, "text", None)
        flow = api.send_message_flow(1, 42, "y" * 200_000)
        with pytest.raises(DotoConfigError, match=r"200,000 characters"):
            next(flow)


# -- d. bot tokens ----------------------------------------------------------------------------


class TestBotToken:
    def test_named_as_a_bot_token(self):
        error = api.error_for_status(GET, answer(BOT_401, 401))
        assert type(error) is DotoAuthError and error.status == 401
        text = str(error)
        assert "agent bot" in text and "only send" in text and "user's) access token" in text

    def test_wrong_token_still_points_at_the_token(self):
        error = api.error_for_status(GET, answer({"error": "Invalid Access Token"}, 401))
        assert "check the connection's API Token" in str(error) and "bot" not in str(error)


# -- e. 404s name the base URL ----------------------------------------------------------------


class TestNotFound:
    def test_doto_404_names_the_base_url(self):
        error = api.error_for_status(GET, answer(DOTO_404, 404))
        assert type(error) is DotoNotFoundError
        assert str(error).endswith(f"Resource could not be found (at {BASE})")
        assert "no Doto API" not in str(error)

    @pytest.mark.parametrize("body", [RAILS_404, b"<html><h1>Not Found</h1></html>", b"", {}])
    def test_a_404_that_is_not_doto_means_a_wrong_base_url(self, body):
        error = api.error_for_status(GET, answer(body, 404))
        assert type(error) is DotoNotFoundError and error.status == 404
        assert f"no Doto API at {BASE}: check the Base URL (its path)" in str(error)
        assert "<html>" not in str(error)

    def test_without_a_base_url(self):
        response = api.DotoResponse(404, {}, json.dumps(RAILS_404).encode())  # old constructor call
        assert "no Doto API at this Base URL" in str(api.error_for_status(GET, response))


# -- f. the connection check ------------------------------------------------------------------

PROFILE = {
    "id": 5,
    "name": "Ada Lovelace",
    "access_token": TOKEN,  # Chatwoot's profile answer carries the token: never echoed
    "accounts": [
        {"id": 3, "name": "Other", "role": "agent"},
        {"id": 1, "name": "Acme", "role": "administrator"},
    ],
}


class TestCheckConnection:
    def test_connected(self):
        (ok, text), sent = drive(api.check_connection_flow(settings()), [answer(PROFILE)])
        assert ok
        assert text == f"Connected to Doto at {BASE} as Ada Lovelace, account 1 (administrator)."
        assert [(r.method, r.path) for r in sent] == [("GET", "/api/v1/profile")]

    def test_account_the_token_does_not_have(self):
        (ok, text), _ = drive(api.check_connection_flow(settings(9)), [answer(PROFILE)])
        assert not ok
        assert "does not belong to account 9" in text
        assert "3 (Other), 1 (Acme)" in text and "Account ID" in text
        assert TOKEN not in text

    def test_no_accounts(self):
        (ok, text), _ = drive(api.check_connection_flow(settings()), [answer({**PROFILE, "accounts": []})])
        assert not ok and "no account" in text

    def test_wrong_token(self):
        (ok, text), _ = drive(
            api.check_connection_flow(settings()), [answer({"error": "Invalid Access Token"}, 401)]
        )
        assert not ok and "HTTP 401" in text and "Invalid Access Token" in text

    def test_bot_token(self):
        (ok, text), _ = drive(api.check_connection_flow(settings()), [answer(BOT_401, 401)])
        assert not ok and "agent bot" in text and "only send" in text

    @pytest.mark.parametrize("body", [RAILS_404, b"<html>Not Found</html>"])
    def test_wrong_path(self, body):
        (ok, text), sent = drive(api.check_connection_flow(settings()), [answer(body, 404)])
        assert not ok and f"no Doto API at {BASE}" in text
        assert len(sent) == 1

    @pytest.mark.parametrize("body", [{"payload": []}, [1, 2], b"<html>hello</html>"])
    def test_a_200_that_is_not_a_profile(self, body):
        (ok, text), _ = drive(api.check_connection_flow(settings()), [answer(body)])
        assert not ok and "hello" not in text

    def test_server_error(self):
        (ok, text), _ = drive(api.check_connection_flow(settings()), [answer({}, 503)])
        assert not ok and "HTTP 503" in text

    def test_server_without_profile_falls_back(self):
        (ok, text), sent = drive(
            api.check_connection_flow(settings()), [answer(DOTO_404, 404), answer({"payload": []})]
        )
        assert ok and "was not checked" in text
        assert [r.path for r in sent] == ["/api/v1/profile", "/api/v1/accounts/1/conversations/1/messages"]

    def test_fallback_reports_a_bad_token(self):
        (ok, text), _ = drive(
            api.check_connection_flow(settings()),
            [answer(DOTO_404, 404), answer({"error": "Invalid Access Token"}, 401)],
        )
        assert not ok and "HTTP 401" in text

    def test_never_says_the_token(self):
        for answers in ([answer(PROFILE)], [answer({**PROFILE, "accounts": [{"id": 2}]})]):
            (_, text), _ = drive(api.check_connection_flow(settings()), answers)
            assert TOKEN not in text


# -- g. delete with missing_ok in a conversation that does not exist --------------------------


class TestDeleteMissingConversation:
    def test_missing_message_in_an_existing_conversation(self):
        result, sent = drive(
            api.delete_message_flow(1, 42, 9, missing_ok=True),
            [answer(DOTO_404, 404), answer({"payload": []})],
        )
        assert result is False
        check = sent[1]
        assert (check.method, check.path) == ("GET", "/api/v1/accounts/1/conversations/42/messages")
        assert check.params == {"after": 2**31 - 1}

    def test_missing_conversation_raises(self):
        with pytest.raises(DotoNotFoundError, match=r"conversation 42 does not exist in account 1") as err:
            drive(api.delete_message_flow(1, "42", 9, missing_ok=True), [answer(DOTO_404, 404)] * 2)
        assert err.value.status == 404 and err.value.method == "DELETE"
        assert BASE in str(err.value)

    def test_wrong_base_url_is_not_already_gone(self):
        with pytest.raises(DotoNotFoundError, match=r"no Doto API at"):
            drive(api.delete_message_flow(1, 42, 9, missing_ok=True), [answer(RAILS_404, 404)] * 2)

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [(401, {"error": "Invalid Access Token"}, DotoAuthError), (500, {}, DotoServerError)],
    )
    def test_a_failing_check_is_raised(self, status, body, error):
        with pytest.raises(error):
            drive(
                api.delete_message_flow(1, 42, 9, missing_ok=True),
                [answer(DOTO_404, 404), answer(body, status)],
            )

    def test_a_check_that_is_not_doto_is_raised(self):
        with pytest.raises(DotoResponseError):
            drive(
                api.delete_message_flow(1, 42, 9, missing_ok=True), [answer(DOTO_404, 404), answer(b"<html>")]
            )

    def test_without_missing_ok_there_is_no_check(self):
        with pytest.raises(DotoNotFoundError) as err:
            drive(api.delete_message_flow(1, 42, 9), [answer(DOTO_404, 404)])
        assert "conversation 42 does not exist" not in str(err.value)

    def test_soft_delete_twice_is_fine(self):
        deleted = {"id": 9, "content": "This message was deleted", "message_type": 1, "created_at": T0}
        deleted["content_attributes"] = {"deleted": True}
        for _ in range(2):
            result, sent = drive(api.delete_message_flow(1, 42, 9, missing_ok=True), [answer(deleted)])
            assert result is True and len(sent) == 1
