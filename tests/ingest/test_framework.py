"""The importer framework: rows with their lines, chunks on record boundaries, run_import, the CLI."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.factories import T0
from tokenops.cli import app
from tokenops.events import TokenUsage, UsageEvent
from tokenops.ingest import Batch, RowError, get_importer, run_import, stable_id
from tokenops.ingest import _rows as rows_module
from tokenops.ingest._rows import (
    _GIL_FREE_COUNT,
    Chunk,
    _Buffers,
    chunk_records,
    coalesced,
    csv_records,
    csv_rows,
    in_order,
    jsonl_rows,
    line_chunks,
    open_text,
)
from tokenops.ingest.run import UnknownSource, as_url
from tokenops.store import DuckDBLedger


def test_csv_rows_give_the_line_of_each_record_and_name_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('a, b\n1,2\n3,"multi\nline"\n\n4\n5,6\n')
    items = list(csv_rows(open_text(path), path))
    assert items[0] == (2, {"a": "1", "b": "2"})
    assert items[1] == (3, {"a": "3", "b": "multi\nline"})
    assert isinstance(items[2], RowError) and str(items[2]) == f"{path}:6: expected 2 fields as in the header, found 1"
    assert items[3] == (7, {"a": "5", "b": "6"})


def test_csv_records_reads_gzip_and_skips_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress("\ufeffa,b\n1,2\n".encode()))
    header, records = csv_records(open_text(path), path)
    assert header == ["a", "b"] and list(records) == [(2, ["1", "2"])]


def test_jsonl_rows_skip_blank_lines_and_name_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[2]\n')
    items = list(jsonl_rows(open_text(path), path))
    assert items[0] == (1, {"a": 1}) and items[2] == (4, [2])
    assert isinstance(items[1], RowError) and items[1].line == 3 and "not valid JSON" in items[1].reason


def test_line_chunks_end_on_records_and_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    lines = ["a,b"] + [f'{i},"q\n{i}"' if i % 3 == 0 else f"{i},{i}" for i in range(50)]
    path.write_text("\n".join(lines) + "\n")
    seen: list[tuple[int, list[str]]] = []
    for chunk in line_chunks(path, size=16, quoted=True, skip=1):
        seen.extend(item for item in chunk_records(chunk, 2, path) if not isinstance(item, RowError))
    assert [values[0] for _, values in seen] == [str(i) for i in range(50)]
    reference = [item for item in csv_records(open_text(path), path)[1] if not isinstance(item, RowError)]
    assert seen == reference  # same lines as reading the file in one go


@pytest.mark.parametrize("size", [70_000, 131_072, 200_003])
def test_line_chunks_of_large_blocks_end_on_records(tmp_path: Path, size: int) -> None:
    """Blocks past `_GIL_FREE_COUNT` are counted by numpy: the same records and lines as one read."""
    path = tmp_path / "x.csv"
    rows = [f'{i},"{"q" * (i % 97)}\n""{i}""\n"' if i % 2 else f"{i},{'x' * (i % 53)}" for i in range(15_000)]
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    seen: list[tuple[int, list[str]]] = []
    chunks = list(line_chunks(path, size=size, quoted=True, skip=1))
    for chunk in chunks:
        assert len(chunk.data) >= _GIL_FREE_COUNT or chunk is chunks[-1]
        seen.extend(item for item in chunk_records(chunk, 2, path) if not isinstance(item, RowError))
    reference = [item for item in csv_records(open_text(path), path)[1] if not isinstance(item, RowError)]
    assert len(chunks) > 2 and seen == reference and len(seen) == 15_000


def test_line_chunks_count_every_line_of_a_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"1\n2\n3"))
    chunks = list(line_chunks(path, size=2))
    assert b"".join(c.data for c in chunks) == b"1\n2\n3"
    before = [b"".join(c.data for c in chunks[:i]).count(b"\n") + 1 for i in range(len(chunks))]
    assert [c.first_line for c in chunks] == before and len(chunks) > 1
    assert chunks[-1].position == path.stat().st_size


def test_line_chunks_reuse_a_buffer_only_once_nothing_holds_its_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are read into reused buffers: a chunk someone still holds is never overwritten."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * (i % 41)) for i in range(3_000)))
    made: list[int] = []

    def counted(size: int) -> bytearray:
        made.append(size)
        return bytearray(size)

    monkeypatch.setattr(rows_module, "bytearray", counted, raising=False)  # the pool's only way to a new buffer
    held: list[tuple[Chunk, bytes]] = []
    texts: list[bytes] = []
    for i, chunk in enumerate(line_chunks(path, size=1_000)):
        texts.append(bytes(chunk.data))
        if i % 5 == 0:
            held.append((chunk, bytes(chunk.data)))
    assert b"".join(texts) == path.read_bytes()
    assert all(chunk.data == copy for chunk, copy in held)  # held chunks kept their bytes
    assert len(held) > 20 and len(made) < len(texts) / 2, (len(made), len(texts))  # the others' were read into again


def test_chunk_buffers_are_handed_out_again_only_when_free() -> None:
    buffers = _Buffers()
    first = buffers.take(100)
    second = buffers.take(80)
    assert first is not second and len(second) == 80
    first_id = id(first)
    del first
    again = buffers.take(120)
    assert id(again) == first_id and len(again) == 120  # reused, resized to what was asked
    assert buffers.take(50) is not second  # `second` is still held


@dataclass(frozen=True, slots=True)
class _Toy:
    """A tiny importer: one usage event per line `id,input,output`, 'bad' lines rejected."""

    name: str = "toy"
    description: str = "toy"
    patterns: tuple[str, ...] = ("*.toy",)

    def read(self, path: Path) -> Iterator[Batch]:
        batch = Batch()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            batch.rows += 1
            request_id, _, rest = line.partition(",")
            if rest == "bad":
                batch.errors.append(RowError(str(path), number, "bad row"))
                continue
            usage = TokenUsage(input_tokens=int(rest), output_tokens=1)
            event = UsageEvent(request_id, T0, "openai", "gpt-4o", usage, None, "unpriced", source="import:toy")
            batch.records.append(event)
        yield batch


def test_run_import_keeps_good_rows_names_bad_ones_and_is_idempotent(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.toy").write_text("r1,10\nr2,bad\nr3,30\n")
    (folder / "b.toy").write_text("r4,40\n")
    (folder / "ignored.txt").write_text("r9,1\n")
    progress: list[tuple[int, int]] = []
    with DuckDBLedger(":memory:") as ledger:
        report = run_import(_Toy(), [folder], ledger, progress=lambda done, total: progress.append((done, total)))
        assert (report.rows, report.imported, report.rejected, report.duplicates) == (4, 3, 1, 0)
        assert [str(e) for e in report.errors] == [f"{folder / 'a.toy'}:2: bad row"]
        again = run_import(_Toy(), [folder], ledger)
        assert (again.imported, again.duplicates) == (0, 3)
        assert ledger.query_rows("SELECT count(*) AS n FROM usage_events")[0]["n"] == 3
    total = (folder / "a.toy").stat().st_size + (folder / "b.toy").stat().st_size
    assert progress[-1] == (total, total)


def test_run_import_rejects_a_missing_path(tmp_path: Path) -> None:
    with DuckDBLedger(":memory:") as ledger, pytest.raises(FileNotFoundError):
        run_import(_Toy(), [tmp_path / "nope.toy"], ledger)


def test_urls_are_only_taken_by_importers_that_read_them() -> None:
    litellm = get_importer("litellm")
    assert as_url(litellm, Path("postgresql://postgres@127.0.0.1:5432/test")) == (
        "postgresql://postgres@127.0.0.1:5432/test"  # Path() dropped a slash; it is put back
    )
    assert as_url(litellm, "postgres://h/db?table=s.t") == "postgres://h/db?table=s.t"
    assert as_url(litellm, Path("spend.csv")) is None
    assert as_url(get_importer("bedrock"), "postgresql://h/db") is None


def test_unknown_source_lists_the_importers() -> None:
    with pytest.raises(UnknownSource, match="litellm"):
        get_importer("nope")


def test_stable_id_is_deterministic() -> None:
    assert stable_id("import:x", "a", 1) == stable_id("import:x", "a", 1) != stable_id("import:x", "a", 2)


def _bedrock_line(request_id: str, tokens: int | str) -> str:
    return (
        '{"schemaType":"ModelInvocationLog","schemaVersion":"1.0","timestamp":"2025-01-10T14:08:32Z",'
        f'"accountId":"1","requestId":"{request_id}","operation":"Converse","modelId":"amazon.nova-micro-v1:0",'
        f'"input":{{"inputTokenCount":{tokens}}},"output":{{"outputTokenCount":5}}}}'
    )


def test_cli_exit_codes_summary_and_errors_file(tmp_path: Path) -> None:
    runner = CliRunner()
    ledger = tmp_path / "ledger.duckdb"
    good = tmp_path / "good.jsonl"
    good.write_text(_bedrock_line("a", 10) + "\n")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(_bedrock_line("b", 10) + "\n" + _bedrock_line("c", '"x"') + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    errors = tmp_path / "errors.txt"

    result = runner.invoke(app, ["import", "bedrock", str(good), "--ledger", f"duckdb:{ledger}", "-q"])
    assert result.exit_code == 0, result.output
    assert "1 imported" in result.output
    result = runner.invoke(
        app, ["import", "bedrock", str(mixed), "--ledger", f"duckdb:{ledger}", "-q", "--errors", str(errors)]
    )
    assert result.exit_code == 1
    assert errors.read_text() == f"{mixed}:2: input.inputTokenCount is 'x', expected a whole number of tokens >= 0\n"
    result = runner.invoke(app, ["import", "bedrock", str(bad), "--ledger", f"duckdb:{ledger}", "-q"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["import", "bedrock", str(good), "--ledger", f"duckdb:{ledger}"])
    assert result.exit_code == 0 and "1 already in the ledger" in result.output


@pytest.mark.parametrize(("config", "threads"), [("", 1), ("[duckdb]\nthreads = 2\n", 2)])
def test_cli_import_writes_with_one_duckdb_thread_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, threads: int
) -> None:
    """The importer's parsers have the other cores: DuckDB's own workers cost an import more than they save.

    And the ledger keeps the memory a batch frees for the next (no allocator flush after each large free)."""
    seen: list[object] = []
    kept: list[object] = []

    class Watching(DuckDBLedger):
        def append(self, table: str, data: pa.Table) -> int:
            seen.append(self.query_rows("SELECT current_setting('threads') AS n")[0]["n"])
            flush = "SELECT current_setting('allocator_bulk_deallocation_flush_threshold') AS f"
            kept.append(self.query_rows(flush)[0]["f"])
            return super().append(table, data)

    monkeypatch.setattr("tokenops.cli.imports.DuckDBLedger", Watching)
    settings = tmp_path / "tokenops.toml"
    settings.write_text(config)
    good = tmp_path / "good.jsonl"
    good.write_text(_bedrock_line("a", 10) + "\n")
    ledger = f"duckdb:{tmp_path / 'ledger.duckdb'}"
    result = CliRunner().invoke(
        app, ["import", "bedrock", str(good), "--ledger", ledger, "--config", str(settings), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [threads] and kept == ["931.3 GiB"]


def test_coalesced_merges_small_batches_into_fewer_appends() -> None:
    def batch(n: int, position: int, error: bool = False) -> Batch:
        table = pa.table({"x": list(range(n))})
        errors = [RowError("f", position, "bad")] if error else []
        return Batch(tables={"t": table}, errors=errors, rows=n + len(errors), bytes_read=position)

    merged = list(coalesced([batch(3, 10), batch(4, 20, error=True), batch(5, 30), batch(1, 40)], rows=8))
    assert [(b.rows, b.bytes_read, b.tables["t"].num_rows) for b in merged] == [(8, 20, 7), (6, 40, 6)]
    assert [str(e) for e in merged[0].errors] == ["f:20: bad"] and merged[1].errors == []


class _FailingLedger(DuckDBLedger):
    """A ledger whose second append fails, as a full disk or a lost server would."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.appends = 0

    def append(self, table: str, data: pa.Table) -> int:
        self.appends += 1
        if self.appends == 2:
            raise OSError("disk full")
        return super().append(table, data)


