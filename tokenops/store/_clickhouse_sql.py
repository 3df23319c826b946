"""DuckDB-dialect SQL to ClickHouse, the ledger's tables as ClickHouse DDL, and results back in DuckDB's types.

Analytics SQL is written once, in DuckDB's dialect; SQLGlot transpiles it. Where ClickHouse means
something else by the same words, the tree is rewritten first so results stay identical:

- `a / b` is always DOUBLE in DuckDB (and NULL when b = 0); ClickHouse keeps the dividend's
  DECIMAL scale and returns inf, so both sides become Float64 and a zero divisor NULL;
- `round(double, n)` rounds half away from zero in DuckDB, half to even in ClickHouse;
- `date_trunc` gives a TIMESTAMP in DuckDB, a `Date` or a second-precision `DateTime` in
  ClickHouse; weeks start on Monday in both only when asked;
- `quantile_cont`/`median` interpolate exactly in DuckDB; ClickHouse's `quantile` samples, so
  `quantileExactInclusive` (the same formula) is used;
- `lag`/`lead` give NULL outside the partition in DuckDB, the type's default in ClickHouse;
- TIMESTAMP is `DateTime64(6, 'UTC')`, not ClickHouse's second-precision `DateTime`.

The session settings in `SETTINGS` cover the rest (LEFT JOIN NULLs, aggregates of no rows).
`?` parameters become typed ClickHouse query parameters, sent apart from the SQL text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import sqlglot
from sqlglot import exp

from tokenops.store.schema import TABLES, TASK_RUN_TOTALS, Column

SETTINGS: dict[str, str] = {
    "join_use_nulls": "1",  # a LEFT JOIN's missing side is NULL, not 0 or ''
    "aggregate_functions_null_for_empty": "1",
    # `sum(x) AS x, sum(x + y) ...` sums the column, as in SQL, not the aggregate its alias names
    "prefer_column_name_to_alias": "1",  # sum/max over no rows is NULL, as in SQL
    "session_timezone": "UTC",
    "date_time_output_format": "iso",
}
"""ClickHouse settings every query of the ledger runs with."""

TIMESTAMP = "DateTime64(6, 'UTC')"
_LOW_CARDINALITY = {"provider", "model", "model_requested", "operation", "status", "error_type", "price_source",
                    "source", "team", "feature", "workflow", "step", "currency", "charge_category", "unit",
                    "outcome_type", "activity", "tool", "service", "role"}  # fmt: skip
"""String columns with few distinct values, stored dictionary-encoded."""
_TYPES = {"VARCHAR": "String", "BIGINT": "Int64", "INTEGER": "Int32", "DOUBLE": "Float64", "BOOLEAN": "Bool",
          "DATE": "Date32", "TIMESTAMP": TIMESTAMP}  # fmt: skip
_UNITS = {"hour": "toStartOfHour", "day": "toStartOfDay", "month": "toStartOfMonth", "year": "toStartOfYear",
          "quarter": "toStartOfQuarter", "minute": "toStartOfMinute"}  # fmt: skip


_COLUMNS = {c.name for t in TABLES.values() for c in t.columns} | {c.name for c in TASK_RUN_TOTALS}
"""Every ledger column name: a GROUP BY key with one of these names is the column."""


def column_type(column: Column) -> str:
    """ClickHouse type of a ledger column."""
    base = column.sql.replace(" ", "")
    kind = base if base.startswith("DECIMAL") else _TYPES[base]
    kind = kind.replace("DECIMAL", "Decimal")
    if column.nullable:
        kind = f"Nullable({kind})"
    if column.name in _LOW_CARDINALITY and base == "VARCHAR":
        kind = f"LowCardinality({kind})"
    return kind


def create_table(name: str, columns: Sequence[Column], key: Sequence[str]) -> str:
    """CREATE TABLE for one ledger table: a ReplacingMergeTree sorted (and deduplicated at merge) by its key."""
    cols = ",\n  ".join(f"`{c.name}` {column_type(c)}" for c in columns)
    order = ", ".join(f"`{k}`" for k in key)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols}\n) ENGINE = ReplacingMergeTree ORDER BY ({order})"


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _as_float(node: exp.Expression) -> exp.Expression:
    return _fn("toFloat64", node)


def _divide(node: exp.Div) -> exp.Expression:
    """DuckDB's `/`: DOUBLE, and NULL for a zero divisor."""
    return exp.Div(
        this=_as_float(node.this), expression=_fn("nullIf", _as_float(node.expression), exp.Literal.number(0))
    )


