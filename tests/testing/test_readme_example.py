"""Test a DAG end to end: real Airflow, real HTTP, a local Doto."""

import runpy
from pathlib import Path

from airflow_provider_doto.testing.emulator import DotoEmulator

DAG_FILE = Path(__file__).parents[1] / "dags" / "emulator_readme_example.py"


def test_auto_reply(doto_emulator: DotoEmulator, airflow_db) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "Hi, I need help with my order", created_at=1_767_225_600)
    doto_emulator.add_message(cid, "Where is parcel #48213?", message_type="incoming")

    dag = runpy.run_path(str(DAG_FILE))["dag"]  # import the DAG file
    dag_run = dag.test(run_conf={"conversation_id": cid})

    assert dag_run.state == "success"
    *_, reply = doto_emulator.messages(cid)
    assert reply["message_type"] == "outgoing"
    assert reply["content"] == "Thanks! An agent will look into: Where is parcel #48213?"


# --- end of the README example; below, a check that the README still shows it verbatim ---
# (This file stays in tests/testing/, not tests/testing/emulator/: like the example's
# tests/test_auto_reply.py, it finds its DAG at Path(__file__).parents[1] / "dags", here tests/dags.)

README_HEADING = "Testing your own DAGs with the Doto emulator"


def test_readme_shows_this_example_verbatim() -> None:
    import re

    repo = Path(__file__).parents[2]
    candidates = [repo / "README.md", repo / "docs" / "emulator.md"]
    texts = [p.read_text() for p in candidates if p.exists()]
    heading = re.compile(rf"^#+ {re.escape(README_HEADING)}$", re.M)  # a heading, not a mere link
    readme = next((text for text in texts if heading.search(text)), None)
    assert readme is not None, f"neither README.md nor docs/emulator.md has {README_HEADING!r}"
    blocks = [block.strip() for block in re.findall(r"```python\n(.*?)```", readme, re.S)]
    example = Path(__file__).read_text().split("\n\n# --- end of the README example")[0]
    assert example.strip() in blocks
    assert DAG_FILE.read_text().strip() in blocks
