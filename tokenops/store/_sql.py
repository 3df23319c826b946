"""DuckDB-dialect SQL to PostgreSQL, and PostgreSQL rows back to DuckDB's Arrow types.

Analytics SQL is written once, in DuckDB's dialect. For PostgreSQL it is transpiled by SQLGlot
(`?` parameters become psycopg's `%s`, literal `%` are doubled). The result *types* are
DuckDB's too: an empty in-memory DuckDB ledger with the same migrations binds the query and
reports its result schema (sum of BIGINT is HUGEINT, avg is DOUBLE, money stays DECIMAL), and
the PostgreSQL rows are converted to it. That way a report reads the same Python values, with
the same Arrow types, whichever backend holds the ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa

_PARAM = "__tokenops_param__"
"""Stands in for a parameter while literal `%` are escaped."""

_TEXT_TYPES = (exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR)


def _placeholder(node: exp.Expression) -> exp.Expression:
    return exp.var(_PARAM) if isinstance(node, exp.Placeholder) else node


def _round_double(node: exp.Expression) -> exp.Expression:
    """DuckDB's round(DOUBLE, n) (half away from zero, on x * 10^n) for PostgreSQL, which has no round(double, int).

    Casting to NUMERIC instead would round the decimal text of the double: 0.285 would become 0.29
    where DuckDB gives 0.28. A quotient is the one expression known to be DOUBLE in DuckDB.
    """
    if not isinstance(node, exp.Round) or not isinstance(node.this.unnest(), exp.Div):
        return node
    x, decimals = node.this, node.args.get("decimals")
    if x.find(exp.Placeholder):  # x is written twice below, which would repeat its parameters
        return exp.Round(this=exp.cast(x.copy(), exp.DataType.Type.DECIMAL), decimals=decimals)
    scale: exp.Expression = (
        exp.Pow(this=exp.Literal.number(10), expression=decimals.copy()) if decimals else exp.Literal.number(1)
    )
    if isinstance(decimals, exp.Literal) and decimals.is_int:
        scale = exp.Literal.number(10 ** int(decimals.name))
    tick = exp.Floor(
        this=exp.Add(this=exp.Mul(this=exp.Abs(this=x.copy()), expression=scale), expression=exp.Literal.number(0.5))
    )
    rounded = exp.Div(this=exp.Mul(this=exp.Sign(this=x.copy()), expression=tick), expression=scale.copy(), typed=True)
    return exp.Paren(this=rounded)


def _collate_c(node: exp.Expression) -> exp.Expression:
    """Text columns compare bytewise, as DuckDB does, whatever the database's default collation."""
    if isinstance(node, exp.ColumnDef) and isinstance(node.kind, exp.DataType) and node.kind.this in _TEXT_TYPES:
        collate = exp.ColumnConstraint(kind=exp.CollateColumnConstraint(this=exp.Identifier(this="C", quoted=True)))
        node.set("constraints", [collate, *(node.args.get("constraints") or [])])
    return node


def to_postgres(sql: str) -> str:
    """One DuckDB statement as PostgreSQL text for psycopg (`%s` parameters, `%%` for `%`)."""
    statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, got {len(statements)}: {sql[:80]!r}")
    tree = statements[0].transform(_round_double).transform(_placeholder)
    # quoting lower-case names keeps them valid where PostgreSQL reserves the word (`user`)
    text = tree.sql(dialect="postgres", identify="safe", unsupported_level=sqlglot.ErrorLevel.RAISE)
    return text.replace("%", "%%").replace(_PARAM, "%s")


def ddl_to_postgres(sql: str) -> str:
    """A DuckDB DDL statement for PostgreSQL, text columns with the bytewise "C" collation."""
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_collate_c)
    return tree.sql(dialect="postgres", unsupported_level=sqlglot.ErrorLevel.RAISE)


def to_arrow(names: Sequence[str], rows: Sequence[Sequence[object]], schema: pa.Schema | None) -> pa.Table:
    """Rows fetched from PostgreSQL as Arrow: in `schema` (DuckDB's types) when known, else inferred."""
    import pyarrow as pa  # translating a replica's plain queries (`query_values`) needs no Arrow

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    if schema is None:
        return pa.table({n: pa.array([_plain(v) for v in col]) for n, col in zip(names, columns, strict=True)})
    if len(schema) != len(names):
        raise ValueError(f"PostgreSQL returned {len(names)} columns where DuckDB binds {len(schema)}")
    arrays = [pa.array([_convert(v, f.type) for v in col], f.type) for f, col in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema([f.with_nullable(True) for f in schema]))


def _plain(value: object) -> object:
    """A PostgreSQL value Arrow can infer a type for (timestamps naive UTC, as stored)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _convert(value: object, target: pa.DataType) -> object:
    """One PostgreSQL value as the Python value of DuckDB's Arrow type for it."""
    import pyarrow as pa

    if value is None:
        return None
    value = _plain(value)
    if pa.types.is_integer(target):
        return int(value)  # type: ignore[call-overload]
    if pa.types.is_floating(target):
        return float(value)  # type: ignore[arg-type]
    if pa.types.is_decimal(target):
        assert isinstance(target, pa.Decimal128Type | pa.Decimal256Type)
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        # DuckDB rounds half away from zero when it narrows a DECIMAL
        return number.quantize(Decimal(1).scaleb(-target.scale), rounding=ROUND_HALF_UP)
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return value if isinstance(value, str) else str(value)
    if pa.types.is_date(target) and isinstance(value, dt.datetime):
        return value.date()
    return value
