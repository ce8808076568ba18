"""``_flows``: the drivers, and the send, delete and connection-check flows."""

from __future__ import annotations

import pytest

from airflow_provider_doto.api._flows import (
    check_connection_flow,
    delete_message_flow,
    run_flow,
    send_message_flow,
)
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoNotFoundError,
    DotoResponseError,
    DotoServerError,
)

from ._support import BASE, BOT_401, DOTO_404, RAILS_404, T0, TOKEN, answer, doto_settings, drive, msg, ok


class TestFlowsByHand:
    def test_send_flow(self):
        flow = send_message_flow(1, 42, "hi", private=True)
        request = next(flow)
        assert request.json["private"] is True
        with pytest.raises(StopIteration) as done:
            flow.send(ok(msg(9, T0, "outgoing", private=True)))
        assert done.value.value.id == 9

    @pytest.mark.parametrize(
        ("status", "missing_ok", "outcome"),
        [
            (200, False, True),
            (204, True, True),
            (404, True, False),
            (404, False, DotoNotFoundError),
            (500, True, DotoServerError),
            (401, True, DotoAuthError),
        ],
    )
    def test_delete_flow(self, status, missing_ok, outcome):
        flow = delete_message_flow(1, 42, 9, missing_ok=missing_ok)
        assert next(flow).path.endswith("/messages/9")
        response = ok({"error": "Resource could not be found"}, status=status)
        if isinstance(outcome, bool):
            with pytest.raises(StopIteration) as done:
                check = flow.send(response)
                # missing_ok: one list request tells a missing message from a missing conversation
                assert (check.method, check.params) == ("GET", {"after": 2**31 - 1})
                flow.send(ok({"payload": []}))
            assert done.value.value is outcome
        else:
            with pytest.raises(outcome):
                flow.send(response)

    def test_run_flow_returns_the_value(self):
        sent = []

        def send(request):
            sent.append(request)
            return ok(msg(1, T0, 1))

        assert run_flow(send_message_flow(1, 42, "x"), send).id == 1
        assert [r.method for r in sent] == ["POST"]


# --------------------------------------------------------------------------------------------
# The connection check and deletes in a conversation that does not exist
# --------------------------------------------------------------------------------------------


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
        (ok, text), sent = drive(check_connection_flow(doto_settings()), [answer(PROFILE)])
        assert ok
        assert text == f"Connected to Doto at {BASE} as Ada Lovelace, account 1 (administrator)."
        assert [(r.method, r.path) for r in sent] == [("GET", "/api/v1/profile")]

    def test_account_the_token_does_not_have(self):
        (ok, text), _ = drive(check_connection_flow(doto_settings(9)), [answer(PROFILE)])
        assert not ok
        assert "does not belong to account 9" in text
        assert "3 (Other), 1 (Acme)" in text and "Account ID" in text
        assert TOKEN not in text

    def test_no_accounts(self):
        (ok, text), _ = drive(check_connection_flow(doto_settings()), [answer({**PROFILE, "accounts": []})])
        assert not ok and "no account" in text

    def test_wrong_token(self):
        (ok, text), _ = drive(
            check_connection_flow(doto_settings()), [answer({"error": "Invalid Access Token"}, 401)]
        )
        assert not ok and "HTTP 401" in text and "Invalid Access Token" in text

    def test_bot_token(self):
        (ok, text), _ = drive(check_connection_flow(doto_settings()), [answer(BOT_401, 401)])
        assert not ok and "agent bot" in text and "only send" in text

    @pytest.mark.parametrize("body", [RAILS_404, b"<html>Not Found</html>"])
    def test_wrong_path(self, body):
        (ok, text), sent = drive(check_connection_flow(doto_settings()), [answer(body, 404)])
        assert not ok and f"no Doto API at {BASE}" in text
        assert len(sent) == 1

    @pytest.mark.parametrize("body", [{"payload": []}, [1, 2], b"<html>hello</html>"])
    def test_a_200_that_is_not_a_profile(self, body):
        (ok, text), _ = drive(check_connection_flow(doto_settings()), [answer(body)])
        assert not ok and "hello" not in text

    def test_server_error(self):
        (ok, text), _ = drive(check_connection_flow(doto_settings()), [answer({}, 503)])
        assert not ok and "HTTP 503" in text

    def test_server_without_profile_falls_back(self):
        (ok, text), sent = drive(
            check_connection_flow(doto_settings()), [answer(DOTO_404, 404), answer({"payload": []})]
        )
        assert ok and "was not checked" in text
        assert [r.path for r in sent] == ["/api/v1/profile", "/api/v1/accounts/1/conversations/1/messages"]

    def test_fallback_reports_a_bad_token(self):
        (ok, text), _ = drive(
            check_connection_flow(doto_settings()),
            [answer(DOTO_404, 404), answer({"error": "Invalid Access Token"}, 401)],
        )
        assert not ok and "HTTP 401" in text

    def test_never_says_the_token(self):
        for answers in ([answer(PROFILE)], [answer({**PROFILE, "accounts": [{"id": 2}]})]):
            (_, text), _ = drive(check_connection_flow(doto_settings()), answers)
            assert TOKEN not in text


class TestDeleteMissingConversation:
    def test_missing_message_in_an_existing_conversation(self):
        result, sent = drive(
            delete_message_flow(1, 42, 9, missing_ok=True),
            [answer(DOTO_404, 404), answer({"payload": []})],
        )
        assert result is False
        check = sent[1]
        assert (check.method, check.path) == ("GET", "/api/v1/accounts/1/conversations/42/messages")
        assert check.params == {"after": 2**31 - 1}

    def test_missing_conversation_raises(self):
        with pytest.raises(DotoNotFoundError, match=r"conversation 42 does not exist in account 1") as err:
            drive(delete_message_flow(1, "42", 9, missing_ok=True), [answer(DOTO_404, 404)] * 2)
        assert err.value.status == 404 and err.value.method == "DELETE"
        assert BASE in str(err.value)

    def test_wrong_base_url_is_not_already_gone(self):
        with pytest.raises(DotoNotFoundError, match=r"no Doto API at"):
            drive(delete_message_flow(1, 42, 9, missing_ok=True), [answer(RAILS_404, 404)] * 2)

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [(401, {"error": "Invalid Access Token"}, DotoAuthError), (500, {}, DotoServerError)],
    )
    def test_a_failing_check_is_raised(self, status, body, error):
        with pytest.raises(error):
            drive(
                delete_message_flow(1, 42, 9, missing_ok=True),
                [answer(DOTO_404, 404), answer(body, status)],
            )

    def test_a_check_that_is_not_doto_is_raised(self):
        with pytest.raises(DotoResponseError):
            drive(delete_message_flow(1, 42, 9, missing_ok=True), [answer(DOTO_404, 404), answer(b"<html>")])

    def test_without_missing_ok_there_is_no_check(self):
        with pytest.raises(DotoNotFoundError) as err:
            drive(delete_message_flow(1, 42, 9), [answer(DOTO_404, 404)])
        assert "conversation 42 does not exist" not in str(err.value)

    def test_soft_delete_twice_is_fine(self):
        deleted = {"id": 9, "content": "This message was deleted", "message_type": 1, "created_at": T0}
        deleted["content_attributes"] = {"deleted": True}
        for _ in range(2):
            result, sent = drive(delete_message_flow(1, 42, 9, missing_ok=True), [answer(deleted)])
            assert result is True and len(sent) == 1
