"""`tokenops price`: what one call costs, line by line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tokenops.cli.common import settings_from
from tokenops.events import TokenUsage
from tokenops.pricing import Pricer, Unpriced
from tokenops.pricing.explain import explain


def price(
    model: Annotated[str, typer.Argument(help="Model name, e.g. gpt-4o or claude-sonnet-4-5.")],
    input: Annotated[int, typer.Option("--input", "-i", help="Input tokens, cached ones included.")] = 0,
    output: Annotated[int, typer.Option("--output", "-o", help="Output tokens, reasoning included.")] = 0,
    cached: Annotated[int, typer.Option(help="Of the input, tokens read from the prompt cache.")] = 0,
    cache_write: Annotated[int, typer.Option(help="Of the input, tokens written to the prompt cache.")] = 0,
    reasoning: Annotated[int, typer.Option(help="Of the output, reasoning tokens.")] = 0,
    provider: Annotated[str | None, typer.Option(help="Provider id (openai, anthropic, azure ...).")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Priced as a batch API call.")] = False,
    at: Annotated[
        datetime | None, typer.Option(help="When the call was made (prices change over time); default now.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="tokenops.toml with overrides.")] = None,
) -> None:
    """Explain what a call costs, line by line, with list prices and your overrides."""
    console = Console()
    try:
        usage = TokenUsage(
            input_tokens=input,
            cache_read_tokens=cached,
            cache_write_tokens=cache_write,
            output_tokens=output,
            reasoning_tokens=reasoning,
        )
    except ValueError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    when = (at or datetime.now(UTC)).replace(tzinfo=at.tzinfo or UTC) if at else datetime.now(UTC)
    pricer = Pricer(settings_from(config).pricing.overrides)
    result = pricer.price(model, usage, provider=provider, ts=when, batch=batch)
    for line in explain(result, model=model, usage=usage):
        console.print(line, highlight=False)
    if isinstance(result, Unpriced):
        raise typer.Exit(1)
