"""Usage report pages by the chunk: Arrow reads the result rows into columns, Python only the unusual ones.

JSON Lines of report pages (one page per line, as the API returns them) are read by the chunk
of whole lines with Arrow's JSON reader, and each page's `data[].results[]` is flattened into
one row per result. A provider module (`openai_usage`, `anthropic_usage`) turns those columns
into the ledger's `provider_usage` columns and marks every row whose reading is not plainly
what its `usage_record` would make of it (a missing or negative count, an unexpected `object`,
a count too large to add up in 64 bits...). Such a row is re-read by `usage_record` itself from
its page parsed by `json`, so it is stored, or named as `file:line: reason`, exactly as on the
row path. Tags are serialised by the row path's own `orjson` call, once per distinct set of
values; stable ids are `stable_id`'s hash of the same parts, so a re-import matches either path.

A page that is odd as a whole (a bucket without a `results` list, a span the row path rejects,
an explicit `"object": null` that `json` tells from an absent one) is read by the row path,
and so is any line Arrow cannot read at all: a run of lines it rejects is halved until the bad
lines are alone, so one bad page costs a few re-parses of its chunk, not the fast path.

Costs: `BucketPricer.unit_rates` gives per (model, bucket start, batch, tier) the price per
count of each kind in 1e-12 USD (the ledger's money unit). When those are whole numbers a
bucket's cost is an integer dot product, exactly the Decimal sum `BucketPricer.price` makes;
any other rate, or a cost near what the ledger's DECIMAL(18,12) holds, sends its rows to the
row path.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tokenops.events import ProviderUsage
from tokenops.ingest._events import decimal_array, flags, ts_us
from tokenops.ingest._provider_reports import (
    Bad,
    BucketPricer,
    Result,
    Span,
    checked,
    is_json_lines,
    line_rows,
    read_report,
)
from tokenops.ingest._rows import Batch, Chunk, RowError, coalesced, in_order, line_chunks
from tokenops.store import rows as ledger_rows
from tokenops.store.schema import TABLES

CHUNK_BYTES = 4 << 20
"""Bytes of JSON Lines parsed at a time: two chunks parse at once, so an import's peak memory grows
with it (16 MB: +150 MB at 1M rows) while its speed hardly does."""
APPEND_ROWS = 100_000
"""Rows per ledger append (chunks are merged up to it)."""
SAFE_COUNT = 1 << 53
"""Counts at or above this are left to Python (sums of them could overflow 64 bits)."""
_MAX_UNITS = 1e17
"""Costs (in 1e-12 USD) from here up are left to Python: the ledger's DECIMAL(18,12) ends at 1e18."""
_SCHEMA = TABLES["provider_usage"].arrow_schema
_NULL_OBJECT = re.compile(rb'"object"\s*:\s*null')
"""`json` tells `"object": null` from an absent `object` (a page or bucket default); Arrow does not."""
_BLANK = re.compile(rb"\n[ \t\r]*\n")
_BLANK_FIRST = re.compile(rb"[ \t\r]*(?:\n|\Z)")
_LONE_CR = re.compile(rb"\r(?!\n)")
"""The row path's text stream ends a line at a lone CR too; line_chunks does not."""

Convert = Callable[[Result, BucketPricer], ProviderUsage]
"""A provider's row path: one result row as a record, raising `Bad` when it cannot."""


@dataclass(frozen=True, slots=True)
class Results:
    """A chunk's usual result rows as columns, with their buckets' spans: what a provider reads."""

    fields: pa.StructArray
    """The result rows, typed as the provider's `Layout.row_type`."""
    start_s: np.ndarray
    """Bucket start in Unix seconds (the time part of the stable id), int64."""
    end_s: np.ndarray
    """Bucket end in Unix seconds, int64."""


