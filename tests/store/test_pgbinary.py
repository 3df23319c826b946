"""Binary COPY rows: PostgreSQL stores exactly what the CSV path stores, edge values included."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from tokenops.demo import bulk_events
from tokenops.store import _pgbinary
from tokenops.store.postgres import PostgresLedger
from tokenops.store.schema import TABLES

SPEC = TABLES["usage_events"]


def _edge_rows() -> pa.Table:
    """Demo events plus values that break naive encoders."""
    batch = next(bulk_events(3_000, seed=1, batch_size=3_000, days=1)).cast(SPEC.arrow_schema)
    rows = batch.slice(0, 4).to_pylist()
    rows[0].update(cost_total=Decimal("-123456.123456789012"), ts=dt.datetime(1999, 12, 31, 23, 59, 59, 999_999),
                   latency_ms=float("nan"), team=None, iteration=-5, input_tokens=-(2**62))  # fmt: skip
    rows[1].update(cost_total=Decimal(0), cost_input=Decimal("999999.999999999999"), team="", tags='a,"b"\n\\N')
    rows[2].update(cost_total=None, user_id="ünïcode ✓", model_requested=None, ttft_ms=None)
    rows[3].update(cost_output=Decimal("0.000000000001"), batch=True, ts=dt.datetime(1970, 1, 1))
    return pa.concat_tables([batch.slice(4), pa.Table.from_pylist(rows, schema=SPEC.arrow_schema)])


def test_binary_copy_stores_what_csv_stores(pg_dsn: str) -> None:
    data = _edge_rows()
    cols = ", ".join(c.name for c in SPEC.columns)
    assert _pgbinary.supports(data.schema)
    PostgresLedger(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE from_csv (LIKE usage_events)")
        with cur.copy(f"COPY usage_events ({cols}) FROM STDIN (FORMAT binary)") as copy:
            copy.write(_pgbinary.HEADER)
            for batch in data.to_batches(max_chunksize=1_000):  # slices: offsets that do not start at 0
                copy.write(_pgbinary.encode(batch))
            copy.write(_pgbinary.TRAILER)
        with cur.copy(f"COPY from_csv ({cols}) FROM STDIN (FORMAT csv)") as copy:
            buffer = io.BytesIO()
            pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
            copy.write(buffer.getvalue())
        diff = "SELECT count(*) FROM (TABLE {} EXCEPT ALL TABLE {}) AS d"
        for a, b in (("usage_events", "from_csv"), ("from_csv", "usage_events")):
            assert cur.execute(diff.format(a, b)).fetchone() == (0,)
        row = cur.execute("SELECT cost_total, ts, team FROM usage_events WHERE iteration = -5").fetchone()
        assert row == (Decimal("-123456.123456789012"), dt.datetime(1999, 12, 31, 23, 59, 59, 999_999), None)
        assert cur.execute("SELECT count(*) FROM usage_events").fetchone() == (data.num_rows,)


def test_null_slots_holding_bytes_are_sent_as_null() -> None:
    values = pa.array(["abc", "def", "g"])
    masked = pa.StringArray.from_buffers(3, values.buffers()[1], values.buffers()[2], pa.py_buffer(b"\x05"), 1)
    assert masked.to_pylist() == ["abc", None, "g"]
    rows = bytes(_pgbinary.encode(pa.RecordBatch.from_arrays([masked], ["s"])))
    field = (1).to_bytes(2, "big")
    assert (
        rows
        == (field + (3).to_bytes(4, "big") + b"abc" + field + (-1).to_bytes(4, "big", signed=True) + field)
        + (1).to_bytes(4, "big")
        + b"g"
    )


def test_types_without_a_binary_encoding_fall_back_to_csv() -> None:
    assert not _pgbinary.supports(TABLES["billed_costs"].arrow_schema)  # DECIMAL(28,6)
    assert _pgbinary.supports(TABLES["task_runs"].arrow_schema)
