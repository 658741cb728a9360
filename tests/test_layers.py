"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and they would catch a break.

The contracts say who may import whom: station and central never each other, the kernel
neither, the simulation nobody but itself, and inside central pages over features over
access over the core, with each import between features listed. ``lint-imports`` prints the
chain that breaks one.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fleet", "station", "central", "simulation")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True)


def test_the_layer_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages' Python files and pyproject.toml, to break a contract in without touching the tree."""
    copy = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=_not_python)
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


def _not_python(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or ((Path(folder) / n).is_file() and not n.endswith(".py"))}


@pytest.mark.parametrize(
    ("importer", "imported", "contract"),
    [
        ("station/__init__.py", "central.core.errors", "station and central never import each other"),
        ("central/core/errors.py", "station.store", "station and central never import each other"),
        ("fleet/clock.py", "station", "the kernel (fleet) imports neither"),
        ("central/registry/battery.py", "simulation.force.usage", "only the simulation itself"),
        ("central/uploads/tus.py", "central.rollout.plan", "features reach each other only through public modules"),
        ("central/core/pagination.py", "central.access.auth", "features reach each other only through public modules"),
        ("central/web/charts.py", "central.core.app", "only the composition root imports the composition root"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree_copy, importer, imported, contract):
    module = tree_copy / importer
    original = module.read_text()
    module.write_text(f"{original}\nimport {imported}  # noqa\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        module.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [name] = [c["name"] for c in contracts if contract in c["name"]]
    assert f"{name} BROKEN" in " ".join(result.stdout.split()), result.stdout  # long names wrap
