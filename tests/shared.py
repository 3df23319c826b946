"""Where the shared public data sets are: `../shared/data` beside the checkout, wherever it is cloned.

CI runs on a clean clone that may not sit beside `shared/`; `TOKENOPS_SHARED_DATA` or the
workplace's `/work/shared/data` are tried next. A missing data set fails the test that needs it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data(*parts: str) -> Path:
    """A file or folder of the shared data sets (the first location that has it)."""
    roots = [Path(p) for p in [os.environ.get("TOKENOPS_SHARED_DATA")] if p]
    roots += [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for root in roots:
        if (root.joinpath(*parts)).exists():
            return root.joinpath(*parts)
    return roots[0].joinpath(*parts)