@dataclass(frozen=True, slots=True)
class _Batches:
    """An importer yielding one single-row batch per line, then failing if the file says so."""

    name: str = "batches"
    description: str = "batches"
    patterns: tuple[str, ...] = ("*.toy",)

    def read(self, path: Path) -> Iterator[Batch]:
        for line in path.read_text().splitlines():
            if line == "boom":
                raise ValueError("unreadable")
            yield from _Toy().read(_one_line(path, line))


def _one_line(path: Path, line: str) -> Path:
    single = path.with_name(f"{path.name}.{line.partition(',')[0]}")
    single.write_text(line + "\n")
    return single


def test_the_writer_thread_raises_the_ledgers_error_and_writes_in_order(tmp_path: Path) -> None:
    path = tmp_path / "a.toy"
    path.write_text("".join(f"r{i},{i}\n" for i in range(6)))
    with _FailingLedger() as ledger:
        with pytest.raises(OSError, match="disk full"):
            run_import(_Batches(), [path], ledger)
        assert ledger.query_rows("SELECT request_id FROM usage_events") == [{"request_id": "r0"}]
        assert ledger.appends == 2  # nothing written after the failure


def test_batches_read_before_an_importer_error_are_written(tmp_path: Path) -> None:
    path = tmp_path / "a.toy"
    path.write_text("r0,1\nr1,2\nboom\nr3,4\n")
    with DuckDBLedger(":memory:") as ledger:
        with pytest.raises(ValueError, match="unreadable"):
            run_import(_Batches(), [path], ledger)
        rows = ledger.query_rows("SELECT request_id FROM usage_events ORDER BY 1")
    assert rows == [{"request_id": "r0"}, {"request_id": "r1"}]