@dataclass(frozen=True, slots=True)
class Read:
    """A provider's reading of `Results`, row for row."""

    columns: dict[str, pa.Array]
    """`provider_usage` columns: model, requests, the six token counts, batch, project_id, user_id,
    api_key_id and tags."""
    id_parts: list[pa.Array]
    """String forms (`str()` of the value, "None" for null) of the stable id's parts after the name."""
    price_model: pa.Array
    """Model priced (null: unpriced)."""
    price_batch: np.ndarray
    """Batch price."""
    price_tier: pa.Array
    """Service tier passed to the pricer (null for none)."""
    price_long: np.ndarray
    """Long-context rate."""
    unusual: np.ndarray
    """Rows `usage_record` must read itself."""


@dataclass(frozen=True, slots=True)
class Layout:
    """How one provider's usage pages look to Arrow and become ledger rows."""

    name: str
    """Importer name: the stable ids' prefix and the `import:<name>` source."""
    provider: str
    """`provider` of the rows and of the pricer."""
    span_fields: tuple[pa.Field, ...]
    """Bucket fields `span` reads."""
    row_type: pa.StructType
    """Result row fields read into columns (others are ignored, as `usage_record` ignores them)."""
    span: Span
    """The row path's bucket span."""
    convert: Convert
    """The row path's `usage_record`."""
    read: Callable[[Results], Read]
    """The columnar reading of the rows."""

    def parse_options(self) -> pj.ParseOptions:
        """Arrow's JSON options for a page of this layout."""
        bucket = pa.struct([("object", pa.string()), *self.span_fields, ("results", pa.list_(self.row_type))])
        schema = pa.schema([("object", pa.string()), ("data", pa.list_(bucket))])
        return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")


def read_usage(path: Path, layout: Layout, pricer: BucketPricer) -> Iterator[Batch]:
    """Stream a saved usage report: JSON Lines by the chunk in columns, a JSON document row by row."""
    if not is_json_lines(path):
        yield from read_report(path, layout.span, lambda result: layout.convert(result, pricer))
        return
    options = layout.parse_options()
    chunks = _shifted(line_chunks(path, CHUNK_BYTES))
    yield from coalesced(in_order(chunks, lambda chunk: _chunk(chunk, str(path), layout, pricer, options)), APPEND_ROWS)


def _shifted(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Chunks numbered as the row path numbers lines, where a lone CR ends a line too."""
    shift = 0
    for chunk in chunks:
        yield replace(chunk, first_line=chunk.first_line + shift) if shift else chunk
        if b"\r" in chunk.data:
            shift += len(_LONE_CR.findall(chunk.data))


@dataclass(slots=True)
class _Slow:
    """What the row path read of a chunk, with each record's place in the file for ordering."""

    batch: Batch
    """Records and errors, in file order."""
    places: list[tuple[int, int]]
    """(line, row within the page) of each record in `batch.records`."""

    def take(self, line: int, count: int, seq: int = 0) -> int:
        """Place the records added since the last call on `line`; returns `count`."""
        added = len(self.batch.records) - len(self.places)
        self.places.extend((line, seq + i) for i in range(added))
        return count


def _chunk(chunk: Chunk, name: str, layout: Layout, pricer: BucketPricer, options: pj.ParseOptions) -> Batch:
    if not chunk.data.isascii():
        chunk.data.decode("utf-8")  # bytes that are not UTF-8 fail here as on the row path, not pass through Arrow
    slow = _Slow(Batch(), [])
    convert = slow_convert(layout, pricer)
    rows = 0
    tables: list[pa.Table] = []
    places: list[np.ndarray] = []
    if b"\r" in chunk.data and _LONE_CR.search(chunk.data):
        segments: Iterator[tuple[bytes | bytearray, int, pa.Table | None]] = iter(
            [(chunk.data, chunk.first_line, None)]
        )
    else:
        segments = _segments(chunk.data, chunk.first_line, options, chunk.lines + (not chunk.data.endswith(b"\n")))
    for data, first_line, pages in segments:
        if pages is None:
            text = io.StringIO(data.decode("utf-8"), newline="")
            for number, line in enumerate(text, start=first_line):
                rows += slow.take(number, line_rows(name, number, line, layout.span, convert, slow.batch))
            continue
        fast = _fast(data, first_line, pages, name, layout, pricer, slow)
        rows += fast.rows
        if fast.table is not None:
            tables.append(fast.table)
            places.append(fast.places)
    if slow.batch.records:
        records = [r for r in slow.batch.records if isinstance(r, ProviderUsage)]
        tables.append(ledger_rows.to_arrow("provider_usage", map(ledger_rows.provider_usage_row, records)))
        places.append(np.array([line << 32 | seq for line, seq in slow.places], dtype=np.int64))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0] if tables else None
    if table is not None and len(tables) > 1:  # in file order, as the row path appends them
        table = table.take(pa.array(np.argsort(np.concatenate(places), kind="stable")))
    out = Batch(errors=slow.batch.errors, rows=rows, bytes_read=chunk.position)
    if table is not None and table.num_rows:
        out.tables["provider_usage"] = table
    return out


