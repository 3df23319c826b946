"""docs/sdk.md's ten-line example works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tokenops.sdk import runtime as sdk_runtime

DOC = Path(__file__).parents[2] / "docs" / "sdk.md"


def test_the_ten_line_example_runs_and_leaves_its_rows(
    tmp_path: Path,
    fake_provider: tuple[Starlette, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = fake_provider
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    assert len([line for line in code.group(1).splitlines() if line.strip()]) <= 10
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs")
    exec(compile(code.group(1), str(DOC), "exec"), {})
    assert re.search(r"task task-\w+ cost \$0\.0000\d+", capsys.readouterr().out)
    rt = sdk_runtime.current_runtime()
    rt.flush()
    assert rt.ledger.query_rows("SELECT count(*) AS n FROM usage_events") == [{"n": 1}]
    assert rt.ledger.query_rows("SELECT count(*) AS n FROM outcome_task_runs") == [{"n": 1}]
    rt.close()
