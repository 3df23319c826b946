"""Import speed and memory of the importers: rows/s into DuckDB and peak RSS, side by side.

    .venv/bin/python bench/ingest.py                  # 1M rows of the per-call logs (files cached in bench/out/)
    .venv/bin/python bench/ingest.py --rows 5000000   # the flat-memory check
    git archive HEAD tokenops | tar -x -C /tmp/before && .venv/bin/python bench/ingest.py --before /tmp/before

Generates a LiteLLM `LiteLLM_SpendLogs` CSV export and a Bedrock model-invocation log (JSON
lines) of N rows each, and `--small-rows` rows of a Langfuse observations export, OpenAI and
Anthropic usage report pages and a FOCUS bill (the FOCUS sample's lines repeated), then imports
each into a fresh DuckDB ledger in its own process (so the peak RSS of one does not hide the
other's) through `run_import`, exactly as `tokenops import` does: the ledger gets the default
`[duckdb]` memory cap (`DuckDBSettings`), or DuckDB's own default on code older than that setting.
With `--before DIR` (another checkout's `tokenops` package) each import also runs on that code,
on the next line. `--small-rows 5000000 --only langfuse` runs the Langfuse import at 5M rows.

CPU seconds (all threads) are printed beside wall seconds: on a shared machine rows per CPU
second move less than rows/s. Target (issue 6): >= 200k rows/s for CSV/JSONL usage imports,
and peak RSS that does not grow with the file.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import random
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def langfuse_jsonl(path: Path, rows: int, seed: int = 13) -> None:
    """Langfuse GENERATION observations, one per line, as GET /api/public/observations returns them."""
    rnd = random.Random(seed)
    start0 = START.timestamp()
    models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022", "claude-3-5-sonnet-20241022"]
    with path.open("w") as f:
        for i in range(rows):
            start = start0 + SPAN_S * i / rows
            prompt, completion = rnd.randrange(50, 20_000), rnd.randrange(10, 2_000)
            f.write(
                f'{{"id":"obs-{seed}-{i:012d}","traceId":"trace-{i // 3}","type":"GENERATION","name":"chat",'
                f'"startTime":"{_stamp(start)}","endTime":"{_stamp(start + 1.5)}",'
                f'"completionStartTime":"{_stamp(start + 0.3)}","model":"{models[i % len(models)]}",'
                '"modelParameters":{"temperature":0},"usageDetails":'
                f'{{"input":{prompt},"output":{completion},"total":{prompt + completion}}},'
                '"costDetails":{"input":0.002,"output":0.0012,"total":0.0032},'
                f'"userId":"user-{i % 200}","metadata":{{"team":"team-{i % 12}","env":"prod"}},'
                f'"level":"DEFAULT","statusMessage":null,"promptTokens":{prompt},"completionTokens":{completion}}}\n'
            )


def _days(rows: int, per_bucket: int) -> list[int]:
    return [int(START.timestamp()) + 86_400 * (b % 365) for b in range((rows + per_bucket - 1) // per_bucket)]


def openai_usage_jsonl(path: Path, rows: int, per_bucket: int = 500) -> None:
    """OpenAI /v1/organization/usage/completions pages (one per line), a day's bucket grouped by user."""
    with path.open("w") as f:
        for b, day in enumerate(_days(rows, per_bucket)):
            results = ",".join(
                '{"object":"organization.usage.completions.result",'
                f'"input_tokens":{1000 + r * 7},"output_tokens":{200 + r},"input_cached_tokens":{r % 500},'
                f'"input_audio_tokens":0,"output_audio_tokens":0,"num_model_requests":{1 + r % 9},'
                f'"project_id":"proj_{r % 7}","user_id":"user-{b // 365}-{r}","api_key_id":"key_{r % 30}",'
                f'"model":"{("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06")[r % 2]}",'
                f'"batch":{("false", "true")[r % 5 == 0]},'
                '"service_tier":"default"}'
                for r in range(min(per_bucket, rows - b * per_bucket))
            )
            f.write(
                f'{{"object":"page","data":[{{"object":"bucket","start_time":{day},"end_time":{day + 86_400},'
                f'"results":[{results}]}}],"has_more":false,"next_page":null}}\n'
            )


