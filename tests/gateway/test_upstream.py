from __future__ import annotations

import pytest

from tokenops.gateway.upstream import DEFAULT_UPSTREAMS, NoUpstream, Upstream, select


def test_urls_for_each_kind() -> None:
    openai, anthropic = DEFAULT_UPSTREAMS
    assert openai.url("/chat/completions", "gpt-4o") == "https://api.openai.com/v1/chat/completions"
    assert anthropic.url("/messages", "claude-haiku-4-5") == "https://api.anthropic.com/v1/messages"
    azure = Upstream(
        name="az",
        kind="azure",
        base_url="https://org.openai.azure.com/",
        api_version="2024-10-21",
        deployments={"gpt-4o": "gpt4o-prod"},
    )
    assert (
        azure.url("/chat/completions", "gpt-4o")
        == "https://org.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    )
    assert azure.pricing_provider == "azure"
    vllm = Upstream(name="vllm", kind="openai-compatible", base_url="http://127.0.0.1:8000/v1", provider="self-hosted")
    assert vllm.url("/chat/completions", "llama") == "http://127.0.0.1:8000/v1/chat/completions"
    assert vllm.pricing_provider == "self-hosted"


def test_credentials_come_from_the_environment_in_each_providers_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "secret")
    assert Upstream(name="o", kind="openai", base_url="x", api_key_env="K").auth_headers() == {
        "authorization": "Bearer secret"
    }
    assert Upstream(name="a", kind="anthropic", base_url="x", api_key_env="K").auth_headers() == {"x-api-key": "secret"}
    assert Upstream(name="z", kind="azure", base_url="x", api_key_env="K").auth_headers() == {"api-key": "secret"}
    assert Upstream(name="n", kind="openai", base_url="x", api_key_env="UNSET_VAR").auth_headers() == {}


def test_first_upstream_of_the_right_format_serving_the_model_wins() -> None:
    local = Upstream(name="vllm", kind="openai-compatible", base_url="http://h/v1", models=["llama-*"])
    chosen = (local, *DEFAULT_UPSTREAMS)
    assert select(chosen, "openai", "Llama-3-70B").name == "vllm"
    assert select(chosen, "openai", "gpt-4o").name == "openai"
    assert select(chosen, "anthropic", "claude-haiku-4-5").name == "anthropic"
    with pytest.raises(NoUpstream, match="tokenops.toml"):
        select((local,), "anthropic", "claude-haiku-4-5")
