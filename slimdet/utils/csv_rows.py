"""Result rows as CSV: the one writer of slimdet's ``*.csv`` result tables."""
from __future__ import annotations

import csv
from typing import Mapping, Sequence

__all__ = ["write_csv"]


def write_csv(path: str, rows: Sequence[Mapping]) -> None:
    """Write ``rows`` (dicts with the same keys, in column order) to ``path`` with a header;
    raises ``ValueError`` for no rows, which would give a file without columns."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
