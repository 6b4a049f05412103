"""The `instpy` command line."""

from __future__ import annotations

import click

from instpy import __version__


@click.group()
@click.version_option(__version__, prog_name="instpy")
def main() -> None:
    """Zero-code-change service governance for Python microservices, injected at build time."""
