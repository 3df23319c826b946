"""Test helpers shipped with tokenops: a fake model provider and a threaded server runner.

Owns the only fake in the test suite — the provider — speaking OpenAI's and Anthropic's real
wire protocols. Nothing else here is a stand-in: gateways, ledgers and SDKs under test are real.
"""

from tokenops.testing.fake_provider import create_fake_provider
from tokenops.testing.fake_state import FakeConfig, FakeState, SeenRequest
from tokenops.testing.server import serve_in_thread

__all__ = ["FakeConfig", "FakeState", "SeenRequest", "create_fake_provider", "serve_in_thread"]
