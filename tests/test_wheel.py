"""The wheel holds what users run: built from this tree, installed into a fresh venv, used from elsewhere.

The venv gets the wheel alone (pinned by constraints.txt, from uv's cache), so nothing of the
repository is on its path; its commands run from a temporary directory, outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_doto"
# Each shipped example DAG file and the DAGs it defines.
EXAMPLE_DAGS = {
    "doto_daily_report": ("doto_daily_report",),
    "doto_escalation": ("doto_escalation",),
    "doto_escalation_watcher": ("doto_escalation_watcher",),
    "doto_export": ("doto_export",),
    "doto_follow_up": ("doto_follow_up", "doto_backlog_nudge"),
    "doto_new_message_watcher": ("doto_new_message_watcher",),
}


def find_uv() -> str:
    candidates = [Path(sys.executable).with_name("uv"), REPO / ".venv" / "bin" / "uv"]
    found = next((str(p) for p in candidates if p.is_file()), None) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (bash scripts/bootstrap.sh puts it in .venv)")
    return found


@dataclass
class Installed:
    wheel: Path
    python: Path
    cwd: Path  # outside the repository

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
        env.update({"AIRFLOW_HOME": str(self.cwd / "airflow-home"), "COLUMNS": "400"})
        return subprocess.run(
            [str(self.python), *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    uv = find_uv()
    root = tmp_path_factory.mktemp("wheel")
    build = [uv, "build", "--quiet", "--wheel", "--out-dir", str(root / "dist"), str(REPO)]
    subprocess.run(build, check=True, timeout=300)
    (wheel,) = (root / "dist").glob("*.whl")
    venv = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    subprocess.run([*install, "-c", str(REPO / "constraints.txt"), str(wheel)], check=True, timeout=600)
    cwd = root / "elsewhere"
    cwd.mkdir()
    yield Installed(wheel, python, cwd)


def test_wheel_holds_license_types_emulator_and_example_dags(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    assert f"{dist_info}/licenses/LICENSE" in names
    assert f"{PACKAGE}/py.typed" in names
    testing = {
        "__init__",
        "emulator/__init__",
        "emulator/__main__",
        "emulator/server",
        "emulator/pytest_plugin",
        "emulator/seed",
        "stack/__init__",
        "stack/__main__",
        "stack/airflow_stack",
        "stack/local_airflow",
        "stack/demo",
    }
    assert {f"{PACKAGE}/testing/{m}.py" for m in testing} <= names
    assert {f"{PACKAGE}/example_dags/{d}.py" for d in EXAMPLE_DAGS} <= names
    templates = {
        f"{PACKAGE}/example_dags/templates/{t}" for t in ("escalation_note.md.j2", "follow_up.md.j2")
    }
    assert templates <= names
    assert not {n for n in names if "__pycache__" in n or n.startswith("tests/")}
    entry_points = zipfile.ZipFile(installed.wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "[apache_airflow_provider]" in entry_points and "[pytest11]" in entry_points
    metadata = zipfile.ZipFile(installed.wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata


def test_installed_provider_info_has_a_documentation_url(installed: Installed) -> None:
    code = f"from {PACKAGE}.get_provider_info import get_provider_info; print(get_provider_info()['documentation-url'])"
    result = installed.run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("https://")


def test_installed_demo_and_stack_find_the_shipped_example_dags(installed: Installed) -> None:
    """From outside the repository, the demo and the stack default to the DAGs inside the installed package."""
    site_dags = installed.python.parents[1] / "lib"
    for command in ("stack.demo", "stack"):
        result = installed.run("-m", f"{PACKAGE}.testing.{command}", "--help")
        assert result.returncode == 0, result.stderr
        assert "shipped in the package" in result.stdout
    result = installed.run("-m", f"{PACKAGE}.testing.stack.demo", "--help")
    default = Path(result.stdout.split("shipped in the package, ", 1)[1].split(")", 1)[0])
    assert default.is_relative_to(site_dags) and (default / "doto_escalation.py").is_file()

    # Every shipped example DAG parses in the installed Airflow, templates beside it.
    parse = (
        "import runpy\n"
        f"from {PACKAGE}.testing.stack.local_airflow import EXAMPLE_DAGS\n"
        "for path in sorted(EXAMPLE_DAGS.glob('*.py')):\n"
        "    found = [v.dag_id for v in runpy.run_path(str(path)).values() if type(v).__name__ == 'DAG']\n"
        "    print(path.stem, *found)\n"
    )
    result = installed.run("-c", parse)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [" ".join([f, *d]) for f, d in EXAMPLE_DAGS.items()]


@pytest.mark.deployment
def test_installed_demo_runs_end_to_end(installed: Installed) -> None:
    """``python -m airflow_provider_doto.testing.stack.demo`` after ``pip install``: real Airflow, no repository."""
    result = installed.run("-m", f"{PACKAGE}.testing.stack.demo", "--delay", "1", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "DAG run succeeded" in result.stdout
