"""Turning a provider's response into a priced, attributed `UsageEvent`.

Owns reading each wire format's `usage`, counting tokens when a provider reports none, and
building the event. Shared by the gateway and the SDK so both record identical rows. It does
not talk HTTP or write the ledger.
"""

from tokenops.meter.events import CallRecord, Meter
from tokenops.meter.usage import anthropic_usage, openai_usage

__all__ = ["CallRecord", "Meter", "anthropic_usage", "openai_usage"]
