"""FOCUS CSV by the chunk and Parquet by the batch, in columns: only unusual lines go through Python.

`pyarrow.csv` reads a chunk of whole records into text columns, and each column is normalised
as `focus._Layout.read` would: nulls, numbers (plain decimals, by regular expression; their value
cast to Arrow decimals, so money stays exact), and the columns with few distinct values (times,
closed sets, Tags, providers) worked out once per distinct value by the row path's own
functions. A line whose reading is not plainly what the row path would make of it (a number
written as `1e-3`, an unparseable time, a bad currency, a Tags key that is also a column, a tag
value JSON must escape, an AI line whose model must be guessed...) is marked unusual and handed
back, with its line number and text, to be read by the row path, which also names what is wrong.

A chunk this reader is not sure it splits into records as Python's `csv` module does (a stray
quote, a lone carriage return, a NUL, a record of the wrong width) is left to the caller's
row-by-row path as a whole. Parquet cells that are not text are first turned into the text that
reads back as what the row path makes of them (`parse_batch`).

Each line's content digest is blake2b over the same normalised text `_Layout.read` hashes, so
ids agree whichever path read a line, and a re-import adds nothing either way.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tokenops.ingest import _focus_columns as cols
from tokenops.ingest._events import flags, ts_us
from tokenops.ingest._rows import Chunk

SOURCE = "import:focus"

_NULLS = pa.array(sorted(cols.NULLS), pa.string())
_PLAIN_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
"""A number the regular expressions below normalise exactly as `Decimal.normalize` does; others go to Python."""
_MONEY = r"^-?[0-9]{1,6}(\.[0-9]{1,12})?$"
"""Below 1,000,000 with at most 12 decimals: stored as is (DECIMAL(18,12)), no rounding, no limit error."""
_QUANTITY = r"^-?[0-9]{1,21}(\.[0-9]{1,16})?$"
"""Rounded to 6 decimals half-even as `Decimal.quantize` does, and still fits DECIMAL(28,6)."""
_MEMO = 20_000
"""Distinct values of a column remembered across chunks."""
_SLICE = 2048
"""Lines whose digest text and tags are built at once."""
_MAX_DIGITS = 28
"""`Decimal.normalize` rounds to the context's 28 digits: longer numbers go to Python."""
_ESCAPED = r'["\\\x00-\x1f]'
"""Characters a JSON string escapes: a tag value holding one is serialised by the row path."""
_ARN = "(foundation-model|inference-profile|provisioned-model|custom-model)/"
_AI = "bedrock|openai|vertex ai|gemini|anthropic|claude|foundry"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_TEXT = pa.string()
_NULL_TEXT = pa.scalar(None, _TEXT)
_MONEY_TYPE = pa.decimal128(18, 12)
_QUANTITY_TYPE = pa.decimal128(28, 6)


@dataclass(frozen=True, slots=True)
class Plan:
    """A file's columns as `focus._Layout` works them out, for reading many lines at once."""

    names: list[str]
    """Canonical column names, in file order (all different)."""
    hashed: list[int]
    """Column indexes in the order the content digest takes them (Tags excluded)."""
    tags: int | None
    """Index of the Tags column, if any."""
    tag_columns: list[str]
    """Columns copied into a line's tags."""
    model_column: str | None
    """An x_ column naming the model, if any."""
    memo: dict[str, dict[str, Sequence[object]]] = field(default_factory=dict)
    """What the row path's functions made of a column's values in earlier chunks (bills repeat theirs)."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A chunk's usual lines as ledger columns, and the records the row path must read."""

    table: pa.Table | None
    """`billed_costs` columns of the usual lines but `cost_id`, in record order (None if there are none)."""
    digests: bytes
    """The usual lines' 16-byte content digests, concatenated in record order."""
    usual: np.ndarray
    """Per record of the chunk (blank lines are not records): whether it is in `table`."""
    unusual: list[tuple[int, str]]
    """(line, text) of each other record, in order: for the row path."""