def _round(node: exp.Round) -> exp.Expression:
    """DuckDB's round(DOUBLE, n): half away from zero on x * 10^n (a quotient is the DOUBLE case)."""
    x, decimals = node.this, node.args.get("decimals")
    if not isinstance(x.unnest(), exp.Div):
        return node
    places = int(decimals.name) if isinstance(decimals, exp.Literal) and decimals.is_int else 0
    scale = exp.Literal.number(10**places)
    tick = exp.Floor(this=exp.Add(this=exp.Mul(this=exp.Abs(this=x.copy()), expression=scale),
                                  expression=exp.Literal.number(0.5)))  # fmt: skip
    return exp.Paren(this=exp.Div(this=exp.Mul(this=_fn("sign", x.copy()), expression=tick), expression=scale.copy()))


def _date_trunc(node: exp.Expression) -> exp.Expression:
    unit = node.args.get("unit")
    name = (unit.name if unit is not None else "").lower()
    x = node.this
    if name == "week":
        start = _fn("toStartOfWeek", x.copy(), exp.Literal.number(1))  # mode 1: weeks start on Monday
    elif name in _UNITS:
        start = _fn(_UNITS[name], x.copy())
    else:
        raise ValueError(f"date_trunc unit {name!r} has no ClickHouse translation")
    return _fn("toDateTime64", start, exp.Literal.number(6), exp.Literal.string("UTC"))


def _quantile(node: exp.Expression, fraction: exp.Expression) -> exp.Expression:
    agg = exp.Anonymous(this=f"quantileExactInclusive({fraction.sql()})", expressions=[_as_float(node)])
    return agg


def _rewrite(node: exp.Expression) -> exp.Expression:
    """One DuckDB construct as the ClickHouse expression with the same result."""
    if isinstance(node, exp.Select):
        _name_columns(node)
        _group_by_expressions(node)
        _leave_float_results(node)
    if isinstance(node, exp.Avg):  # DuckDB sums exactly, then divides as DOUBLE (a DECIMAL's average too)
        total = _as_float(exp.Sum(this=node.this.copy()))
        return exp.Div(this=total, expression=_fn("nullIf", exp.Count(this=node.this.copy()), exp.Literal.number(0)),
                       typed=True)  # fmt: skip
    if isinstance(node, exp.Div) and not node.args.get("typed"):
        return _divide(node)
    if isinstance(node, exp.Round):
        return _round(node)
    if isinstance(node, exp.DateTrunc | exp.TimestampTrunc):
        return _date_trunc(node)
    if isinstance(node, exp.PercentileCont):
        return _quantile(node.this, node.expression)
    if isinstance(node, exp.Median):
        return _quantile(node.this, exp.Literal.number(0.5))
    if isinstance(node, exp.LogicalOr):
        return _fn("max", node.this)
    if isinstance(node, exp.LogicalAnd):
        return _fn("min", node.this)
    if isinstance(node, exp.DataType) and node.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.DATETIME):
        return exp.DataType.build(TIMESTAMP, dialect="clickhouse")
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Lag | exp.Lead):
        return _shift(node)
    return node


def _name_columns(select: exp.Select) -> None:
    """`SELECT t.x` yields a column named `x` in DuckDB; ClickHouse may call it `t.x`, so name it."""
    projections = select.expressions
    for i, item in enumerate(projections):
        if isinstance(item, exp.Column) and item.table and not isinstance(item.this, exp.Star):
            projections[i] = exp.alias_(item, item.name)


def _group_by_expressions(select: exp.Select) -> None:
    """`GROUP BY day` names a result column (ClickHouse, preferring columns, finds none): group by its expression."""
    group = select.args.get("group")
    if group is None:
        return
    aliases = {item.alias: item.this for item in select.expressions if isinstance(item, exp.Alias)}
    for i, key in enumerate(group.expressions):
        if isinstance(key, exp.Column) and not key.table and key.name in aliases and key.name not in _COLUMNS:
            group.expressions[i] = aliases[key.name].copy()


def _is_double(node: exp.Expression) -> bool:
    """Whether DuckDB computes `node` as DOUBLE (an average, a quotient, or a rounded quotient)."""
    inner = node.unnest()
    if isinstance(inner, exp.Round):
        return _is_double(inner.this)
    return isinstance(inner, exp.Avg | exp.Div)


def _leave_float_results(select: exp.Select) -> None:
    """`avg(x)::DECIMAL(38,12) AS y` is left a Float64 for `conform` to round half away from zero as DuckDB does.

    ClickHouse's CAST of a Float64 to Decimal truncates. Only a cast that *is* a result column is left
    out, its type coming back from DuckDB's schema; a cast inside an expression stays.
    """
    for item in select.expressions:
        target = item.this if isinstance(item, exp.Alias) else None  # unnamed, the cast names the column
        if isinstance(target, exp.Cast) and target.to.is_type(exp.DataType.Type.DECIMAL) and _is_double(target.this):
            target.replace(target.this)


