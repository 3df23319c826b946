"""The admin API and `tokenops budgets`: policy changes take effect without a restart, and only for admins."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from tests.e2e.conftest import Gateway, gateway_settings
from tests.factories import event
from tests.guard.conftest import redis_prefix, redis_url
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.guard import GuardBackend
from tokenops.store import DuckDBLedger
from tokenops.testing import serve_in_thread
from tokenops.web import create_app
from tokenops.web.app import key_store

__all__ = ["redis_prefix", "redis_url"]  # fixtures used below


@pytest.fixture
def admin_key(gateway: Gateway) -> str:
    return key_store(gateway.settings).create(user="root", team="platform", role="admin")[1]


def _ask(url: str, key: str, workflow: str = "research") -> str:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "summarise the findings " * 30}],
            max_tokens=200,
            extra_headers={"X-Tokenops-Workflow": workflow, "X-Tokenops-Task": "t-1"},
        )
    return reply.model


def test_the_admin_api_refuses_calls_without_the_admin_credential(gateway: Gateway, admin_key: str) -> None:
    url = f"{gateway.url}/api/admin/policies"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer tok-not-a-key"}).status_code == 401
    refused = httpx.put(url, json={}, headers={"authorization": f"Bearer {gateway.key}"})  # an app key
    assert refused.status_code == 403 and "--admin" in refused.json()["error"]["message"]
    ok = httpx.get(url, headers={"authorization": f"Bearer {admin_key}"})
    assert ok.status_code == 200 and ok.json()["origin"] == "config"


def test_a_budget_set_with_the_cli_applies_to_the_next_call_and_survives_a_restart(
    gateway: Gateway, admin_key: str, fake_provider: tuple[Starlette, str]
) -> None:
    assert _ask(gateway.url, gateway.key) == "gpt-4o"
    runner = CliRunner()
    server = ["--server", gateway.url, "--admin-key", admin_key]
    result = runner.invoke(cli, ["budgets", "task", "tiny", "--max-usd", "0.000001", "--workflow", "research", *server])
    assert result.exit_code == 0, result.output
    assert '"name": "tiny"' in result.stdout
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(gateway.url, gateway.key)
    assert caught.value.body["type"] == "tokenops_task_budget_exceeded"  # type: ignore[index]
    assert _ask(gateway.url, gateway.key, workflow="other") == "gpt-4o"  # other workflows are not covered

    # a restarted server (same data directory) starts with the admin's policies, not the config file's
    gateway.flush()
    restarted_ledger = DuckDBLedger(gateway.settings.data_dir / "restarted.duckdb")
    with serve_in_thread(create_app(gateway.settings, restarted_ledger)) as url:
        view = httpx.get(f"{url}/api/admin/policies", headers={"authorization": f"Bearer {admin_key}"}).json()
        assert view["origin"] == "admin" and [b["name"] for b in view["policies"]["task_budgets"]] == ["tiny"]
        with pytest.raises(openai.RateLimitError):
            _ask(url, gateway.key)
    restarted_ledger.close()

    result = runner.invoke(cli, ["budgets", "reset", *server])
    assert result.exit_code == 0 and "from the config file" in result.output
    assert _ask(gateway.url, gateway.key) == "gpt-4o"


def test_an_invalid_change_is_refused_with_its_reason_and_changes_nothing(gateway: Gateway, admin_key: str) -> None:
    auth = {"authorization": f"Bearer {admin_key}"}
    bad = httpx.put(
        f"{gateway.url}/api/admin/policies/task_budgets/b1",
        json={"max_usd": "5", "on_exceed": "downgrade"},
        headers=auth,
    )
    assert bad.status_code == 422 and "downgrade_to" in bad.json()["error"]["message"]
    whole = httpx.put(f"{gateway.url}/api/admin/policies", json={"timezone": "Mars/Olympus"}, headers=auth)
    assert whole.status_code == 422 and "Mars/Olympus" in whole.json()["error"]["message"]
    assert httpx.get(f"{gateway.url}/api/admin/policies", headers=auth).json()["origin"] == "config"
    result = CliRunner().invoke(
        cli, ["budgets", "remove", "quotas", "nope", "--server", gateway.url, "--admin-key", admin_key]
    )
    assert result.exit_code == 2 and "404" in result.output


def test_a_change_on_one_replica_reaches_the_other_through_redis(
    tmp_path: Path, fake_provider: tuple[Starlette, str], redis_url: str, redis_prefix: str
) -> None:
    backend = GuardBackend(redis_url=redis_url, key_prefix=redis_prefix)
    apps: list[tuple[Settings, DuckDBLedger]] = []
    for name in ("a", "b"):
        settings = gateway_settings(tmp_path / name, fake_provider[1]).model_copy(update={"guard_backend": backend})
        apps.append((settings, DuckDBLedger(settings.ledger)))
    admin = key_store(apps[0][0]).create(user="root", team="platform", role="admin")[1]
    app_key = key_store(apps[1][0]).create(user="bo", team="support")[1]
    with serve_in_thread(create_app(*apps[0])) as url_a, serve_in_thread(create_app(*apps[1])) as url_b:
        assert _ask(url_b, app_key) == "gpt-4o"
        response = httpx.put(
            f"{url_a}/api/admin/policies",
            json={"task_budgets": [{"name": "shared", "workflow": "research", "max_usd": "0.000001"}]},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200 and response.json()["version"] >= 1
        deadline = time.monotonic() + 5
        while True:  # replica b polls the shared store once a second
            try:
                _ask(url_b, app_key)
            except openai.RateLimitError as exc:
                assert "shared" in exc.body["message"]  # type: ignore[index]
                break
            assert time.monotonic() < deadline, "replica b never picked up the new policy"
            time.sleep(0.2)
    for _, ledger in apps:
        ledger.close()


def test_policies_from_the_config_file_and_budget_errors_say_when_quotas_reset(
    tmp_path: Path, fake_provider: tuple[Starlette, str]
) -> None:
    settings = gateway_settings(tmp_path, fake_provider[1])
    settings = settings.model_copy(
        update={
            "guard": settings.guard.model_validate(
                {
                    "timezone": "Europe/Paris",
                    "quotas": [
                        {"name": "team-daily", "scope": "team", "period": "day", "max_usd": str(Decimal("0.000001"))}
                    ],
                }
            )
        }
    )
    ledger = DuckDBLedger(settings.ledger)
    key = key_store(settings).create(user="ana", team="support")[1]
    with serve_in_thread(create_app(settings, ledger)) as url, pytest.raises(openai.RateLimitError) as caught:
        _ask(url, key)
    body = caught.value.body
    assert body["type"] == "tokenops_quota_exceeded"  # type: ignore[index]
    message = body["message"]  # type: ignore[index]
    assert "team-daily" in message and "support" in message and "Europe/Paris" in message and "reset" in message
    detail = body["tokenops"]  # type: ignore[index]
    assert (detail["policy"], detail["unit"], detail["limit"]) == ("team-daily", "usd", "0.000001")
    assert detail["resets_at"] is not None and detail["retry_after_s"] > 0
    ledger.close()


def test_a_restarted_server_keeps_counting_this_months_quota(
    tmp_path: Path, fake_provider: tuple[Starlette, str]
) -> None:
    """In-process counters are rebuilt from the ledger at start-up: a restart is not a fresh monthly quota."""
    settings = gateway_settings(tmp_path, fake_provider[1])
    quota = {"name": "team-month", "scope": "team", "period": "month", "max_usd": "0.02"}
    settings = settings.model_copy(update={"guard": settings.guard.model_validate({"quotas": [quota]})})
    ledger = DuckDBLedger(settings.ledger)
    ledger.record_events([event(f"gw-{i}", ts=datetime.now(UTC)) for i in range(3)])  # $0.0225 this month
    key = key_store(settings).create(user="ana", team="support")[1]
    with serve_in_thread(create_app(settings, ledger)) as url, pytest.raises(openai.RateLimitError) as caught:
        _ask(url, key)
    assert caught.value.body["type"] == "tokenops_quota_exceeded"  # type: ignore[index]
    ledger.close()
