"""How fast an import could be if DuckDB did all of it, beside the real importer, in one run.

    .venv/bin/python bench/ingest_native.py [--rows 1000000] [--rounds 2]
    .venv/bin/python bench/ingest_native.py --source focus   # a FOCUS bill (44 columns, ~715 bytes a line)

The question behind issue 6's 200k rows/s: is the importer slow, or is the work? The "native"
line is one `INSERT ... SELECT` over `read_csv` (DuckDB's parallel C++ reader) with the metadata
JSON read by `json_transform`, casts, a price join and tags built by `to_json`, into the ledger's
`usage_events` in a DuckDB file, then a CHECKPOINT. It is a lower bound on the cost, not an
importer: no validation, no row path, no line numbers, six hard-coded prices, inexact tags. The
"importer" line is `tokenops import litellm` on the same file (bench/ingest.py's generator), each
in its own process.

With `--source focus` the file is bench/ingest.py's FOCUS bill (the FOCUS sample's lines
repeated) and the native line fills `billed_costs`: `read_csv` with `NULL` as null, casts,
tags built by `to_json` from the non-null FOCUS columns the importer keeps as tags (not the
line's own Tags, which the importer merges in), and an id that is md5 of text of the same shape
as the importer's digest text: every cell, raw, after its lower-cased column name (the importer
normalises numbers and times, orders the columns otherwise and uses blake2b, which DuckDB lacks).
No checks, no copy numbering. Its CHECKPOINT is timed, as the importer's closing one is.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import tempfile
import time
from pathlib import Path

from ingest import FOCUS_SAMPLE, OUT, Result, _run, focus_csv, litellm_csv

PRICES = """
SELECT * FROM (VALUES
    ('gpt-4o-mini', 0.15, 0.6), ('gpt-4o', 2.5, 10.0), ('claude-3-5-sonnet-20241022', 3.0, 15.0),
    ('claude-3-5-haiku-20241022', 0.8, 4.0), ('anthropic.claude-3-haiku-20240307-v1:0', 0.25, 1.25),
    ('gemini-1.5-flash', 0.075, 0.3)
) p(model, inp, outp)
"""
METADATA = (
    '{"user_api_key_user_id": "VARCHAR", "user_api_key_team_id": "VARCHAR", "user_api_key_alias": "VARCHAR", '
    '"additional_usage_values": {"prompt_tokens_details": {"cached_tokens": "BIGINT"}, '
    '"completion_tokens_details": {"reasoning_tokens": "BIGINT"}}}'
)
INSERT = """
INSERT INTO usage_events (request_id, ts, provider, model, operation, input_tokens, cache_read_tokens,
    cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, batch, status, latency_ms,
    cost_input, cost_output, cost_total, unpriced, price_source, estimated, source, api_key_id, user_id, team,
    customer, tags)
SELECT 'litellm:' || trim(request_id), startTime::TIMESTAMPTZ::TIMESTAMP, coalesce(custom_llm_provider, 'openai'),
    trim(r.model), call_type, prompt_tokens::BIGINT,
    coalesce(r.o.additional_usage_values.prompt_tokens_details.cached_tokens, 0), 0, 0, completion_tokens::BIGINT,
    coalesce(r.o.additional_usage_values.completion_tokens_details.reasoning_tokens, 0), false,
    CASE WHEN cache_hit = 'True' THEN 'cached' ELSE 'ok' END,
    date_diff('millisecond', startTime::TIMESTAMPTZ, endTime::TIMESTAMPTZ),
    (prompt_tokens::BIGINT * p.inp / 1e6)::DECIMAL(18,12), (completion_tokens::BIGINT * p.outp / 1e6)::DECIMAL(18,12),
    ((prompt_tokens::BIGINT * p.inp + completion_tokens::BIGINT * p.outp) / 1e6)::DECIMAL(18,12),
    p.model IS NULL, 'genai-prices', false, 'import:litellm', api_key,
    coalesce(nullif("user", ''), r.o.user_api_key_user_id), coalesce(nullif(team_id, ''), r.o.user_api_key_team_id),
    nullif(end_user, ''),
    to_json({'request_tags': request_tags, 'alias': r.o.user_api_key_alias, 'spend': spend, 'session': session_id})
