"""Import speed and memory of the per-call log importers: rows/s into DuckDB and peak RSS, side by side.

    .venv/bin/python bench/ingest.py                  # 1M rows each (files cached in bench/out/)
    .venv/bin/python bench/ingest.py --rows 5000000   # the flat-memory check

Generates a LiteLLM `LiteLLM_SpendLogs` CSV export and a Bedrock model-invocation log (JSON
lines) of N rows each, then imports each into a fresh DuckDB ledger in its own process (so the
peak RSS of one does not hide the other's) through `run_import`, exactly as `tokenops import`
does. Target (issue 6): >= 200k rows/s, and peak RSS that does not grow with the file.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).parent / "out"
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("vertex_ai", "gemini-1.5-flash"),
]
BEDROCK_MODELS = [
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "amazon.nova-micro-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-70b-instruct-v1:0",
]
START = datetime(2025, 3, 1, tzinfo=UTC)
SPAN_S = 90 * 86_400
HEADER = [
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "completionStartTime", "model", "model_id", "model_group", "custom_llm_provider",
    "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id", "end_user",
    "requester_ip_address", "messages", "response", "session_id", "status",
]  # fmt: skip


def _stamp(seconds: float) -> str:
    """ISO 8601 with milliseconds and Z, as LiteLLM's export writes times."""
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def litellm_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A LiteLLM_SpendLogs CSV export as the admin UI / `COPY ... CSV HEADER` writes it."""
    rnd = random.Random(seed)
    start0 = START.timestamp()
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            provider, model = MODELS[i % len(MODELS)]
            start = start0 + SPAN_S * i / rows
            end = _stamp(start + rnd.randrange(200, 9000) / 1000)
            prompt, completion = rnd.randrange(50, 20_000), rnd.randrange(10, 2_000)
            cached = rnd.randrange(0, prompt // 2) if i % 3 == 0 else 0
            team, user, key = f"team-{i % 12:02d}", f"user-{i % 200:03d}", f"88dc28{i % 300:058x}"
            custom = '{"env":"prod"}' if i % 2 else "null"
            metadata = (
                f'{{"user_api_key":"{key}","user_api_key_alias":"svc-{i % 40}","user_api_key_team_id":"{team}",'
                f'"user_api_key_user_id":"{user}","user_api_key_team_alias":"{team.upper()}",'
                f'"spend_logs_metadata":{custom},"requester_ip_address":"10.0.0.1","additional_usage_values":'
                f'{{"prompt_tokens_details":{{"cached_tokens":{cached}}},"completion_tokens_details":'
                f'{{"reasoning_tokens":0}}}},"status":"success"}}'
            )
            out.writerow([
                f"chatcmpl-{seed}-{i:012d}", "acompletion", key, f"{rnd.random() / 100:.8f}",
                prompt + completion, prompt, completion, _stamp(start), end, end, model,
                "model-uuid", model, provider, "https://api.example.com", user,
                metadata, "False", "", '["prod","jobID:42"]', team,
                f"cus-{i % 500}" if i % 4 else "", "10.0.0.1", "{}", "{}", f"sess-{i // 7}", "success",
            ])  # fmt: skip


def bedrock_jsonl(path: Path, rows: int, seed: int = 11) -> None:
    """Bedrock model-invocation log records, one per line, as delivered to S3 (text data off)."""
    rnd = random.Random(seed)
    start0 = START.timestamp()
    with path.open("w") as f:
        for i in range(rows):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(start0 + SPAN_S * i / rows)))
            f.write(
                '{"schemaType":"ModelInvocationLog","schemaVersion":"1.0",'
                f'"timestamp":"{stamp}","accountId":"123456789012",'
                f'"identity":{{"arn":"arn:aws:sts::123456789012:assumed-role/app-{i % 30}/session"}},'
                f'"region":"us-east-1","requestId":"{seed:08x}-{i % 65536:04x}-4c70-a277-{i:012x}",'
                f'"operation":"Converse","modelId":"{BEDROCK_MODELS[i % len(BEDROCK_MODELS)]}",'
                f'"input":{{"inputContentType":"application/json","inputTokenCount":{rnd.randrange(50, 20_000)}}},'
                f'"output":{{"outputContentType":"application/json","outputTokenCount":{rnd.randrange(10, 2_000)}}}}}\n'
            )


def _parse_only(source: str, path: Path) -> float:
    """Seconds Arrow alone takes to parse the file: the machine's speed limit, for reference."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pj

    from tokenops.ingest._rows import line_chunks

    started = time.perf_counter()
    if source == "litellm":
        strings = pcsv.ConvertOptions(column_types=dict.fromkeys(HEADER, pa.string()))
        for _ in pcsv.open_csv(path, convert_options=strings, parse_options=pcsv.ParseOptions(newlines_in_values=True)):
            pass
    else:
        for chunk in line_chunks(path, 16 << 20):
            pj.read_json(io.BytesIO(chunk.data))
    return time.perf_counter() - started


Result = tuple[str, int, float, float, int, float]


def _run(source: str, path: Path, queue: multiprocessing.Queue[Result]) -> None:
    from tokenops.ingest import get_importer, run_import
    from tokenops.store import DuckDBLedger

    with tempfile.TemporaryDirectory() as tmp:
        ledger = DuckDBLedger(Path(tmp) / "ledger.duckdb")
        started = time.perf_counter()
        report = run_import(get_importer(source), [path], ledger)
        seconds = time.perf_counter() - started
        stored = ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"]
        ledger.close()
    assert report.rejected == 0 and stored == report.imported == report.rows, report.summary()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((source, report.rows, seconds, peak_mb, path.stat().st_size, _parse_only(source, path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    files = {
        "litellm": (OUT / f"litellm-spendlogs-{args.rows}.csv", litellm_csv),
        "bedrock": (OUT / f"bedrock-invocations-{args.rows}.jsonl", bedrock_jsonl),
    }
    for path, make in files.values():
        if not path.exists():
            started = time.perf_counter()
            make(path, args.rows)
            print(f"generated {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s")
    print(
        f"{'importer':10} {'rows':>10} {'file MB':>8} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} "
        f"{'Arrow parse-only rows/s':>24}"
    )
    context = multiprocessing.get_context("spawn")
    for source, (path, _) in files.items():
        queue: multiprocessing.Queue[Result] = context.Queue()
        process = context.Process(target=_run, args=(source, path, queue))
        process.start()
        name, rows, seconds, peak, size, parse = queue.get()
        process.join()
        print(
            f"{name:10} {rows:>10,} {size / 1e6:>8,.0f} {seconds:>8.1f} {rows / seconds:>10,.0f} {peak:>12,.0f} "
            f"{rows / parse:>24,.0f}"
        )
    print(f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