def parse_chunk(chunk: Chunk, plan: Plan) -> Parsed | None:
    """The chunk's records in columns; None when the whole chunk must be read line by line."""
    bounds = _records(chunk)
    if bounds is None:
        return None
    width = len(plan.names)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(chunk.data),
            read_options=pacsv.ReadOptions(
                column_names=[f"c{i}" for i in range(width)],
                use_threads=False,
                block_size=max(len(chunk.data), 1 << 20),
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(width)}, null_values=[], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    starts, ends, lines = bounds
    if table.num_rows != len(starts):
        return None  # the records split otherwise than we counted: let Python's csv module decide
    raw = [column.combine_chunks() for column in table.columns]
    columns = _Columns(plan, raw)
    usual = columns.keep
    picked = np.flatnonzero(columns.unusual).tolist()
    data = chunk.data
    unusual = [(int(lines[i]), data[starts[i] : ends[i]].decode("utf-8")) for i in picked]
    if not usual.any():
        return Parsed(None, b"", usual, unusual)
    table, digests = columns.usual()
    return Parsed(table, digests, usual, unusual)


def parse_batch(batch: pa.RecordBatch, plan: Plan) -> Parsed:
    """Rows of a Parquet file in columns; its `unusual` is empty: the rows not in `usual` are for the row path.

    Text columns are read as CSV ones are. A typed cell (a double, a decimal, a timestamp, a map of
    Tags) is turned into the text that reads back as the value the row path makes of it, once
    per distinct value; one the row path might read otherwise (or refuse) makes its row unusual.
    """
    odd = np.zeros(batch.num_rows, dtype=bool)
    raw: list[pa.Array] = []
    for name, column in zip(plan.names, batch.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            raw.append(pc.fill_null(column.cast(_TEXT), ""))  # "" is a null to the row path too
            continue
        texts, flagged = _typed_texts(name, column, plan.memo.setdefault(f"typed:{name}", {}))
        raw.append(texts)
        odd |= flagged
    columns = _Columns(plan, raw, odd)
    usual = columns.keep
    if not usual.any():
        return Parsed(None, b"", usual, [])
    table, digests = columns.usual()
    return Parsed(table, digests, usual, [])


def _typed_texts(name: str, column: pa.Array, memo: dict[str, Sequence[object]]) -> tuple[pa.Array, np.ndarray]:
    """A typed Parquet column as text a CSV cell would hold, and the rows the row path must read."""
    try:
        encoded = column.dictionary_encode()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):  # a map or a struct: row by row
        seen: dict[object, tuple[str, bool]] = {}  # a map reads as [(key, value), ...]: repeated Tags read once
        found = []
        for value in column.to_pylist():
            key = tuple(value) if isinstance(value, list) else None
            try:
                cell = seen.get(key) if key is not None else None
            except TypeError:  # a map of lists or structs: not hashable
                key = cell = None
            if cell is None:
                cell = _typed_cell(name, value)
                if key is not None:
                    seen[key] = cell
            found.append(cell)
        texts, flagged = pa.array([t for t, _ in found], _TEXT), pa.array([o for _, o in found], pa.bool_())
    else:
        work = partial(_typed_cell, name)
        texts, flagged = _each(encoded.dictionary, work, [_TEXT, pa.bool_()], memo)
        texts, flagged = pc.take(texts, encoded.indices), pc.take(flagged, encoded.indices)
    odd = flags(pc.fill_null(flagged, False))
    return pc.fill_null(texts, ""), odd


def _typed_cell(name: str, value: object) -> tuple[str, bool]:
    """(text reading back as the row path reads `value`, whether the row path must read it after all)."""
    if value is None:
        return "", False
    try:
        if name == "Tags":
            return json.dumps(cols.user_tags(value)), False
        if name in cols.NUMBERS:
            if isinstance(value, bool) or not isinstance(value, float | Decimal | int):
                return "", True
            number = cols.decimal(value, name)
            assert number is not None
            return format(number.normalize(), "f"), len(number.as_tuple().digits) > _MAX_DIGITS
        if name in cols.DATETIMES or name in cols.ENUMS:
            if isinstance(value, float | Decimal) or name in cols.ENUMS:
                return "", True  # the row path reads a number in any column as a number: let it
            instant = cols.timestamp(value, name)
            assert instant is not None
            return instant.isoformat(), False
    except ValueError:
        return "", True
    text = cols.cell_text(value)
    return ("" if text is None else text), False