FROM (
    SELECT *, json_transform(metadata, '{metadata}') AS o
    FROM read_csv('{path}', all_varchar = true, header = true)
) r
LEFT JOIN prices p ON p.model = trim(r.model)
"""

FOCUS_INSERT = """
INSERT INTO billed_costs (cost_id, source, provider, start_ts, end_ts, billed, currency, effective, list_cost, service,
    model, line_item, charge_category, project_id, account_id, quantity, unit, tags)
SELECT 'focus:' || md5({joined}), 'import:focus', lower(ProviderName), ChargePeriodStart::TIMESTAMP,
    ChargePeriodEnd::TIMESTAMP, BilledCost::DECIMAL(18,12), upper(BillingCurrency), EffectiveCost::DECIMAL(18,12),
    ListCost::DECIMAL(18,12), ServiceName, NULL, ChargeDescription, ChargeCategory, SubAccountId, BillingAccountId,
    round(ConsumedQuantity::DECIMAL(38,16), 6)::DECIMAL(28,6), ConsumedUnit, {tags}
FROM read_csv('{path}', all_varchar = true, nullstr = 'NULL', header = true)
"""


def _focus_sql(path: Path) -> str:
    """`FOCUS_INSERT` for the file's header: the importer's digest text (md5 for blake2b) and tag columns."""
    from tokenops.ingest._focus_columns import KEPT_AS_TAGS

    with path.open(newline="") as f:
        header = next(csv.reader(f))
    assert all(c.isidentifier() for c in header), header  # spliced into the SQL below
    cells = ", ".join(f"'{c.lower()}' || chr(30) || coalesce(\"{c}\", chr(0))" for c in sorted(header, key=str.lower))
    pairs = ", ".join(f"{{'k': '{c}', 'v': \"{c}\"}}" for c in KEPT_AS_TAGS if c in header)
    tags = f"to_json(map_from_entries(list_filter([{pairs}], lambda e: e.v IS NOT NULL)))"
    joined = f"concat_ws(chr(31), {cells})"
    assert "'" not in str(path), path
    return FOCUS_INSERT.replace("{joined}", joined).replace("{tags}", tags).replace("{path}", str(path))


def _native(source: str, path: Path, queue: multiprocessing.Queue[Result]) -> None:
    import duckdb

    from tokenops.config import DuckDBSettings
    from tokenops.store import DuckDBLedger
    from tokenops.store._bulk import KEEP_FREED

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "ledger.duckdb"
        DuckDBLedger(file).close()  # the ledger's schema, migrated
        # the memory cap and allocator setting `tokenops import` uses; DuckDB's own threads, for its parallel reader
        config = {"preserve_insertion_order": False, "memory_limit": DuckDBSettings().memory_limit, **KEEP_FREED}
        conn = duckdb.connect(str(file), config=config)
        conn.execute(f"CREATE TEMP TABLE prices AS {PRICES}")
        if source == "focus":
            sql = _focus_sql(path)
        else:
            sql = INSERT.replace("{metadata}", METADATA).replace("{path}", str(path))
        started, cpu = time.perf_counter(), time.process_time()
        found = conn.execute(sql).fetchone()
        conn.execute("CHECKPOINT")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        conn.close()
    rows = int(found[0]) if found else 0
    queue.put((source, "native", rows, seconds, cpu, 0.0, []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--source", choices=("litellm", "focus"), default="litellm")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.source == "focus":
        assert FOCUS_SAMPLE.exists(), FOCUS_SAMPLE
        path = OUT / f"focus-{args.rows}.csv"
        make = focus_csv
    else:
        path = OUT / f"litellm-spendlogs-{args.rows}.csv"
        make = litellm_csv
    if not path.exists():
        make(path, args.rows)
    context = multiprocessing.get_context("spawn")
    print(f"{'path':<10} {'rows':>10} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} {'us CPU/row':>11}")
    for _ in range(args.rounds):
        for label, target, extra in (
            ("importer", _run, (args.source, path, None)),
            ("native", _native, (args.source, path)),
        ):
            queue: multiprocessing.Queue[Result] = context.Queue()
            process = context.Process(target=target, args=(*extra, queue))
            process.start()
            _, _, rows, seconds, cpu, _, _ = queue.get()
            process.join()
            rate, per_row = rows / seconds, cpu / rows * 1e6
            print(f"{label:<10} {rows:>10,} {seconds:>8.1f} {cpu:>7.1f} {rate:>10,.0f} {per_row:>11.2f}")


if __name__ == "__main__":
    main()
