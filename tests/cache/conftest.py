"""One embedding model per test session: loading it takes a second or more."""

from __future__ import annotations

import pytest

from tokenops.cache.embed import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 int8 model, loaded on first use."""
    return Embedder(threads=2)
