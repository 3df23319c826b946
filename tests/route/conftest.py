from tests.e2e.conftest import anyio_backend, fake_provider, gateway  # noqa: F401  (shared fixtures)