def _shift(node: exp.Window) -> exp.Window:
    """lag/lead that give NULL past the partition's edge, over the whole partition as DuckDB's do."""
    fn = node.this
    name = "lagInFrame" if isinstance(fn, exp.Lag) else "leadInFrame"
    args = [_fn("toNullable", fn.this.copy())]
    if fn.args.get("offset") is not None:
        args.append(fn.args["offset"].copy())
    node.set("this", _fn(name, *args))
    node.set("spec", exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="UNBOUNDED",
                                    end_side="FOLLOWING"))  # fmt: skip
    return node


def to_clickhouse(sql: str, params: Sequence[object] = ()) -> str:
    """One DuckDB statement as ClickHouse SQL; its `?` become query parameters `{p0:Type}` (see `bind`).

    The text depends only on the parameters' types (a None is written as NULL), so it can be cached on them.
    """
    statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, got {len(statements)}: {sql[:80]!r}")
    values = list(params)
    position = 0

    def placeholder(node: exp.Expression) -> exp.Expression:
        nonlocal position
        if not isinstance(node, exp.Placeholder):
            return node
        if position >= len(values):
            raise ValueError(f"query has more ? than the {len(values)} parameters given: {sql[:80]!r}")
        value, name = values[position], f"p{position}"
        position += 1
        if value is None:
            return exp.Null()
        return exp.Placeholder(this=name, kind=exp.DataType.build(_param(value)[0], dialect="clickhouse"))

    tree = statements[0].transform(_rewrite).transform(placeholder)
    if position != len(values):
        raise ValueError(f"query has {position} ? but {len(values)} parameters were given: {sql[:80]!r}")
    return tree.sql(dialect="clickhouse", unsupported_level=sqlglot.ErrorLevel.RAISE)


def bind(params: Sequence[object]) -> dict[str, str]:
    """The values of `to_clickhouse`'s query parameters, as text ClickHouse parses (NULLs are in the SQL)."""
    return {f"p{i}": _param(v)[1] for i, v in enumerate(params) if v is not None}


def _param(value: object) -> tuple[str, str]:
    """ClickHouse type and text of a parameter (text in the Escaped format, as both transports parse it)."""
    if isinstance(value, bool):
        return "Bool", "true" if value else "false"
    if isinstance(value, int):
        return "Int64", str(value)
    if isinstance(value, float):
        return "Float64", repr(value)
    if isinstance(value, Decimal):
        return "Decimal(38, 12)", str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return TIMESTAMP, value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return "Date32", value.isoformat()
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return "String", escaped.replace("\0", "\\0")
    raise TypeError(f"Unsupported query parameter {value!r} of type {type(value).__name__}")


def conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """ClickHouse's Arrow result in DuckDB's result types (`schema`), or plainly normalised when unknown."""
    if schema is not None and len(schema) != table.num_columns:
        raise ValueError(f"ClickHouse returned {table.num_columns} columns where DuckDB binds {len(schema)}")
    arrays = []
    fields = []
    for i, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        target = schema.field(i).type if schema is not None else _plain_type(column.type)
        arrays.append(_cast(column, target))
        fields.append(pa.field(schema.field(i).name if schema is not None else name, target))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _plain_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us")
    if pa.types.is_dictionary(kind):
        return kind.value_type
    if pa.types.is_unsigned_integer(kind):
        return pa.int64()
    return kind


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    source = column.type
    if pa.types.is_dictionary(source):
        column, source = column.cast(source.value_type), source.value_type
    if pa.types.is_timestamp(source) and source.tz is not None:
        column = column.cast(pa.timestamp(source.unit))  # the UTC wall time, as DuckDB's naive TIMESTAMP
    if pa.types.is_decimal(target) and pa.types.is_floating(column.type):
        # as DuckDB casts a DOUBLE: scaled in double precision, then rounded half away from zero
        values = [None if v is None else _scaled(v, target.scale) for v in column.to_pylist()]
        column = pa.chunked_array([pa.array(values, target)])
    if pa.types.is_decimal(target) and pa.types.is_decimal(column.type) and column.type.scale > target.scale:
        values = [_decimal(v, target.scale) for v in column.to_pylist()]
        column = pa.chunked_array([pa.array(values, target)])
    return column.cast(target) if column.type != target else column


def _scaled(value: float, scale: int) -> Decimal:
    return Decimal(repr(value * 10**scale)).quantize(Decimal(1), rounding=ROUND_HALF_UP).scaleb(-scale)


def _decimal(value: object, scale: int) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
