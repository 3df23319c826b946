"""The gateway's overhead, side by side with a bare pass-through and LiteLLM's proxy, in one run.

Every process is pinned: the fake provider and the load generator (`bench/loadgen.py`, its own
process) share core 1; each system under test runs alone on core 0, one after the other:

    direct      the fake provider called without a proxy: the baseline every "added" is over
    aiohttp     `bench/passthrough.py`, uvicorn + aiohttp and nothing else: the floor for Python
    tokenops    `tokenops serve`: virtual key, attribution, metering, pricing, spool and ledger
    +guard      the same with every kind of guardrail in force, counters in-process
    +redis      the same with the guard's counters on Redis (127.0.0.1:6379), as replicas share them
    replica     a replica of the shared deployment: the ledger on PostgreSQL (a fresh, migrated database
                on 127.0.0.1:5432), no guard; the same work per call, without DuckDB in the process
    t1          tokenops with `[server] duckdb_threads = 1`: each ledger batch runs on the niced batch
                thread alone, not also on a DuckDB worker competing with the event loop
    litellm     LiteLLM's proxy, one worker, no database (installed into bench/.venv-litellm)

For each: latency added over direct at concurrency 1, for JSON and for streamed replies (p50,
p99); the server's CPU time per request (utime + stime from /proc, all threads and children);
requests per second at concurrency 32 for a fixed time; peak RSS (VmHWM). At the end, the
tokenops ledger is opened (after the server stopped) and must hold one row per request sent.

Targets (issue 3): added p50 <= 1.0 ms and p99 <= 2.0 ms at concurrency 1, CPU <= 1.0 ms per
request (>= 1,000 req/s per core), peak RSS <= 120 MB, >= 15x LiteLLM's throughput in the same
run, and streaming adds no more than JSON. Issue 5: the guard adds <= 0.2 ms CPU per request
in-process and <= 1 ms p50 with Redis (each compared with plain tokenops in the same run).

    .venv/bin/python bench/gateway.py                      # everything, about 4 minutes
    .venv/bin/python bench/gateway.py --systems tokenops,guard,redis,pg   # (direct is always measured)

LiteLLM is installed on first use (`litellm[proxy]==1.106.2`, ~750 MB, a few minutes); if that
fails the run goes on without it and says why. `--litellm VENV` uses an existing install.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import orjson
import psycopg

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVER_CORE, CLIENT_CORE = 0, 1
LITELLM_VERSION = "1.106.2"
LITELLM_KEY = "sk-bench-master-key-0123456789abcdef"
SETTLE_S = 1.5
"""Wait after each phase before reading the server's CPU time: tokenops writes its ledger batch
up to a second after the last request, and that work belongs to the phase."""


@dataclass
class Phase:
    """One run of the load generator against one system."""

    sent: int
    ok: int
    latencies_ms: list[float]
    wall_s: float
    server_cpu_s: float | None

    @property
    def cpu_ms(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s * 1000 / self.sent

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


@dataclass
class Result:
    """Everything measured for one system."""

    name: str
    json: Phase
    stream: Phase
    load: Phase
    peak_rss_mb: float | None = None
    rss_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.json.sent + self.stream.sent + self.load.sent


# -- processes -----------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """The process and its descendants (LiteLLM may fork workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(p for kid in out for p in _tree(int(kid)))]