def anthropic_usage_jsonl(path: Path, rows: int, per_bucket: int = 500) -> None:
    """Anthropic /v1/organizations/usage_report/messages pages (one per line), a day's bucket by key."""
    with path.open("w") as f:
        for b, day in enumerate(_days(rows, per_bucket)):
            start = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            end = datetime.fromtimestamp(day + 86_400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            results = ",".join(
                f'{{"uncached_input_tokens":{1000 + r * 7},"cache_creation":{{"ephemeral_1h_input_tokens":0,'
                f'"ephemeral_5m_input_tokens":{r % 300}}},"cache_read_input_tokens":{r % 500},'
                f'"output_tokens":{200 + r},"server_tool_use":{{"web_search_requests":0}},'
                f'"api_key_id":"apikey_{b // 365}_{r}","workspace_id":"wrkspc_{r % 5}",'
                f'"model":"{("claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022")[r % 2]}",'
                '"service_tier":"standard","context_window":"0-200k"}'
                for r in range(min(per_bucket, rows - b * per_bucket))
            )
            f.write(
                f'{{"data":[{{"starting_at":"{start}","ending_at":"{end}","results":[{results}]}}],'
                '"has_more":false,"next_page":null}\n'
            )


FOCUS_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "focus" / "focus_1.0_sample_1000.csv"


def focus_csv(path: Path, rows: int) -> None:
    """The FOCUS 1.0 sample's lines repeated to `rows`, each copy with its own ResourceId (distinct charges)."""
    with FOCUS_SAMPLE.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        sample = list(reader)
    column = header.index("ResourceId")
    with path.open("w", newline="") as f:
        out = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        out.writerow(header)
        for i in range(rows):
            line = list(sample[i % len(sample)])
            line[column] = f"{line[column]}-copy{i // len(sample)}"
            out.writerow(line)


Result = tuple[str, str, int, float, float, float, list[float]]
"""(importer, code, rows, seconds, CPU seconds, peak RSS MB, peak RSS MB in each fifth of the import)."""


class _Rss:
    """The process's resident memory, sampled every 0.2 s on a thread: is memory flat as the file goes on?"""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        with open("/proc/self/statm") as statm:
            while not self._stop.wait(0.2):
                statm.seek(0)
                self.samples.append((time.perf_counter(), int(statm.read().split()[1]) * self._page_mb))

    def fifths(self, started: float, ended: float) -> list[float]:
        """Peak RSS within each fifth of [started, ended] (0 where no sample fell)."""
        self._stop.set()
        self._thread.join()
        span = (ended - started) / 5 or 1.0
        peaks = [0.0] * 5
        for at, mb in self.samples:
            if started <= at <= ended:
                k = min(int((at - started) / span), 4)
                peaks[k] = max(peaks[k], mb)
        return peaks


def _run(source: str, path: Path, code: str | None, queue: multiprocessing.Queue[Result]) -> None:
    import sys

    if code:  # another checkout's package, ahead of this one
        sys.path.insert(0, code)
    from tokenops.ingest import get_importer, run_import

    with tempfile.TemporaryDirectory() as tmp:
        ledger = _ledger(Path(tmp) / "ledger.duckdb")
        rss = _Rss()
        started, cpu = time.perf_counter(), time.process_time()
        report = run_import(get_importer(source), [path], ledger)
        ledger.close()  # its last checkpoint is part of the import, as when `tokenops import` exits
        ended, cpu = time.perf_counter(), time.process_time() - cpu
        fifths = rss.fifths(started, ended)
    assert report.rejected == 0 and report.imported == report.rows, report.summary()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((source, "before" if code else "after", report.rows, ended - started, cpu, peak_mb, fifths))


def _ledger(path: Path) -> Any:
    """A DuckDB ledger opened as `tokenops import` opens it (the `[duckdb]` defaults, `bulk_load`), on any checkout."""
    import inspect

    from tokenops.store import DuckDBLedger

    if "memory_limit" not in inspect.signature(DuckDBLedger).parameters:  # older code: DuckDB's defaults
        return DuckDBLedger(path)
    from tokenops.config import DuckDBSettings

    settings = DuckDBSettings()
    extra = {"bulk_load": True} if "bulk_load" in inspect.signature(DuckDBLedger).parameters else {}
    return DuckDBLedger(path, memory_limit=settings.memory_limit, threads=settings.threads, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the LiteLLM and Bedrock logs")
    parser.add_argument("--small-rows", type=int, default=200_000, help="rows of the other sources (0: skip them)")
    parser.add_argument("--only", help="comma-separated importers to run")
    parser.add_argument("--before", help="directory holding an older `tokenops` package to compare with")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    n, m = args.rows, args.small_rows
    files = {
        "litellm": (OUT / f"litellm-spendlogs-{n}.csv", litellm_csv, n),
        "bedrock": (OUT / f"bedrock-invocations-{n}.jsonl", bedrock_jsonl, n),
        "langfuse": (OUT / f"langfuse-observations-{m}.jsonl", langfuse_jsonl, m),
        "openai-usage": (OUT / f"openai-usage-{m}.jsonl", openai_usage_jsonl, m),
        "anthropic-usage": (OUT / f"anthropic-usage-{m}.jsonl", anthropic_usage_jsonl, m),
        "focus": (OUT / f"focus-{m}.csv", focus_csv, m),
    }
    chosen = args.only.split(",") if args.only else [name for name, (_, _, rows) in files.items() if rows]
    for name in chosen:
        path, make, rows = files[name]
        if not path.exists():
            started = time.perf_counter()
            make(path, rows)
            print(f"generated {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s")
    print(
        f"{'importer':16} {'code':6} {'rows':>10} {'file MB':>8} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} "
        f"{'rows/CPU s':>11} {'peak RSS MB':>12}  RSS MB by fifth of the import"
    )
    context = multiprocessing.get_context("spawn")
    for name in chosen:
        path = files[name][0]
        for code in ([args.before] if args.before else []) + [None]:
            queue: multiprocessing.Queue[Result] = context.Queue()
            process = context.Process(target=_run, args=(name, path, code, queue))
            process.start()
            source, label, rows, seconds, cpu, peak, fifths = queue.get()
            by_fifth = " ".join(f"{mb:,.0f}" if mb else "-" for mb in fifths)
            process.join()
            print(
                f"{source:16} {label:6} {rows:>10,} {path.stat().st_size / 1e6:>8,.0f} {seconds:>8.1f} {cpu:>7.1f} "
                f"{rows / seconds:>10,.0f} {rows / cpu:>11,.0f} {peak:>12,.0f}  {by_fifth}",
                flush=True,
            )
    print(f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
