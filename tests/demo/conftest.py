"""One small demo organisation shared by the demo tests (generation is deterministic)."""

from __future__ import annotations

import pytest

from tokenops.demo import DemoOrg, generate_org

SMALL = 0.25
"""Volume used where the default volume does not matter: people and incidents keep their size."""


@pytest.fixture(scope="session")
def org() -> DemoOrg:
    return generate_org(7, scale=SMALL)
