"""SDK tests: the SDK from sdk/python/src (no install step) against the running app."""

import sys
from pathlib import Path

import pytest

SDK_SOURCE = Path(__file__).resolve().parents[2] / "sdk" / "python" / "src"
if str(SDK_SOURCE) not in sys.path:
    sys.path.insert(0, str(SDK_SOURCE))

from tollgate_sdk import Tollgate  # noqa: E402

from tests.factories import ApiTokenFactory  # noqa: E402


@pytest.fixture
def make_sdk(live_server):
    """Clients for any token, closed at the end of the test."""
    clients: list[Tollgate] = []

    def make(token, **options) -> Tollgate:
        client = Tollgate(token=token.raw_token, base_url=live_server.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sdk(make_sdk, org_token, meters) -> Tollgate:
    """The SDK acting as `org` (slug `acme`) with every org scope, over real HTTP."""
    return make_sdk(org_token)


@pytest.fixture
def operator_sdk(make_sdk, meters) -> Tollgate:
    """The provider's back office: an operator token that may ingest usage."""
    token = ApiTokenFactory(kind="operator", organization=None, scopes=["usage:write", "admin"])
    return make_sdk(token)
