"""Conformance suite: the official Anthropic Python SDK in strict validation mode against a
running `oma serve`.

The server is started by `.ci/run` (or by hand) and found through:
  OMA_BASE_URL   e.g. http://127.0.0.1:8787
  OMA_API_KEY    a key of tenant `default`
  OMA_API_KEY_2  a key of a second tenant (tenant-isolation tests)
"""

import os
import uuid

import anthropic
import pytest


BASE_URL = os.environ.get("OMA_BASE_URL", "http://127.0.0.1:8787")


def make_client(key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=key or os.environ["OMA_API_KEY"],
        base_url=BASE_URL,
        max_retries=0,
        _strict_response_validation=True,
    )


def assert_no_extra(obj) -> None:
    """Stricter than the SDK: fail on response keys the SDK does not know."""
    if isinstance(obj, anthropic.BaseModel):
        assert not obj.model_extra, f"unexpected keys on {type(obj).__name__}: {obj.model_extra}"
        for v in obj.__dict__.values():
            assert_no_extra(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_no_extra(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            assert_no_extra(v)


@pytest.fixture(scope="session")
def client() -> anthropic.Anthropic:
    return make_client()


@pytest.fixture(scope="session")
def other_client() -> anthropic.Anthropic:
    key = os.environ.get("OMA_API_KEY_2")
    if not key:
        pytest.skip("OMA_API_KEY_2 not set: no second tenant")
    return make_client(key)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def fake_model_server():
    """The fake model the server under test talks to (see fake_model.py and run.sh)."""
    from fake_model import FakeModel

    port = os.environ.get("OMA_FAKE_MODEL_PORT")
    if not port:
        pytest.skip("OMA_FAKE_MODEL_PORT not set: the server has no scripted model")
    fake = FakeModel(int(port))
    yield fake
    fake.stop()


@pytest.fixture
def fake_model(fake_model_server):
    fake_model_server.reset()
    yield fake_model_server
    fake_model_server.reset()


@pytest.fixture(scope="session")
def fake_search_server():
    """The fake Brave Search API the server's web_search talks to (fake_search.py, run.sh)."""
    from fake_search import FakeSearch

    port = os.environ.get("OMA_FAKE_SEARCH_PORT")
    if not port:
        pytest.skip("OMA_FAKE_SEARCH_PORT not set: the server has no search backend")
    fake = FakeSearch(int(port))
    yield fake
    fake.stop()


@pytest.fixture
def fake_search(fake_search_server):
    fake_search_server.reset()
    yield fake_search_server
    fake_search_server.reset()