def _cpu_seconds(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
    return total / os.sysconf("SC_CLK_TCK")


def _memory_mb(pid: int) -> tuple[float, float]:
    """(peak RSS, current RSS) of the process tree, from VmHWM and VmRSS."""
    peak = now = 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:
            continue
        peak += int(status.split("VmHWM:")[1].split()[0])
        now += int(status.split("VmRSS:")[1].split()[0])
    return peak / 1024, now / 1024


def _fast_io(pid: int) -> str:
    """Which event loop and HTTP parser the server loaded (uvicorn picks uvloop/httptools if present)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    loop = "uvloop" if "/uvloop/loop." in maps else "asyncio"
    parser = "httptools" if "/httptools/parser/parser." in maps else "h11"
    return f"{loop} + {parser}"


@contextmanager
def _server(
    cmd: list[str], ready_url: str, *, core: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(core), *cmd], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{shlex.join(cmd)} did not answer {ready_url}; see {log}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down gracefully and tokenops flushes its ledger
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _phase(pid: int | None, url: str, headers: dict[str, str], mode: str, **opts: float) -> Phase:
    cmd = ["taskset", "-c", str(CLIENT_CORE), PY, str(HERE / "loadgen.py"), url, mode]
    for name, value in opts.items():
        cmd += [f"--{name}", str(value)]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    cpu0 = _cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    if pid:
        time.sleep(SETTLE_S)
    cpu1 = _cpu_seconds(pid) if pid else 0.0
    data = orjson.loads(out)
    if data["ok"] != data["sent"]:
        print(f"  warning: {data['sent'] - data['ok']} of {data['sent']} {mode} requests to {url} failed")
    return Phase(data["sent"], data["ok"], data["latencies_ms"], data["wall_s"], cpu1 - cpu0 if pid else None)


def measure(
    name: str, url: str, headers: dict[str, str], pid: int | None, args: argparse.Namespace, scale: float = 1.0
) -> Result:
    """The three phases against one running system."""
    n, s = max(50, int(args.requests * scale)), max(25, int(args.stream_requests * scale))
    print(f"- {name}: {n} JSON + {s} streamed requests at concurrency 1, {args.seconds:g} s at concurrency 32")
    result = Result(
        name,
        json=_phase(pid, url, headers, "latency", count=n, warmup=max(20, n // 20)),
        stream=_phase(pid, url, headers, "stream", count=s, warmup=max(10, s // 20)),
        load=_phase(pid, url, headers, "throughput", seconds=args.seconds, concurrency=args.concurrency),
    )
    if pid:
        result.peak_rss_mb, result.rss_mb = _memory_mb(pid)
    return result


# -- the systems ---------------------------------------------------------------------------


def run_passthrough(fake_url: str, tmp: Path, args: argparse.Namespace) -> Result:
    port = _port()
    cmd = [PY, str(HERE / "passthrough.py"), fake_url, str(port)]
    with _server(cmd, f"http://127.0.0.1:{port}/", core=SERVER_CORE, log=tmp / "passthrough.log") as pid:
        result = measure("aiohttp pass-through", f"http://127.0.0.1:{port}/v1/chat/completions", {}, pid, args)
        result.notes.append(_fast_io(pid))
    return result


GUARD_POLICIES = """
[[guard.task_budgets]]
workflow = "bench"
max_usd = "1000000"
[[guard.quotas]]
name = "team-month"
scope = "team"
period = "month"
max_usd = "1000000"
[[guard.rate_limits]]
name = "key-rpm"
requests_per_minute = 10000000
tokens_per_minute = 1000000000
[[guard.iteration_caps]]
max_calls = 100000000
[[guard.output_caps]]
max_output_tokens = 4096
[[guard.model_rules]]
allow = ["gpt-*", "claude-*"]
"""
"""Every kind of guardrail in force, with limits no request reaches: the most work a call can cause."""


def run_tokenops(
    fake_url: str,
    tmp: Path,
    args: argparse.Namespace,
    guard: str = "",
    ledger: str | None = None,
    duckdb_threads: int | None = None,
) -> tuple[Result, str]:
    tmp = tmp / (guard or ("replica" if ledger else f"plain{duckdb_threads or ''}"))
    tmp.mkdir()
    config = tmp / "tokenops.toml"
    ledger = ledger or str(tmp / "ledger.duckdb")
    text = (
        f'ledger = "{ledger}"\ndata_dir = "{tmp / "state"}"\n'
        f'[[gateway.upstreams]]\nname = "fake"\nkind = "openai"\nbase_url = "{fake_url}/v1"\n'
    )
    name = "tokenops replica (PostgreSQL)" if ledger.startswith("postgresql") else "tokenops (key+meter+ledger)"
    if guard:
        text += GUARD_POLICIES
        name = "tokenops + guard (in-process)"
    if duckdb_threads:
        text += f"[server]\nduckdb_threads = {duckdb_threads}\n"
        name = f"tokenops, DuckDB threads={duckdb_threads}"
    if guard == "redis":
        text += f'[guard_backend]\nredis_url = "{args.redis}"\nkey_prefix = "{{tokenops-bench-{os.getpid()}}}:guard:"\n'
        name = "tokenops + guard (Redis)"
    config.write_text(text)
    exe = str(Path(PY).with_name("tokenops"))
    created = subprocess.run(
        [exe, "keys", "create", "-c", str(config), "--user", "bench", "--team", "perf", "--name", "bench"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = next(word for word in created.split() if word.startswith("tok-"))
    port = _port()
    headers = {
        "authorization": f"Bearer {key}",
        "x-tokenops-workflow": "bench",
        "x-tokenops-feature": "triage",
        "x-tokenops-task": "bench-run",
    }
    cmd = [exe, "serve", "-c", str(config), "--port", str(port)]
    with _server(cmd, f"http://127.0.0.1:{port}/healthz", core=SERVER_CORE, log=tmp / "tokenops.log") as pid:
        result = measure(name, f"http://127.0.0.1:{port}/v1/chat/completions", headers, pid, args)
        result.notes.append(_fast_io(pid))
    # the server has stopped (and flushed): every request sent must be one ledger row
    counts = (
        "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE cost_total > 0), "
        "count(*) FILTER (WHERE estimated), count(*) FILTER (WHERE team = 'perf' AND workflow = 'bench') "
        "FROM usage_events"
    )
    if ledger.startswith("postgresql"):
        with psycopg.connect(ledger) as pg:
            total, ok, priced, estimated, attributed = pg.execute(counts).fetchone() or (0, 0, 0, 0, 0)
    else:
        with duckdb.connect(ledger, read_only=True) as db:
            total, ok, priced, estimated, attributed = db.execute(counts).fetchone() or (0, 0, 0, 0, 0)
    verdict = "ok  " if total == result.sent == ok == priced == attributed and not estimated else "MISS"
    check = (
        f"  {verdict} ledger: {total:,} rows for {result.sent:,} requests sent through {name} "
        f"({ok:,} ok, {priced:,} priced, {attributed:,} attributed to team/workflow, {estimated:,} estimated)"
    )
    return result, check


def _litellm_exe(args: argparse.Namespace, tmp: Path) -> tuple[Path | None, str]:
    venv = args.litellm or HERE / ".venv-litellm"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        if args.litellm is not None:
            return None, f"no litellm in {venv}"
        print(f"- installing litellm[proxy]=={LITELLM_VERSION} into {venv} (first run only, a few minutes) ...")
        log = tmp / "litellm-install.log"
        with log.open("wb") as out:
            steps = [
                ["python3", "-m", "venv", str(venv)],
                [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            ]
            for step in steps:
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    return None, f"`{shlex.join(step)}` failed: {' / '.join(tail)}"
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (exe, version) if exe.exists() else (None, f"no litellm executable in {venv}")


@contextmanager
def _postgres_database(server: str) -> Iterator[str]:
    """A fresh database on `server`, migrated (as a replica finds it), dropped afterwards."""
    name = f"tokenops_bench_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{server}/{name}"
    try:
        subprocess.run([PY, "-c", f"from tokenops.store import open_ledger; open_ledger({dsn!r}).close()"], check=True)
        yield dsn
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_litellm(fake_url: str, tmp: Path, args: argparse.Namespace) -> tuple[Result | None, str]:
    exe, version = _litellm_exe(args, tmp)
    if exe is None:
        return None, version
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: {fake_url}/v1\n      api_key: sk-fake\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price list download at start-up
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": LITELLM_KEY,
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
    }
    port = _port()
    cmd = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    ready = f"http://127.0.0.1:{port}/health/liveliness"
    with _server(cmd, ready, core=SERVER_CORE, log=tmp / "litellm.log", env=env) as pid:
        name = f"LiteLLM {version} (1 worker)"
        headers = {"authorization": f"Bearer {LITELLM_KEY}"}
        result = measure(name, f"http://127.0.0.1:{port}/v1/chat/completions", headers, pid, args, scale=0.1)
        result.notes.append(_fast_io(pid))
    return result, ""


# -- report --------------------------------------------------------------------------------


def _f(value: float | None, width: int, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def report(results: list[Result], ledger_checks: list[str], litellm_note: str) -> bool:
    base = results[0]
    print(
        f"\n{'':<30} {'--- JSON, c=1 ---':>17}  {'-- stream, c=1 --':>17}  {'--- server CPU ms/req ---':>26}  "
        f"{'c=32':>7} {'core 0':>6}  {'peak':>5}"
    )
    print(
        f"{'system':<30} {'+p50 ms':>8} {'+p99 ms':>8}  {'+p50 ms':>8} {'+p99 ms':>8}  "
        f"{'JSON':>8} {'stream':>8} {'c=32':>8}  {'req/s':>7} {'busy':>6}  {'RSS MB':>6}"
    )
    for r in results:
        busy = None if r.load.server_cpu_s is None else 100 * r.load.server_cpu_s / r.load.wall_s
        print(
            f"{r.name:<30} "
            f"{r.json.p50 - base.json.p50:>8.3f} {r.json.p99 - base.json.p99:>8.3f}  "
            f"{r.stream.p50 - base.stream.p50:>8.3f} {r.stream.p99 - base.stream.p99:>8.3f}  "
            f"{_f(r.json.cpu_ms, 8, 3)} {_f(r.stream.cpu_ms, 8, 3)} {_f(r.load.cpu_ms, 8, 3)}  "
            f"{r.load.ok / r.load.wall_s:>7.0f} {_f(busy, 5, 0)}%  {_f(r.peak_rss_mb, 6, 0)}"
        )
    print(
        f"(direct: p50 {base.json.p50:.3f} ms JSON, {base.stream.p50:.3f} ms stream; its c=32 rate is "
        "the ceiling of the fake provider + load generator on core 1)"
    )
    for r in results[1:]:
        print(f"  {r.name}: {', '.join(r.notes)}; RSS now {_f(r.rss_mb, 0, 0)} MB")
    for check in ledger_checks:
        print(check)
    tok = next((r for r in results if r.name.startswith("tokenops (")), None)
    if tok is None:
        return all("ok  " in check for check in ledger_checks)
    add, add99 = tok.json.p50 - base.json.p50, tok.json.p99 - base.json.p99
    sadd, sadd99 = tok.stream.p50 - base.stream.p50, tok.stream.p99 - base.stream.p99
    cpu = max(tok.json.cpu_ms or 0, tok.stream.cpu_ms or 0)
    checks = [
        (f"added p50 <= 1.0 ms (JSON {add:.3f}, stream {sadd:.3f})", max(add, sadd) <= 1.0),
        (f"added p99 <= 2.0 ms (JSON {add99:.3f}, stream {sadd99:.3f})", max(add99, sadd99) <= 2.0),
        (f"CPU <= 1.0 ms/request at c=1 ({cpu:.3f}; {1000 / cpu:,.0f} req/s per core)", cpu <= 1.0),
        (f"peak RSS <= 120 MB ({tok.peak_rss_mb:.0f})", (tok.peak_rss_mb or 0) <= 120),
        # 0.1 ms of slack: the two are separate samples of a ~1 ms quantity
        (f"streaming adds no more than JSON at p50 ({sadd:.3f} vs {add:.3f}, 0.1 ms slack)", sadd <= add + 0.1),
        ("ledger holds exactly one row per request", all("ok  " in check for check in ledger_checks)),
    ]
    replica = next((r for r in results if r.name.startswith("tokenops replica")), None)
    if replica is not None:
        rep99 = max(replica.json.p99 - base.json.p99, replica.stream.p99 - base.stream.p99)
        checks += [
            (
                f"replica on PostgreSQL: peak RSS <= 120 MB ({replica.peak_rss_mb:.0f})",
                (replica.peak_rss_mb or 0) <= 120,
            ),
            (f"replica on PostgreSQL: added p99 <= 2.0 ms ({rep99:.3f})", rep99 <= 2.0),
        ]
    checks += _guard_checks(tok, results)
    lite = next((r for r in results if r.name.startswith("LiteLLM")), None)
    if lite is not None:
        ratio = (tok.load.ok / tok.load.wall_s) / (lite.load.ok / lite.load.wall_s)
        checks.append((f">= 15x LiteLLM's throughput at c=32 ({ratio:.1f}x)", ratio >= 15))
    else:
        print(f"  (LiteLLM not measured: {litellm_note})")
    print("targets (issues 3 and 5), tokenops:")
    for text, ok in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
    return all(ok for _, ok in checks)


def _guard_checks(plain: Result, results: list[Result]) -> list[tuple[str, bool]]:
    """Issue 5: what the guard adds over plain tokenops, measured in this same run."""
    checks = []
    local = next((r for r in results if r.name == "tokenops + guard (in-process)"), None)
    if local is not None and local.json.cpu_ms is not None and plain.json.cpu_ms is not None:
        cpu = local.json.cpu_ms - plain.json.cpu_ms
        checks.append((f"guard in-process adds <= 0.2 ms CPU/request ({cpu:.3f})", cpu <= 0.2))
    shared = next((r for r in results if r.name == "tokenops + guard (Redis)"), None)
    if shared is not None:
        added = shared.json.p50 - plain.json.p50
        checks.append((f"guard on Redis adds <= 1 ms p50 ({added:.3f})", added <= 1.0))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="JSON requests at concurrency 1")
    parser.add_argument("--stream-requests", type=int, default=2000, help="streamed requests at concurrency 1")
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of the concurrency phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--systems", default="aiohttp,tokenops,guard,redis,litellm", help="comma-separated subset")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for the `redis` system")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server for the `pg` system"
    )
    parser.add_argument("--litellm", type=Path, default=None, help="venv with litellm[proxy] installed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, ledger)")
    args = parser.parse_args()
    systems = set(args.systems.split(","))
    if os.cpu_count() is None or len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: the system under test on core 0, provider and load generator on core 1")
    os.sched_setaffinity(0, {CLIENT_CORE})  # this script stays off the server's core too
    print(f"$ {shlex.join([Path(PY).name, *sys.argv])}")
    tmp = Path(tempfile.mkdtemp(prefix="tokenops-gw-bench-"))
    started = time.monotonic()
    results: list[Result] = []
    ledger_checks: list[str] = []
    litellm_note = "not selected"
    try:
        fake_port = _port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        fake = [PY, "-m", "tokenops.testing.fake_provider", "--port", str(fake_port)]
        with _server(fake, f"{fake_url}/v1/models", core=CLIENT_CORE, log=tmp / "fake.log"):
            results.append(measure("direct (no proxy)", f"{fake_url}/v1/chat/completions", {}, None, args))
            if "aiohttp" in systems:
                results.append(run_passthrough(fake_url, tmp, args))
            for system, guard in (("tokenops", ""), ("guard", "local"), ("redis", "redis")):
                if system in systems:
                    result, check = run_tokenops(fake_url, tmp, args, guard)
                    results.append(result)
                    ledger_checks.append(check)
            if "t1" in systems:
                result, check = run_tokenops(fake_url, tmp, args, duckdb_threads=1)
                results.append(result)
                ledger_checks.append(check)
            if "pg" in systems:
                with _postgres_database(args.postgres) as dsn:
                    result, check = run_tokenops(fake_url, tmp, args, ledger=dsn)
                    results.append(result)
                    ledger_checks.append(check)
            if "litellm" in systems:
                lite, litellm_note = run_litellm(fake_url, tmp, args)
                if lite is not None:
                    results.append(lite)
        passed = report(results, ledger_checks, litellm_note)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
