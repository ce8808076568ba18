"""The floors in pyproject.toml are the versions the test matrix proves (constraints/matrix.tsv).

The "lowest" environment is resolved with uv's ``--resolution lowest-direct``: every direct
dependency at the lowest version pyproject allows and that still installs. If a floor there is
not what pyproject says, pyproject claims a version the suite never ran on.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("name", "venv", "constraints", "exclude_newer", "resolution", "extras", "requirements")


def matrix() -> list[dict[str, str]]:
    lines = (REPO / "constraints" / "matrix.tsv").read_text().splitlines()
    return [dict(zip(COLUMNS, line.split("\t"), strict=True)) for line in lines if not line.startswith("#")]


def pins(constraints: str) -> dict[str, Version]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (REPO / constraints).read_text(), re.M)
    return {name.lower(): Version(version) for name, version in found}


def floors() -> dict[str, Version]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    result = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        (floor,) = [s.version for s in req.specifier if s.operator == ">="]
        result[req.name.lower()] = Version(floor)
    return result


def test_every_runtime_dependency_has_a_floor():
    assert {"apache-airflow", "apache-airflow-providers-common-compat"} <= set(floors())


def test_lowest_direct_environment_runs_exactly_the_floors():
    (lowest,) = [env for env in matrix() if env["resolution"] == "lowest-direct"]
    pinned = pins(lowest["constraints"])
    drift = {
        name: (str(floor), str(pinned.get(name)))
        for name, floor in floors().items()
        if pinned.get(name) != floor
    }
    assert not drift, f"pyproject floor vs {lowest['constraints']} (bump the floor or re-resolve): {drift}"


def test_matrix_covers_the_floor_minor_and_names_its_versions():
    floor = floors()["apache-airflow"]
    airflows = {env["name"]: pins(env["constraints"])["apache-airflow"] for env in matrix()}
    for name, version in airflows.items():
        if re.fullmatch(r"\d+\.\d+\.\d+", name):
            assert version == Version(name), f"environment {name} pins apache-airflow {version}"
    minors = {(v.major, v.minor) for v in airflows.values()}
    assert (floor.major, floor.minor) in minors
    # The default environment (first line) is the newest Airflow of the matrix.
    assert airflows[matrix()[0]["name"]] == max(airflows.values())


def test_readme_states_the_floor_and_the_tested_versions():
    floor = floors()["apache-airflow"]
    readme = (REPO / "README.md").read_text()
    assert f"Apache Airflow >= {floor.major}.{floor.minor}" in readme
    for env in matrix():
        if re.fullmatch(r"\d+\.\d+\.\d+", env["name"]):
            assert env["name"] in readme
