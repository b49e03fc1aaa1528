"""Reading tuimeter's record files back, tolerating the partial last line a crash can leave."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordFile:
    records: list[dict[str, Any]]
    partial: str | None  # an incomplete last line, if the writer was killed mid-line


def _split(path: Path) -> tuple[list[str], str | None]:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()  # after the last newline: empty, or a line cut short
    return [ln for ln in lines if ln], (tail or None)


def read_jsonl(path: str | Path) -> RecordFile:
    """Every complete record; a bad complete line raises ValueError (it means real corruption)."""
    lines, partial = _split(Path(path))
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise ValueError(f"{path}: line {n} is not a JSON record") from None
    return RecordFile(records, partial)


def read_csv(path: str | Path) -> RecordFile:
    lines, partial = _split(Path(path))
    rows = list(csv.DictReader(io.StringIO("\n".join(lines) + "\n")))
    return RecordFile(rows, partial)
