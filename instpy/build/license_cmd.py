"""`instpy license ...`: mint and check license keys; the build's key lookup.

The lead wires `license_group` into `instpy.cli.main` (``main.add_command(license_group)``) and
calls `binding_for_build` from `instpy build --govern`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import click

from instpy.runtime.license import (
    ENV_KEY,
    LicenseBinding,
    LicenseError,
    check_namespace,
    mint_key,
    parse_key,
)

__all__ = ["binding_for_build", "license_group"]


def binding_for_build(
    flag_value: str | None, environ: Mapping[str, str] | None = None
) -> LicenseBinding:
    """The binding of the build's key: `--license-key` if given, else INSTPY_LICENSE_KEY.

    Raises click.UsageError (exit status 2) when there is no key or it is mistyped; the message
    names the problem and never contains the key.
    """
    env = os.environ if environ is None else environ
    key = flag_value if flag_value else env.get(ENV_KEY, "")
    source = "--license-key" if flag_value else ENV_KEY
    if not key.strip():
        raise click.UsageError(
            f"--govern needs a license key: pass --license-key KEY or set {ENV_KEY} "
            "(preferred in CI, it keeps the key out of command lines); "
            "mint one with `instpy license new --namespace NS`"
        )
    try:
        return parse_key(key)
    except LicenseError as exc:
        raise click.UsageError(f"{source}: {exc}") from None


@click.group("license")
def license_group() -> None:
    """Mint and check license keys (a key binds a governed build to a namespace)."""


@license_group.command("new")
@click.option(
    "--namespace", "-n", required=True, help="Namespace the key binds (a DNS-1123 label)."
)
def new_command(namespace: str) -> None:
    """Mint a key for NAMESPACE; the key is the last line printed (on stdout).

    Store it as a secret (CI secret, Kubernetes Secret); builds take it from INSTPY_LICENSE_KEY.
    """
    try:
        check_namespace(namespace)
    except LicenseError as exc:
        raise click.BadParameter(str(exc), param_hint="--namespace") from None
    key = mint_key(namespace)
    binding = parse_key(key)
    # Commentary goes to stderr so `KEY=$(instpy license new -n ns)` captures only the key.
    click.echo(f"namespace:   {binding.namespace}", err=True)
    click.echo(f"fingerprint: {binding.fingerprint}", err=True)
    click.echo("Store this key as a secret; it is not shown again:", err=True)
    click.echo(key)


@license_group.command("check")
@click.option(
    "--key",
    "key",
    envvar=ENV_KEY,
    show_envvar=True,
    help=f"The key to check (default: ${ENV_KEY}; prefer the variable, it stays out of history).",
)
def check_command(key: str | None) -> None:
    """Validate a key and print its namespace and fingerprint (never the key)."""
    if not key:
        raise click.UsageError(f"no key to check: set {ENV_KEY} or pass --key")
    try:
        binding = parse_key(key)
    except LicenseError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"namespace:   {binding.namespace}")
    click.echo(f"fingerprint: {binding.fingerprint}")