def test_in_order_keeps_the_order_and_bounds_the_work_in_flight() -> None:
    import threading
    import time

    started: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            started.append(item)
        time.sleep(0.001 * (item % 3))  # later items may finish first
        return item * 10

    def items() -> Iterator[int]:
        for item in range(20):
            with lock:
                assert len(started) - consumed[0] <= 2  # never more than two items handed out ahead
            yield item

    consumed = [0]
    results = []
    for result in in_order(items(), work, 2):
        consumed[0] += 1
        results.append(result)
    assert results == [i * 10 for i in range(20)]
    assert list(in_order(range(3), str, 1)) == ["0", "1", "2"]

    def fails(item: int) -> int:
        if item == 2:
            raise ValueError("bad chunk")
        return item

    with pytest.raises(ValueError, match="bad chunk"):
        list(in_order(range(5), fails, 2))


def test_import_caps_the_duckdb_ledgers_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text("")
    ledger = tmp_path / "ledger.duckdb"
    monkeypatch.setenv("TOKENOPS_DUCKDB__MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("TOKENOPS_DUCKDB__THREADS", "1")
    opened: list[DuckDBLedger] = []
    original = DuckDBLedger.close

    def close(self: DuckDBLedger) -> None:
        opened.append(self)
        settings = self.query("SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t")
        assert settings.to_pylist() == [{"m": "286.1 MiB", "t": 1}]
        original(self)

    monkeypatch.setattr(DuckDBLedger, "close", close)
    result = CliRunner().invoke(app, ["import", "bedrock", str(path), "--ledger", f"duckdb:{ledger}", "-q"])
    assert result.exit_code == 0, result.output
    assert opened
