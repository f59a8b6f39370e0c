"""Plain-text table of ``list_datasets()`` rows, for ``python -m harness datasets``."""

from __future__ import annotations

COLUMNS = ("spec", "available", "count", "where")


def format_table(rows: list[dict]) -> str:
    """Return ``rows`` (from ``list_datasets``) as an aligned text table, one dataset a line."""
    cells = [[str(c).upper() for c in COLUMNS]]
    for row in rows:
        count = "" if row.get("count") is None else f"{row['count']:,}"
        cells.append([row["spec"], "yes" if row["available"] else "no", count, row["where"]])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    # The last column (a path) is not padded, so long paths do not widen the table.
    return "\n".join(
        "  ".join([*(cell.ljust(w) if i != 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))), line[-1]])
        for line in cells
    )
