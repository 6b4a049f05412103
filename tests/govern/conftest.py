"""Fixtures every governed-service module shares: a license key, a dependency on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# The scenarios several modules share assert inside these.
pytest.register_assert_rewrite("lanes_support", "web_support")

from service_support import Dependency, free_port, mint_key  # noqa: E402


@pytest.fixture(scope="module")
def key() -> str:
    """A license key of namespace `shop`, one per module (a build binds it)."""
    return mint_key("shop")


@pytest.fixture(scope="module")
def dependency() -> Iterator[Dependency]:
    with Dependency() as dep:
        yield dep


@pytest.fixture(scope="module")
def dead_url() -> str:
    """Where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/down"
