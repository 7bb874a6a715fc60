"""What a Robyn output looks like: read models and input metadata out of the R objects.

Runs on R's thread (called back from ``RSession.inspect``) and returns plain Python data.
Every object is type-checked before use; anything unexpected raises a named RdsError.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mmm_backfill.config import RdsLimits
from mmm_backfill.errors import MissingColumn, RdsValueTooLarge, UnsafeObject, WrongColumnType, WrongObject
from mmm_backfill.summary_schema import (
    INPUT_DATES,
    INPUT_SCALARS,
    INPUT_VAR_LISTS,
    MAX_MODEL_ID_CHARS,
    MODEL_METRICS,
)
from worker.boundary.rbridge import RObject
from worker.summarize.summary import ModelRow

#: Column naming each model.
ID_COLUMN = "solID"
#: Robyn 3.x marks fronts in ``robynPareto``; older extractors expected the other two names.
FRONT_COLUMNS = ("robynPareto", "pareto_optimal", "robyn_pareto_front")
#: Summary metric → accepted column names in ``resultHypParam`` (Robyn writes ``decomp.rssd``).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in MODEL_METRICS},
    "decomp_rssd": ("decomp.rssd", "decomp_rssd"),
}
_ATOMIC = ("double", "integer", "logical", "character")
#: Longest model id; the aggregator holds summaries to the same bound.
MAX_ID_CHARS = MAX_MODEL_ID_CHARS
#: Longest text of ``input_metadata`` (a variable or dependent-variable name, an adstock type).
MAX_TEXT_CHARS = 1024
#: Most variables in one ``input_metadata`` list.
MAX_LIST_ITEMS = 10_000
#: Most columns of ``resultHypParam`` (Robyn writes 50-60).
MAX_COLUMNS = 10_000


def _column(table: RObject, name: str, rows: int) -> list[Any] | None:
    column = table.get(name)
    if column is None:
        return None
    try:
        column.require(*_ATOMIC)
        if len(column) != rows:  # before reading: a column may be millions long beside a one-row table
            raise WrongColumnType(f"{column.label}: {len(column)} values for {rows} rows")
        return column.values()
    except UnsafeObject:
        raise
    except WrongObject as exc:
        raise WrongColumnType(str(exc)) from None


def _numeric(values: list[Any], label: str) -> list[float | None]:
    if any(v is not None and (isinstance(v, bool | str) or not isinstance(v, int | float)) for v in values):
        raise WrongColumnType(f"{label}: expected numbers")
    return [None if v is None else float(v) for v in values]


def _front(value: Any) -> int | None:
    if value is None or value is False:
        return None
    if value is True:
        return 1
    if isinstance(value, int | float) and float(value).is_integer() and value >= 1:
        return int(value)
    return None


def _fronts(table: RObject, rows: int) -> list[int | None]:
    for name in FRONT_COLUMNS:
        values = _column(table, name, rows)
        if values is not None:
            if any(isinstance(v, str) for v in values):
                raise WrongColumnType(f"{table.label}${name}: expected front numbers")
            return [_front(v) for v in values]
    return [None] * rows


def _row_count(table: RObject) -> int:
    ids = table.get(ID_COLUMN)
    if ids is None:
        raise MissingColumn(f"{table.label}: no '{ID_COLUMN}' column (model ids)")
    return len(ids)


def read_models(root: RObject, max_models: int = RdsLimits.max_models) -> list[ModelRow]:
    """Models of ``OutputCollect$resultHypParam`` in table order; at most ``max_models`` rows."""
    root.require("list")
    table = root.get("resultHypParam")
    if table is None:
        raise WrongObject(f"{root.label}: no 'resultHypParam' element (not a Robyn OutputCollect)")
    table.require("data.frame")
    if len(table) > MAX_COLUMNS:
        raise RdsValueTooLarge(f"{table.label}: {len(table)} columns, over the limit of {MAX_COLUMNS}")
    rows = _row_count(table)
    if rows > max_models:
        raise RdsValueTooLarge(f"{table.label}: {rows} models, over the limit of {max_models}")
    ids = _column(table, ID_COLUMN, rows) or []
    if any(not isinstance(i, str) or not i for i in ids):
        raise WrongColumnType(f"{table.label}${ID_COLUMN}: expected non-empty text ids")
    _bounded_text(ids, MAX_ID_CHARS, f"{table.label}${ID_COLUMN}")
    if _column(table, "nrmse", rows) is None:
        raise MissingColumn(f"{table.label}: no 'nrmse' column")
    metrics: dict[str, list[float | None]] = {}
    for metric, candidates in METRIC_COLUMNS.items():
        found = next((c for c in candidates if c in table.names()), None)
        values = _column(table, found, rows) if found else None
        metrics[metric] = _numeric(values, f"{table.label}${found}") if values is not None else [None] * rows
    fronts = _fronts(table, rows)
    return [
        ModelRow(model_id=ids[i], front=fronts[i], metrics={m: metrics[m][i] for m in MODEL_METRICS})
        for i in range(rows)
    ]


def _scalar_text(root: RObject, name: str) -> str | None:
    item = root.get(name)
    if item is None or item.kind == "NULL":
        return None
    values = item.require("character", "integer").values()
    if values and not isinstance(values[0], str | None):
        raise WrongObject(f"{item.label}: expected text")
    return _bounded_text(values[:1], MAX_TEXT_CHARS, item.label)[0] if values else None


def _iso_date(root: RObject, name: str) -> str | None:
    item = root.get(name)
    if item is None or item.kind == "NULL":
        return None
    values = item.require("double", "integer", "character").values()
    value = values[0] if values else None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            raise WrongObject(f"{item.label}: {value!r} is not a date") from None
    if value is None:
        return None
    raise WrongObject(f"{item.label}: expected a Date")


def _text_list(root: RObject, name: str) -> list[str]:
    item = root.get(name)
    if item is None or item.kind == "NULL":
        return []
    if len(item) > MAX_LIST_ITEMS:
        raise RdsValueTooLarge(f"{item.label}: {len(item)} entries, over the limit of {MAX_LIST_ITEMS}")
    values = _bounded_text(item.require("character", "integer", "logical").values(), MAX_TEXT_CHARS, item.label)
    if any(v is not None and not isinstance(v, str) for v in values):
        raise WrongObject(f"{item.label}: expected text")
    return [v for v in values if v is not None]


def _bounded_text(values: list[Any], limit: int, label: str) -> list[Any]:
    longest = max((len(v) for v in values if isinstance(v, str)), default=0)
    if longest > limit:
        raise RdsValueTooLarge(f"{label}: a text of {longest} characters, over the limit of {limit}")
    return values


def read_input_metadata(root: RObject) -> dict[str, Any]:
    """The ``input_metadata`` object from ``InputCollect``; lists are always lists."""
    root.require("list")
    metadata: dict[str, Any] = {name: _scalar_text(root, name) for name in INPUT_SCALARS}
    metadata.update({name: _iso_date(root, name) for name in INPUT_DATES})
    metadata.update({name: _text_list(root, name) for name in INPUT_VAR_LISTS})
    return metadata
