"""The demo module: its conversation printout, its environment, and one real end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_doto.testing.stack import demo


def test_conversation_printout_marks_private_notes_and_names_senders() -> None:
    messages = [
        {
            "created_at": 0,
            "content": "Hi, where is my order?",
            "private": False,
            "sender": {"id": 1, "name": "Maria Lopez", "type": "Contact"},
        },
        {
            "created_at": 60,
            "content": "Check the courier\nthen reply",
            "private": True,
            "sender": {"id": 2, "name": "Sam", "type": "User"},
        },
        {
            "created_at": 61,
            "content": "Hello!",
            "private": False,
            "sender": {"name": "Doto Bot", "type": "AgentBot"},
        },
        {"created_at": 62, "content": "Assigned", "private": False},
        {"created_at": 63, "content": "gone", "private": False, "content_attributes": {"deleted": True}},
    ]
    lines = demo.format_conversation(messages)
    assert len(lines) == 6
    assert "Maria Lopez (customer)  Hi, where is my order?" in lines[0]
    assert "Sam (agent)" in lines[1] and "[private note] Check the courier" in lines[1]
    assert lines[2].strip() == "then reply" and lines[2].index("then") == lines[1].index("[private")
    assert "Doto Bot (bot)" in lines[3] and "[private note]" not in lines[3]
    assert "(system)" in lines[4]
    assert "[deleted] gone" in lines[5]


def test_airflow_env_isolates_the_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_ELSE", "http://example.com")
    env = demo.airflow_env(tmp_path, tmp_path / "dags", '{"conn_type": "doto"}')
    assert {k for k in env if k.startswith("AIRFLOW")} == {
        "AIRFLOW_HOME",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW_CONN_DOTO_DEFAULT",
    }
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


@pytest.mark.deployment
@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_demo_runs_end_to_end_without_printing_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flavor: str
) -> None:
    """The real demo: airflow db migrate and airflow dags test as subprocesses, the emulator here."""
    token = "demo-token-that-must-not-appear"
    monkeypatch.setattr(demo.secrets, "token_urlsafe", lambda n: token)

    code = demo.main(["--delay", "1", "--flavor", flavor])

    out = capsys.readouterr().out
    assert code == 0, out
    assert token not in out
    assert "DAG run succeeded" in out
    after, account = out.split("[4/6]", 1)[1].split("[5/6]", 1)
    assert f"Maria Lopez (customer)  {demo.ESCALATION}" in after
    assert after.count("[private note] **Escalation**") == 1
    assert after.count("Thanks for letting us know.") == 1
    assert f"> {demo.ESCALATION}" in after
    # The account watcher: the event names the one conversation of four where the customer wrote.
    found = account.split("event: ", 1)[1].split("\n", 1)[0]
    assert found.startswith("1 message(s), (conversation, message) [(2, ")
    answered = account.split("[6/6]", 1)[1]
    assert "DAG run succeeded" in answered and "Conversation 2 as it now stands:" in answered
    assert f"Ken Ito (customer)  {demo.ACCOUNT_ESCALATION}" in answered
    assert answered.count("[private note] **Escalation**") == 1
    assert answered.count("Thanks for letting us know.") == 1