def _records(chunk: Chunk) -> tuple[list[int], list[int], np.ndarray] | None:
    """Start and end offsets and first lines of the chunk's non-blank records, None where unsure.

    A newline ends a record when an even number of quotes comes before it. That is how Python's
    `csv` module reads a file whose quotes all open or close a field or are doubled; a chunk with
    any other quote (`ab"c`, `"a"b`), a carriage return not before a newline or a NUL byte is not
    read here at all.
    """
    data = chunk.data
    if b"\x00" in data:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    if b"\r" in data:
        returns = np.flatnonzero(buf == 13) + 1
        if returns[-1] == len(buf) or (buf[returns] != 10).any():
            return None
    quotes = np.flatnonzero(buf == 34)
    if len(quotes):
        padded = np.concatenate([np.full(1, 44, np.uint8), buf, np.full(1, 44, np.uint8)])  # a field edge each side
        before, after = padded[quotes], padded[quotes + 2]
        edge = (before == 44) | (before == 10) | (before == 34) | (after == 44) | (after == 10) | (after == 34)
        if not (edge | (after == 13)).all():
            return None
    newlines = np.flatnonzero(buf == 10)
    outside = np.searchsorted(quotes, newlines) % 2 == 0
    ends = newlines[outside]
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1] + 1])
    stop = ends - (ends > starts) * (buf[np.maximum(ends - 1, 0)] == 13)  # without a closing \r
    filled = stop > starts
    starts, ends = starts[filled], ends[filled]
    lines = chunk.first_line + np.searchsorted(newlines, starts)
    return starts.tolist(), ends.tolist(), lines


def _digests(joined: pa.Array) -> bytes:
    """blake2b-128 of each string, as `focus._Layout.read` hashes a line's parts."""
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset : joined.offset + len(joined) + 1]
    body = memoryview(joined.buffers()[2])
    blake = hashlib.blake2b
    return b"".join(
        blake(body[a:b], digest_size=16).digest()
        for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    )


