"""Print reports as readable tables (rich) or as JSON for scripts.

A report is any object with ``to_dict()`` (the JSON form) and ``tables()`` returning
``[(title, column names, rows)]``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table


class Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def tables(self) -> list[tuple[str, list[str], list[list[Any]]]]: ...


def render(report: Report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return
    console = Console()
    for title, columns, rows in report.tables():
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(
                column, justify="right" if rows and isinstance(_first(rows, column, columns), int | float) else "left"
            )
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)


def _first(rows: list[list[Any]], column: str, columns: list[str]) -> Any:
    return rows[0][columns.index(column)]
