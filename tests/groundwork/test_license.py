"""License keys: format, checksum catches typos, runtime verification, the CLI; key never echoed."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from instpy.build.license_cmd import binding_for_build, license_group
from instpy.runtime.license import (
    ALPHABET,
    ENV_KEY,
    ENV_KEY_FILE,
    LicenseBinding,
    LicenseError,
    fingerprint,
    mint_key,
    parse_key,
    read_runtime_key,
    verify_runtime_key,
)

KEY = mint_key("shop-prod")


def _assert_no_leak(message: str, key: str) -> None:
    secret = key.split(".")[2]
    assert key not in message
    # Not even a recognisable run of the secret.
    for i in range(len(secret) - 6):
        assert secret[i : i + 6] not in message


def test_minted_key_round_trips() -> None:
    binding = parse_key(KEY)
    assert binding.namespace == "shop-prod"
    assert binding.fingerprint == fingerprint(KEY)
    assert binding.fingerprint.startswith("sha256:") and len(binding.fingerprint) == 7 + 32
    assert KEY.split(".")[2] not in binding.fingerprint


def test_keys_are_random_and_case_and_whitespace_tolerant() -> None:
    assert mint_key("a") != mint_key("a")
    assert parse_key("  " + KEY.upper() + "\n") == parse_key(KEY)


def test_binding_dict_round_trip_and_damage() -> None:
    b = parse_key(KEY)
    assert LicenseBinding.from_dict(b.to_dict()) == b
    with pytest.raises(LicenseError, match="fingerprint"):
        LicenseBinding.from_dict({"namespace": "x", "fingerprint": "md5:1"})
    with pytest.raises(LicenseError, match="format"):
        LicenseBinding.from_dict({**b.to_dict(), "format": "ipk9"})


def _mutations(key: str) -> list[tuple[str, str]]:
    """Every single substitution (sampled alphabet), adjacent swap and deletion of `key`."""
    out: list[tuple[str, str]] = []
    for i, ch in enumerate(key):
        for repl in ALPHABET[::5] + "-.O":
            if repl != ch:
                out.append(("changed", key[:i] + repl + key[i + 1 :]))
        if i + 1 < len(key) and key[i] != key[i + 1]:
            out.append(("swapped", key[:i] + key[i + 1] + key[i] + key[i + 2 :]))
        out.append(("dropped", key[:i] + key[i + 1 :]))
    return out


@pytest.mark.parametrize("namespace", ["shop-prod", "a", "ns-1"])
def test_every_single_typo_fails_with_a_clear_message(namespace: str) -> None:
    key = mint_key(namespace)
    for kind, typo in _mutations(key):
        if typo.lower() == key:
            continue
        with pytest.raises(LicenseError) as info:
            parse_key(typo)
        message = str(info.value)
        assert "key" in message, (kind, message)
        _assert_no_leak(message, key)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("", "empty"),
        ("hello", "does not start with"),
        ("ipk1.shop", "parts"),
        ("ipk1.Shop_x.0000.000", "namespace part"),
        ("ipk1.shop.abc.0000000", "secret part of the license key has 3 characters"),
        ("ipk1.shop." + "0" * 32 + ".00", "checksum part of the license key has 2"),
        ("ipk1.shop." + "u" * 32 + ".0000000", "character 11"),
        ("ipk1.shop." + "0" * 32 + ".0000000", "checksum does not match"),
        ("ipk1.sh op.x.y", "whitespace"),
    ],
)
def test_messages_name_the_problem(bad: str, expected: str) -> None:
    with pytest.raises(LicenseError, match=expected):
        parse_key(bad)


def test_mint_rejects_bad_namespace() -> None:
    with pytest.raises(LicenseError, match="not valid"):
        mint_key("Shop_Prod")


def test_runtime_key_from_env_or_file(tmp_path: Path) -> None:
    binding = parse_key(KEY)
    assert verify_runtime_key(binding, {ENV_KEY: KEY}) == binding
    secret_file = tmp_path / "key"
    secret_file.write_text(KEY + "\n")
    assert verify_runtime_key(binding, {ENV_KEY_FILE: str(secret_file)}) == binding
    assert read_runtime_key({}) is None
    assert verify_runtime_key(binding, {}, required=False) is None


def test_runtime_refusals_never_leak_the_key(tmp_path: Path) -> None:
    binding = parse_key(KEY)
    other = mint_key("shop-prod")
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "no license key supplied"),
        ({ENV_KEY: other}, "not the key this artifact was built with"),
        ({ENV_KEY: KEY[:-1]}, "unusable"),
        ({ENV_KEY: KEY, ENV_KEY_FILE: "/x"}, "only one"),
        ({ENV_KEY_FILE: str(tmp_path / "missing")}, "cannot read"),
    ]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases.append(({ENV_KEY_FILE: str(empty)}, "is empty"))
    for env, expected in cases:
        with pytest.raises(LicenseError, match=expected) as info:
            verify_runtime_key(binding, env)
        _assert_no_leak(str(info.value), KEY)
        _assert_no_leak(str(info.value), other)


def test_runtime_refuses_other_namespace() -> None:
    with pytest.raises(LicenseError, match="built for namespace 'shop-prod'"):
        verify_runtime_key(parse_key(KEY), {ENV_KEY: KEY}, namespace="shop-dev")
    assert verify_runtime_key(parse_key(KEY), {ENV_KEY: KEY}, namespace="shop-prod") is not None


def test_cli_new_prints_key_on_last_line_and_check_hides_it() -> None:
    runner = CliRunner()
    result = runner.invoke(license_group, ["new", "--namespace", "team-a"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert result.stdout.strip() == key
    assert parse_key(key).namespace == "team-a"
    checked = runner.invoke(license_group, ["check"], env={ENV_KEY: key})
    assert checked.exit_code == 0
    assert "team-a" in checked.output and key not in checked.output
    bad = runner.invoke(license_group, ["check"], env={ENV_KEY: key[:-1] + "x"})
    assert bad.exit_code == 2 and key[:-1] not in bad.output


def test_cli_new_rejects_bad_namespace() -> None:
    result = CliRunner().invoke(license_group, ["new", "--namespace", "Bad_NS"])
    assert result.exit_code == 2
    assert "--namespace" in result.output


def test_binding_for_build_flag_then_env() -> None:
    assert binding_for_build(KEY, {}).namespace == "shop-prod"
    assert binding_for_build(None, {ENV_KEY: KEY}).namespace == "shop-prod"
    with pytest.raises(click.UsageError, match="needs a license key"):
        binding_for_build(None, {})
    with pytest.raises(click.UsageError, match=ENV_KEY) as info:
        binding_for_build(None, {ENV_KEY: KEY[:-2]})
    _assert_no_leak(info.value.message, KEY)