def _segments(
    data: bytes | bytearray, first_line: int, options: pj.ParseOptions, lines: int = -1
) -> Iterator[tuple[bytes | bytearray, int, pa.Table | None]]:
    """Runs of lines with their pages as Arrow reads them, or None for a single line it cannot read."""
    if lines < 0:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    table = None if _has_blank(data) else _parse(data, options)
    if table is not None and table.num_rows == lines:  # each line is one page (two objects on a line are not)
        yield data, first_line, table
        return
    if lines <= 1:
        yield data, first_line, None
        return
    half = lines // 2
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    cut = int(newlines[half - 1]) + 1
    yield from _segments(data[:cut], first_line, options)
    yield from _segments(data[cut:], first_line + half, options)


def _has_blank(data: bytes | bytearray) -> bool:
    """Whether a line is empty or only spaces (Arrow skips it, the row path counts it: they must be split apart)."""
    if _BLANK_FIRST.match(data) or _BLANK.search(data):
        return True
    last = data.rfind(b"\n")
    return last != len(data) - 1 and not data[last + 1 :].strip(b" \t\r")


def _parse(data: bytes | bytearray, options: pj.ParseOptions) -> pa.Table | None:
    read = pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20))  # a page must fit a block
    try:
        return pj.read_json(pa.BufferReader(data), read_options=read, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


@dataclass(frozen=True, slots=True)
class _Fast:
    """What the columns made of a run of pages."""

    table: pa.Table | None
    """The usual rows, in the ledger's shape (None when there are none)."""
    places: np.ndarray
    """Sort key of each row of `table`: line << 32 | row within its page."""
    rows: int
    """Input rows the run counts for, as the row path counts them."""


@dataclass(frozen=True, slots=True)
class _Flat:
    """The result rows of a run of pages, one per row of the page tables that are not odd."""

    odd: np.ndarray
    """Pages the row path reads whole."""
    fields: pa.StructArray
    """The result rows of the other pages."""
    page: np.ndarray
    """Page (0-based line in the run) of each row."""
    bucket: np.ndarray
    """Index of the row's bucket in its page's `data`."""
    index: np.ndarray
    """Index of the row in its bucket's `results`."""
    in_page: np.ndarray
    """Index of the row among its page's rows (file order)."""
    spans: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    """Bucket start and end in microseconds, and in the stable id's seconds."""
    starts: dict[int, datetime]
    """Bucket start datetimes by microseconds."""


def _flatten(data: bytes | bytearray, pages: pa.Table, layout: Layout) -> _Flat:
    odd = np.zeros(pages.num_rows, dtype=bool)
    if _NULL_OBJECT.search(data):
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        for match in _NULL_OBJECT.finditer(data):
            odd[int(np.searchsorted(newlines, match.start()))] = True
    odd |= _other(pages["object"].combine_chunks(), "page")
    listed = pages["data"].combine_chunks()
    odd |= flags(listed.is_null())
    buckets = pc.list_flatten(listed)
    bucket_page = _np(pc.list_parent_indices(listed))
    odd_bucket = flags(buckets.is_null()) | _other(pc.struct_field(buckets, "object"), "bucket")
    results = pc.struct_field(buckets, "results")
    odd_bucket |= flags(results.is_null())
    spans, starts = _spans(buckets, layout, odd_bucket)
    odd[bucket_page[odd_bucket]] = True
    fields = pc.list_flatten(results)
    row_bucket = _np(pc.list_parent_indices(results))
    row_index = _positions(row_bucket)
    odd[bucket_page[row_bucket][flags(fields.is_null())]] = True
    good = ~odd[bucket_page[row_bucket]]
    if not good.all():
        fields = fields.filter(pa.array(good))
        row_bucket, row_index = row_bucket[good], row_index[good]
    page = bucket_page[row_bucket]
    row_spans = (spans[0][row_bucket], spans[1][row_bucket], spans[2][row_bucket], spans[3][row_bucket])
    return _Flat(odd, fields, page, _positions(bucket_page)[row_bucket], row_index, _positions(page), row_spans, starts)


def _fast(
    data: bytes | bytearray,
    first_line: int,
    pages: pa.Table,
    name: str,
    layout: Layout,
    pricer: BucketPricer,
    slow: _Slow,
) -> _Fast:
    """The rows of pages Arrow read: usual ones in columns, the others through the row path into `slow`."""
    flat = _flatten(data, pages, layout)
    rows = len(flat.fields)
    if rows:
        start_us, end_us, start_s, end_s = flat.spans
        read = layout.read(Results(flat.fields, start_s, end_s))
        units, priced, sources, unusual = _costs(read, start_us, layout.provider, pricer, flat.starts)
        unusual |= read.unusual
    else:
        unusual = np.zeros(0, dtype=bool)
    rows += _python(data, first_line, flat, np.flatnonzero(unusual), name, layout, pricer, slow)
    keep = ~unusual
    if not keep.any():
        return _Fast(None, np.zeros(0, dtype=np.int64), rows)
    mask = pa.array(keep)
    m = int(keep.sum())
    columns = {key: values.filter(mask) for key, values in read.columns.items()}
    columns["usage_id"] = stable_ids(layout.name, [part.filter(mask) for part in read.id_parts])
    columns["source"] = pa.repeat(pa.scalar(f"import:{layout.name}"), m)
    columns["provider"] = pa.repeat(pa.scalar(layout.provider), m)
    columns["start_ts"] = pa.array(start_us[keep], pa.timestamp("us"))
    columns["end_ts"] = pa.array(end_us[keep], pa.timestamp("us"))
    columns["cost_total"] = decimal_array(units[keep], priced[keep])
    columns["unpriced"] = pa.array(~priced[keep])
    columns["price_source"] = sources.filter(mask)
    table = pa.Table.from_arrays([columns[field.name] for field in _SCHEMA], schema=_SCHEMA)
    places = (first_line + flat.page[keep]).astype(np.int64) << 32 | flat.in_page[keep]
    return _Fast(table, places, rows)


def _python(
    data: bytes | bytearray,
    first_line: int,
    flat: _Flat,
    unusual: np.ndarray,
    name: str,
    layout: Layout,
    pricer: BucketPricer,
    slow: _Slow,
) -> int:
    """Odd pages and unusual rows through the row path, in file order; the rows the odd pages count for."""
    odd = np.flatnonzero(flat.odd)
    if not len(odd) and not len(unusual):
        return 0
    lines = data.split(b"\n")
    convert = slow_convert(layout, pricer)
    by_page: dict[int, list[int]] = {page: [] for page in odd.tolist()}
    for index in unusual.tolist():
        by_page.setdefault(int(flat.page[index]), []).append(index)
    count = 0
    for page_index in sorted(by_page):
        line = first_line + page_index
        if flat.odd[page_index]:
            count += slow.take(line, line_rows(name, line, lines[page_index], layout.span, convert, slow.batch))
            continue
        page = json.loads(lines[page_index], parse_float=Decimal)
        for index in by_page[page_index]:
            b, r = int(flat.bucket[index]), int(flat.index[index])
            bucket, where = page["data"][b], f"data[{b}]"
            start, end = layout.span(bucket, where)
            try:
                slow.batch.records.append(
                    checked(convert, Result(line, f"{where}.results[{r}]", start, end, bucket["results"][r]))
                )
            except Bad as exc:
                slow.batch.errors.append(RowError(name, line, str(exc)))
            slow.take(line, 0, int(flat.in_page[index]))  # counted with the fast rows
    return count


def slow_convert(layout: Layout, pricer: BucketPricer) -> Callable[[Result], ProviderUsage]:
    """The row path's converter with its pricer."""
    return lambda result: layout.convert(result, pricer)


def _spans(
    buckets: pa.Array, layout: Layout, odd: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict[int, datetime]]:
    """Per bucket: start and end in microseconds and in the stable id's seconds, as the row path's
    `span` reads them once per distinct value (`odd` marks those it rejects); and the start datetimes."""
    n = len(buckets)
    out = [np.zeros(n, dtype=np.int64) for _ in range(4)]
    starts: dict[int, datetime] = {}
    names = [field.name for field in layout.span_fields]
    values = [pc.struct_field(buckets, key).to_pylist() for key in names]
    seen: dict[tuple[object, ...], tuple[int, int, int, int] | None] = {}
    for i, key in enumerate(zip(*values, strict=True)):
        if odd[i]:
            continue
        if key not in seen:
            seen[key] = _span(dict(zip(names, key, strict=True)), layout.span, starts)
        found = seen[key]
        if found is None:
            odd[i] = True
            continue
        for column, value in zip(out, found, strict=True):
            column[i] = value
    return (out[0], out[1], out[2], out[3]), starts


def _span(bucket: dict[str, object], span: Span, starts: dict[int, datetime]) -> tuple[int, int, int, int] | None:
    try:
        start, end = span(bucket, "")
    except Bad:
        return None
    start_us = ts_us(start)
    starts[start_us] = start
    return start_us, ts_us(end), int(start.timestamp()), int(end.timestamp())


def _costs(
    read: Read, start_us: np.ndarray, provider: str, pricer: BucketPricer, starts: dict[int, datetime]
) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
    """(cost in 1e-12 USD, priced, price source, rows Python must price) of each row.

    Rates are asked once per distinct (start, model, batch, tier, long context) of the chunk.
    """
    n = len(start_us)
    model, tier = read.price_model.dictionary_encode(), read.price_tier.dictionary_encode()
    times, time_codes = np.unique(start_us, return_inverse=True)
    models, tiers = model.dictionary.to_pylist(), tier.dictionary.to_pylist()
    code = time_codes.reshape(-1).astype(np.int64) * (len(models) + 1) + _np(pc.fill_null(model.indices, -1)) + 1
    code = code * (len(tiers) + 1) + _np(pc.fill_null(tier.indices, -1)) + 1
    code = (code * 2 + read.price_batch) * 2 + read.price_long
    distinct, inverse = np.unique(code, return_inverse=True)
    inverse = inverse.reshape(-1)
    rates = np.zeros((len(distinct), 7), dtype=np.int64)
    priced = np.zeros(len(distinct), dtype=bool)
    exact = np.ones(len(distinct), dtype=bool)
    sources: list[str] = []
    for k, value in enumerate(distinct.tolist()):
        value, long_context = divmod(value, 2)
        value, batch = divmod(value, 2)
        value, t = divmod(value, len(tiers) + 1)
        ts, m = divmod(value, len(models) + 1)
        found = pricer.unit_rates(
            models[m - 1] if m else None, provider, starts[int(times[ts])], bool(batch), tiers[t - 1] if t else None,
            bool(long_context),
        )  # fmt: skip
        if isinstance(found, str):
            sources.append(found)
            continue
        whole, source = found
        sources.append(source)
        priced[k] = True
        if whole is None:
            exact[k] = False
        else:
            rates[k] = whole
    counts = _leaf_counts(read.columns)
    row_rates = rates[inverse]
    estimate = np.abs(counts.astype(np.float64) * row_rates.astype(np.float64)).sum(axis=1)
    unusual = ~exact[inverse] | (estimate >= _MAX_UNITS)
    units = np.where(unusual, 0, (counts * np.where(unusual[:, None], 0, row_rates)).sum(axis=1))
    source = pc.take(pa.array(sources, pa.string()), pa.array(inverse)) if n else pa.array([], pa.string())
    return units, priced[inverse], source, unusual


def _leaf_counts(columns: dict[str, pa.Array]) -> np.ndarray:
    """Counts in `BucketPricer`'s leaf order (requests, uncached, cache read, write 5m, write 1h, output, reasoning)."""
    c = {key: _np(pc.fill_null(columns[key], 0)) for key in (
        "requests", "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
        "output_tokens", "reasoning_tokens",
    )}  # fmt: skip
    return np.stack(
        [
            c["requests"],
            c["input_tokens"] - c["cache_read_tokens"] - c["cache_write_tokens"],
            c["cache_read_tokens"],
            c["cache_write_tokens"] - c["cache_write_1h_tokens"],
            c["cache_write_1h_tokens"],
            c["output_tokens"] - c["reasoning_tokens"],
            c["reasoning_tokens"],
        ],
        axis=1,
    )


def stable_ids(name: str, parts: list[pa.Array]) -> pa.Array:
    """`stable_id(name, *parts)` of every row, from the parts' string forms."""
    joined = pc.binary_join_element_wise(*parts, "\x1f") if len(parts) > 1 else parts[0]
    prefix = f"{name}:"
    blake2b = hashlib.blake2b
    texts = joined.cast(pa.binary()).to_pylist()
    return pa.array([prefix + blake2b(text, digest_size=16).hexdigest() for text in texts], pa.string())


def counts(values: pa.Array, *, required: bool | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(count with 0 for null, rows `whole` would reject or Python must add up): negative, too big, or
    missing where `required`."""
    present = flags(values.is_valid())
    number = _np(pc.fill_null(values, 0))
    odd = (number < 0) | (number >= SAFE_COUNT)
    return number, odd | (~present & required)


def id_text(values: pa.Array) -> pa.Array:
    """A value's `str()` in a stable id: "None" for null, "True"/"False" for booleans."""
    if pa.types.is_boolean(values.type):
        values = pc.if_else(values, "True", "False")
    elif not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return pc.fill_null(values, "None")


def tags(pieces: dict[str, pa.Array]) -> pa.Array:
    """Each row's tags as the ledger stores them (`orjson`, sorted keys), null when it has none.

    Serialised once per distinct combination of values, by the same `orjson` call as the row path.

    Args:
        pieces: Tag name -> value per row (null: no such tag); counts are written as `str(count)`.
    """
    names = list(pieces)
    encoded = [pieces[key].dictionary_encode() for key in names]
    combination = distinct_rows(
        [_np(pc.fill_null(e.indices, -1)) + 1 for e in encoded], [len(e.dictionary) + 1 for e in encoded]
    )
    first, inverse = combination
    values = [e.dictionary.to_pylist() for e in encoded]
    indices = [_np(pc.fill_null(e.indices, -1)) for e in encoded]
    texts: list[str | None] = []
    for row in first.tolist():
        found = {key: str(values[j][indices[j][row]]) for j, key in enumerate(names) if indices[j][row] >= 0}
        texts.append(orjson.dumps(found, option=orjson.OPT_SORT_KEYS).decode() if found else None)
    return pc.take(pa.array(texts, pa.string()), pa.array(inverse))


def distinct_rows(codes: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct combination, combination of each row) of columns of small codes.

    Args:
        codes: Per column, each row's code in `range(size)`.
        sizes: Per column, how many codes there are.
    """
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    span = 1
    for code, size in zip(codes, sizes, strict=True):
        if span * size >= 1 << 62:  # renumber the combinations so far before they overflow
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)
            span = int(combined.max()) + 1 if len(combined) else 1
        combined = combined * size + code
        span *= size
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _other(values: pa.Array, expected: str) -> np.ndarray:
    """Rows with a value other than `expected` (null is the default, fine)."""
    return flags(pc.fill_null(pc.not_equal(values, expected), False))


def _np(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _positions(parents: np.ndarray) -> np.ndarray:
    """Index of each child within its parent, for children listed parent by parent."""
    return np.arange(len(parents), dtype=np.int64) - np.searchsorted(parents, parents, side="left")