def cost_ids(digests: bytes, copies: list[int]) -> pa.Array:
    """`stable_id("focus", digest, copy)` of each 16-byte line digest, as an Arrow string array.

    The ids are hashed by Python, but their hex and text are built by numpy: no string a line.
    """
    n = len(digests) // 16
    blake = hashlib.blake2b
    if n and max(copies) < 10:  # "<hex digest>\x1f<copy>", a fixed 34 bytes
        message = np.empty((n, 34), dtype=np.uint8)
        message[:, :32], message[:, 32], message[:, 33] = _hex(digests), 0x1F, 48 + np.asarray(copies)
        view = memoryview(message.tobytes())
        raw = b"".join(blake(view[i : i + 34], digest_size=16).digest() for i in range(0, 34 * n, 34))
    else:
        hexes = digests.hex().encode()
        raw = b"".join(
            blake(b"%s\x1f%d" % (hexes[32 * i : 32 * i + 32], copy), digest_size=16).digest()
            for i, copy in enumerate(copies)
        )
    text = np.empty((n, 38), dtype=np.uint8)
    text[:, :6], text[:, 6:] = np.frombuffer(b"focus:", dtype=np.uint8), _hex(raw)
    offsets = np.arange(0, 38 * n + 1, 38, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def _hex(raw: bytes) -> np.ndarray:
    """16-byte digests as rows of 32 lower-case hex digits (ASCII)."""
    nibbles = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16)
    out = np.empty((len(nibbles), 32), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = _HEX[nibbles >> 4], _HEX[nibbles & 15]
    return out


class _Columns:
    """A chunk's text columns, normalised once per distinct value, and which lines the row path must read."""

    def __init__(self, plan: Plan, raw: list[pa.Array], odd: np.ndarray | None = None) -> None:
        self.plan = plan
        self.n = n = len(raw[0]) if raw else 0
        self.unusual = np.zeros(n, dtype=bool) if odd is None else odd.copy()
        self.indices: dict[str, pa.Array] = {}
        """Each column's dictionary indices, by canonical name."""
        self.distinct: dict[str, pa.Array] = {}
        """Each column's distinct raw values (its dictionary)."""
        self.texts: dict[str, pa.Array] = {}
        """Per distinct value of each column but Tags: the text `_Layout.read` gives it (null for NULL)."""
        self.values: dict[str, pa.Array] = {}
        """Per distinct value: money and quantity as ledger decimals, times as timestamps (null where unusual)."""
        for name, column in zip(plan.names, raw, strict=True):
            encoded = column.dictionary_encode()
            self.indices[name], self.distinct[name] = encoded.indices, encoded.dictionary
            if name == "Tags":
                continue
            values = encoded.dictionary
            if name in cols.NUMBERS:
                self.texts[name] = self._number(name, values)
            elif name in cols.DATETIMES:
                self.texts[name] = self._time(name, values)
            elif name in cols.ENUMS:
                work = partial(_enum, enum=cols.ENUMS[name])
                self.texts[name] = self._each(name, values, work, [_TEXT])[0]
            else:
                self.texts[name] = pc.if_else(pc.is_in(values, value_set=_NULLS), _NULL_TEXT, values)
        self.tag_digest, self.tag_segments = self._user_tags()
        self._checks()
        self.keep = ~self.unusual

    def _odd(self, name: str, per_value: pa.Array) -> None:
        """Mark the lines whose `name` cell is one of the values flagged (null counts as flagged)."""
        flagged = pc.fill_null(per_value, True)
        if pc.any(flagged).as_py():
            rows = pc.take(flagged, self.indices[name])
            self.unusual |= flags(rows)

    def _each(
        self, name: str, values: pa.Array, work: Callable[[str], Sequence[object]], kinds: list[pa.DataType]
    ) -> list[pa.Array]:
        return _each(values, work, kinds, self.plan.memo.setdefault(name, {}))

    def _number(self, name: str, values: pa.Array) -> pa.Array:
        null = pc.is_in(values, value_set=_NULLS)
        plain = pc.and_(
            pc.match_substring_regex(values, _PLAIN_NUMBER), pc.less_equal(pc.utf8_length(values), _MAX_DIGITS)
        )
        self._odd(name, pc.and_not(pc.invert(plain), null))
        # Decimal.normalize then format "f": no trailing fraction zeros, no point without a fraction, no leading zeros
        text = pc.replace_substring_regex(values, r"^(-?[0-9]+)(?:\.0*|(\.[0-9]*[1-9])0*)$", r"\1\2")
        text = pc.replace_substring_regex(text, r"^(-?)0+([0-9])", r"\1\2")
        text = pc.if_else(plain, text, _NULL_TEXT)
        if name in ("BilledCost", "EffectiveCost", "ListCost"):
            fits = pc.fill_null(pc.match_substring_regex(text, _MONEY), False)
            self._odd(name, pc.and_not(pc.invert(fits), null))
            self.values[name] = pc.cast(pc.if_else(fits, text, _NULL_TEXT), _MONEY_TYPE)
        elif name == "ConsumedQuantity":
            fits = pc.fill_null(pc.match_substring_regex(text, _QUANTITY), False)
            self._odd(name, pc.and_not(pc.invert(fits), null))
            exact = pc.cast(pc.if_else(fits, text, _NULL_TEXT), pa.decimal128(38, 16))
            self.values[name] = pc.cast(pc.round(exact, ndigits=6, round_mode="half_to_even"), _QUANTITY_TYPE)
        return text

    def _time(self, name: str, values: pa.Array) -> pa.Array:
        text, micros, odd = self._each(name, values, partial(_instant, name), [_TEXT, pa.int64(), pa.bool_()])
        self._odd(name, odd)
        self.values[name] = pc.cast(micros, pa.timestamp("us"))
        return text

    def _user_tags(self) -> tuple[pa.Array | None, list[pa.Array]]:
        """The Tags cells' digest text and JSON pieces between the sorted tag columns, per distinct value."""
        keys = sorted(self.plan.tag_columns)
        if self.plan.tags is None:
            return None, []
        kinds = [pa.string()] * (len(keys) + 2) + [pa.bool_()]
        found = self._each("Tags", self.distinct["Tags"], partial(_tag_pieces, keys=keys), kinds)
        self._odd("Tags", found[-1])
        return found[0], found[1:-1]

    def _checks(self) -> None:
        """Lines `focus._charge` would refuse or must look at itself."""
        texts, values = self.texts, self.values
        for name in ("BilledCost", "ChargePeriodStart", "ChargePeriodEnd"):
            self._odd(name, pc.is_null(values[name]))
        start, end = (self.rows(values[name], name) for name in ("ChargePeriodStart", "ChargePeriodEnd"))
        self.unusual |= flags(pc.fill_null(pc.less(end, start), False))
        self._odd("BillingCurrency", pc.invert(pc.match_substring_regex(texts["BillingCurrency"], "^[A-Za-z]{3}$")))
        categories = pa.array(list(cols.CHARGE_CATEGORIES.values()))
        self._odd("ChargeCategory", pc.invert(pc.is_in(texts["ChargeCategory"], value_set=categories)))
        for key in self.plan.tag_columns:
            self._odd(key, pc.match_substring_regex(pc.fill_null(texts[key], ""), _ESCAPED))
        if "ServiceProviderName" in texts:
            named = pc.coalesce(self.text("ServiceProviderName"), self.text("ProviderName"))
        else:
            named = self.text("ProviderName")
        self.provider = _per_value(named, lambda v: [cols.provider_id(v)], [pa.string()])[0]
        self.unusual |= flags(pc.is_null(self.provider))
        maybe = np.zeros(self.n, dtype=bool)  # lines `model_name` may find a model in: Python guesses
        if "ResourceId" in texts:
            arn = pc.fill_null(pc.match_substring_regex(texts["ResourceId"], _ARN), False)
            maybe |= flags(self.rows(arn, "ResourceId"))
        if "ServiceName" in texts:
            service = texts["ServiceName"]
            ai = pc.fill_null(
                pc.or_(
                    pc.match_substring_regex(service, _AI, ignore_case=True), pc.invert(pc.string_is_ascii(service))
                ),
                False,
            )
            maybe |= flags(self.rows(ai, "ServiceName"))
        column = self.plan.model_column
        self.model = self.text(column) if column is not None else None
        """The model column's value by line, if the file has one (else the line has no model or is unusual)."""
        if self.model is not None:
            maybe &= flags(pc.is_null(self.model))
        self.unusual |= maybe

    def rows(self, per_value: pa.Array, name: str) -> pa.Array:
        """`per_value` (an entry per distinct value of column `name`) spread over the chunk's lines."""
        return pc.take(per_value, self.indices[name])

    def text(self, name: str) -> pa.Array:
        """A column's text by line (all null when the file lacks it)."""
        if name not in self.texts:
            return pa.nulls(self.n, pa.string())
        return self.rows(self.texts[name], name)

    def usual(self) -> tuple[pa.Table, bytes]:
        """The usual lines' `billed_costs` columns (cost_id excepted) and content digests.

        Digests and tags are built `_SLICE` lines at a time: their text is most of a chunk's memory.
        """
        if self.unusual.any():
            mask = pa.array(self.keep)
            picked = {name: pc.filter(indices, mask) for name, indices in self.indices.items()}
            provider = pc.filter(self.provider, mask)
            model = pc.filter(self.model, mask) if self.model is not None else None
        else:
            picked, provider, model = self.indices, self.provider, self.model
        m = len(provider)
        hashed = [
            (self._prefixed(name, self.texts[name]), name) for name in (self.plan.names[i] for i in self.plan.hashed)
        ]
        if self.tag_digest is not None:
            hashed.append((self._prefixed("Tags", self.tag_digest), "Tags"))
        tagged = self._tag_pieces()
        digests: list[bytes] = []
        tags: list[pa.Array] = []
        for start in range(0, m, _SLICE):
            part = {name: indices.slice(start, _SLICE) for name, indices in picked.items()}
            joined = pc.binary_join_element_wise(*(pc.take(p, part[name]) for p, name in hashed), "\x1f")
            digests.append(_digests(joined))
            tags.append(_tags([pc.take(p, part[name]) for p, name in tagged], min(_SLICE, m - start)))

        def take(per_value: pa.Array | None, name: str, kind: pa.DataType = _TEXT) -> pa.Array:
            return pc.take(per_value, picked[name]) if per_value is not None else pa.nulls(m, kind)

        texts, values = self.texts, self.values
        table = pa.table(
            {
                "source": pa.array([SOURCE] * m, pa.string()),
                "provider": provider,
                "start_ts": take(values["ChargePeriodStart"], "ChargePeriodStart"),
                "end_ts": take(values["ChargePeriodEnd"], "ChargePeriodEnd"),
                "billed": take(values["BilledCost"], "BilledCost"),
                "currency": pc.utf8_upper(take(texts["BillingCurrency"], "BillingCurrency")),
                "effective": take(values.get("EffectiveCost"), "EffectiveCost", _MONEY_TYPE),
                "list_cost": take(values.get("ListCost"), "ListCost", _MONEY_TYPE),
                "service": take(texts.get("ServiceName"), "ServiceName"),
                "model": model if model is not None else pa.nulls(m, pa.string()),
                "line_item": take(texts.get("ChargeDescription"), "ChargeDescription"),
                "charge_category": take(texts["ChargeCategory"], "ChargeCategory"),
                "project_id": take(texts.get("SubAccountId"), "SubAccountId"),
                "account_id": take(texts.get("BillingAccountId"), "BillingAccountId"),
                "quantity": take(values.get("ConsumedQuantity"), "ConsumedQuantity", _QUANTITY_TYPE),
                "unit": take(texts.get("ConsumedUnit"), "ConsumedUnit"),
                "tags": pa.chunked_array(tags, pa.string()),
            }
        )
        return table, b"".join(digests)

    @staticmethod
    def _prefixed(name: str, texts: pa.Array) -> pa.Array:
        """`name\\x1etext` per distinct value, as `_Layout.read` writes a part it hashes."""
        return pc.binary_join_element_wise(name.lower() + "\x1e", pc.fill_null(texts, "\x00"), "")

    def _tag_pieces(self) -> list[tuple[pa.Array, str]]:
        """The JSON pieces of a line's tags in key order, per distinct value, with the column they are of."""
        segments = self.tag_segments
        pieces: list[tuple[pa.Array, str]] = [(segments[0], "Tags")] if segments else []
        for k, key in enumerate(sorted(self.plan.tag_columns)):
            quoted = orjson.dumps(key).decode() + ':"'
            pieces.append((pc.binary_join_element_wise(quoted, self.texts[key], '"', ""), key))
            if segments:
                pieces.append((segments[k + 1], "Tags"))
        return [(piece, name) for piece, name in pieces if piece.null_count < len(piece)]


def _tags(parts: list[pa.Array], m: int) -> pa.Array:
    """Each line's tags as the ledger stores them (sorted JSON), null when it has none."""
    if not parts:
        return pa.nulls(m, pa.string())
    body = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    return pc.if_else(pc.equal(body, ""), _NULL_TEXT, pc.binary_join_element_wise("{", body, "}", ""))


def _each(
    values: pa.Array,
    work: Callable[[str], Sequence[object]],
    kinds: list[pa.DataType],
    memo: dict[str, Sequence[object]],
) -> list[pa.Array]:
    """`work` on each of `values` (a column's distinct values), its results as arrays of `kinds`."""
    if len(memo) > _MEMO:
        memo.clear()  # bounded: memory stays flat
    results = []
    for value in values.to_pylist():
        found = memo.get(value)
        if found is None:
            found = memo[value] = work(value)
        results.append(found)
    return [pa.array([row[k] for row in results], kind) for k, kind in enumerate(kinds)]


def _per_value(values: pa.Array, work: Callable[[str], Sequence[object]], kinds: list[pa.DataType]) -> list[pa.Array]:
    """`work` on each distinct value (bills repeat theirs), its results spread back over the lines."""
    encoded = values.dictionary_encode()
    return [pc.take(found, encoded.indices) for found in _each(encoded.dictionary, work, kinds, {})]


def _enum(value: str, enum: dict[str, str]) -> list[str | None]:
    if value in cols.NULLS or value.strip() in cols.NULLS:
        return [None]
    return [enum.get(value.lower(), value)]


def _instant(name: str, value: str) -> tuple[str | None, int | None, bool]:
    """(normal text, microseconds since 1970, unusual) of a time cell, as `focus._typed` reads it."""
    if value in cols.NULLS or value.strip() in cols.NULLS:
        return None, None, False
    try:
        instant = cols.timestamp(value, name)
    except ValueError:
        return None, None, True
    assert instant is not None
    return instant.isoformat(), ts_us(instant), False


def _tag_pieces(value: str, keys: list[str]) -> list[object]:
    """Digest text, JSON pieces between the sorted tag columns, and whether Python must read the line."""
    try:
        tags = cols.user_tags(value)
    except ValueError:
        return [None] * (len(keys) + 2) + [True]
    segments: list[list[str]] = [[] for _ in range(len(keys) + 1)]
    for key in sorted(tags):
        segments[bisect.bisect_left(keys, key)].append(orjson.dumps({key: tags[key]}).decode()[1:-1])
    digest = json.dumps(tags, sort_keys=True) if tags else None
    clash = any(key in tags for key in keys)  # the column wins only where it has a value: Python decides
    return [digest, *(",".join(s) or None for s in segments), clash]
