from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tokenops.config import load_settings
from tokenops.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokenops.toml"
    path.write_text(text)
    return path


def test_toml_overrides_are_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
ledger = "org.duckdb"
[[pricing.overrides]]
model = "gpt-4o*"
discount = "0.15"
[[pricing.overrides]]
model = "llama-internal"
provider = "self-hosted"
gpu_hour_usd = "2.50"
tokens_per_gpu_hour = 4000000
""",
    )
    settings = load_settings(path)
    assert settings.ledger == "org.duckdb"
    first, second = settings.pricing.overrides
    assert first.discount == Decimal("0.15")
    assert second.per_token_rates()[0] == Decimal("0.625")


def test_environment_beats_file_and_arguments_beat_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, 'ledger = "file.duckdb"\n')
    monkeypatch.setenv("TOKENOPS_LEDGER", "env.duckdb")
    assert load_settings(path).ledger == "env.duckdb"
    assert load_settings(path, ledger="arg.duckdb").ledger == "arg.duckdb"


def test_bad_config_names_the_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[pricing.overrides]]\nmodel = 'x'\ndiscount = '2'\n")
    with pytest.raises(ConfigError, match=r"(?s)tokenops.toml.*discount"):
        load_settings(path)
    with pytest.raises(ConfigError, match="unknown_key|Extra inputs"):
        load_settings(_write(tmp_path, "unknown_key = 1\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_guard_policies_load_from_toml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[guard.task_budgets]]
workflow = "triage"
max_usd = "0.05"
on_exceed = "downgrade"
downgrade_to = "gpt-4o-mini"
[[guard.iteration_caps]]
workflow = "agent*"
max_calls = 25
""",
    )
    guard = load_settings(path).guard
    assert guard.task_budgets[0].downgrade_to == "gpt-4o-mini"
    assert guard.iteration_caps[0].covers("agent_refund")
    with pytest.raises(ConfigError, match="needs downgrade_to"):
        load_settings(_write(tmp_path, '[[guard.task_budgets]]\nmax_usd = "1"\non_exceed = "downgrade"\n'))


@pytest.mark.parametrize("threads", [1, None])
def test_the_served_duckdb_ledger_takes_server_duckdb_threads(tmp_path: Path, threads: int | None) -> None:
    """`[server] duckdb_threads` reaches the ledger `tokenops serve` opens; unset, DuckDB keeps one per core."""
    from tokenops.web import create_app

    setting = f"[server]\nduckdb_threads = {threads}\n" if threads else ""
    path = _write(tmp_path, f'ledger = "{tmp_path / "org.duckdb"}"\ndata_dir = "{tmp_path / "state"}"\n{setting}')
    app = create_app(load_settings(path))
    try:
        [row] = app.state.ledger.query_values("SELECT current_setting('threads') AS threads")
        default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()
        assert int(str(row["threads"])) == (threads or (default and default[0]))
    finally:
        app.state.ledger.close()


def test_server_duckdb_threads_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duckdb_threads"):
        load_settings(_write(tmp_path, "[server]\nduckdb_threads = 0\n"))
