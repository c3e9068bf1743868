"""Imports point one way: seqlab <- forecasting | pde | rl <- pipelines."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"forecasting", "pde", "rl"}
ALLOWED = {
    "seqlab": {"seqlab"},
    "forecasting": {"seqlab", "forecasting"},
    "pde": {"seqlab", "pde"},
    "rl": {"seqlab", "rl"},
    "pipelines": {"seqlab", "pipelines", *FIELDS},
}
OURS = set(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


def violations() -> list[str]:
    bad = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for target in sorted(imported_packages(path) - allowed):
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    return bad


def test_import_direction():
    assert violations() == []


def test_the_check_catches_a_wrong_arrow(tmp_path, monkeypatch):
    fake = tmp_path / "seqlab"
    fake.mkdir()
    (fake / "bad.py").write_text("from forecasting.data import read_wide\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations() == ["seqlab/bad.py imports forecasting"]


@pytest.mark.parametrize("module", ["seqlab.cli", "forecasting.cli"])
def test_cli_modules_import_neither_torch_nor_mlflow(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'mlflow', 'polars') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
