"""JSON that keeps money exact: Decimal as strings, datetimes as ISO 8601 UTC."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response


def decimal_text(value: Decimal) -> str:
    """Exact and short: Decimal('0.007500000000') -> '0.0075', Decimal('12.000') -> '12'."""
    return format(value.normalize(), "f")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"Cannot serialise {type(value).__name__}")


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """Records from Arrow or dataclasses, ready for orjson (naive datetimes are UTC)."""
    pa = sys.modules.get("pyarrow")  # a Table exists only once pyarrow is loaded; a gateway never loads it
    if pa is not None and isinstance(value, pa.Table):
        return [jsonable(r) for r in value.to_pylist()]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def dumps(content: Any, *, indent: bool = False) -> bytes:
    """JSON bytes with exact money."""
    return orjson.dumps(jsonable(content), default=_default, option=orjson.OPT_INDENT_2 if indent else 0)


class JSON(Response):
    """orjson response; Decimals become exact strings."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status: int, message: str) -> JSON:
    """A tokenops API error (the gateway uses each provider's own format instead)."""
    return JSON({"error": {"message": message, "status": status}}, status_code=status)
