"""The lock: ``constraints.txt`` pins what CI installed, and agrees with ``pyproject.toml``."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r'^(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[^ ;]+) ; python_version == "3\.11"$')
ENVIRONMENT = {"python_version": "3.11", "extra": ""}


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate((REPO / "constraints.txt").read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"constraints.txt:{number}: not 'name==version ; python_version == \"3.11\"'"
        found[canonicalize_name(match["name"])] = match["version"]
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = [*project["dependencies"]]
    for extra in ("dev", "ray", "postgres"):
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


def test_every_requirement_is_pinned_to_a_version_it_allows() -> None:
    pinned = pins()
    problems = []
    for requirement in requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(ENVIRONMENT):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name}: not in constraints.txt")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}: constraints.txt pins {version}, pyproject.toml asks {requirement}")
    assert not problems, "constraints.txt no longer matches pyproject.toml: " + "; ".join(problems)


def test_make_and_ci_install_with_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile and "-c $(CONSTRAINTS)" in makefile
    for script in ("provision-ray.sh", "provision-postgres.sh"):
        assert "-c constraints.txt" in (REPO / ".ci" / script).read_text(), script
