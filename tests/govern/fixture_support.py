"""Fixtures the governed-service modules share: a license key, a dependency on loopback.

A plugin each module names (`pytest_plugins = ["fixture_support"]`), never imported: a
`conftest.py` here would share its module name with another test folder's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_support import Dependency, free_port, mint_key


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
