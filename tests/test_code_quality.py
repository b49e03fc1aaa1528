"""ruff and mypy are part of the suite, so the one test command keeps the code clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the test extra: pip install -e '.[test]'")
    return found


def test_ruff_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean() -> None:
    proc = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_core_is_sans_io_and_reads_no_clock_or_disk() -> None:
    """bytes and clocks in, bytes and events out: no asyncio, serial, Textual, time source or file in
    tuimeter/core/ outside profile loading (profile.py), which the sessions call, not the machines."""
    import ast

    forbidden_modules = {"asyncio", "serial", "serial_asyncio_fast", "textual", "time", "os", "socket"}
    for path in sorted((ROOT / "tuimeter" / "core").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {n.split(".")[0] for n in names} & forbidden_modules, f"{path.name}: imports {names}"
            if isinstance(node, ast.Attribute) and node.attr in ("now", "today", "utcnow"):
                assert not (isinstance(node.value, ast.Name) and node.value.id == "datetime"), \
                    f"{path.name}:{node.lineno} reads the wall clock"
            if path.name != "profile.py" and isinstance(node, ast.Name) and node.id in ("load_profile", "open"):
                raise AssertionError(f"{path.name}:{node.lineno} loads from disk ({node.id})")
