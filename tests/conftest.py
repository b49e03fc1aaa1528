from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


def load_captures() -> list[dict[str, Any]]:
    doc = json.loads((DATA / "teardown-thread.json").read_text())
    return list(doc["captures"])


@pytest.fixture
def captures() -> list[dict[str, Any]]:
    return load_captures()
