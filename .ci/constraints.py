"""Print pip constraints pinning the installed version of every package ``llmodel[dev]`` pulls in.

The requirements come from pyproject.toml, their own requirements from what is installed, so run it (Python
3.11+) where the tests just passed: ``python .ci/constraints.py > constraints.txt``. torch is left out (its build
is chosen per machine and installed first, see the README), and so is LLModel itself.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
EXTRA = "dev"
LEFT_OUT = {"llmodel", "torch"}


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def project_requirements() -> list[Requirement]:
    """The project's dependencies and those of its dev extra, as pyproject.toml states them."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"][EXTRA]]
    return [Requirement(line) for line in lines]


def pulled_in(requirements: list[Requirement]) -> dict[str, str]:
    """Installed name → version of every distribution ``requirements`` need, transitively (markers evaluated
    for this interpreter)."""
    found: dict[str, str] = {}
    pending = [(r, {"extra": ""}) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, environment = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        key = (_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(requirement.name)
        found[_name(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            pending += [(Requirement(line), {"extra": extra}) for extra in requirement.extras or {""}]
    return found


def main() -> None:
    pins = pulled_in(project_requirements())
    print(
        "# The tested versions: pip install -e '.[dev]' -c constraints.txt (python .ci/constraints.py refreshes)"
    )
    for name in sorted(set(pins) - LEFT_OUT):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    sys.exit(main())
