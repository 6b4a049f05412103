"""The `instpy` command line."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from instpy import __version__

if TYPE_CHECKING:
    from instpy.build.target import Target

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@click.version_option(__version__, prog_name="instpy")
def main() -> None:
    """Zero-code-change service governance for Python microservices, injected at build time."""


def _build_errors(fn: F) -> F:
    """Show a BuildError as one clear message with exit status 2, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from instpy.build.errors import BuildError

        try:
            return fn(*args, **kwargs)
        except BuildError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _common(fn: F) -> F:
    options = [
        click.argument(
            "path", type=click.Path(exists=True, path_type=Path), default=Path("."), required=False
        ),
        click.option(
            "--rules", "-r", "rule_paths", multiple=True,
            type=click.Path(exists=True, path_type=Path),
            help="Injection-rule file or directory of *.yaml files (repeatable). "
            "With --govern, added to the shipped rules.",
        ),
        click.option(
            "--jobs", "-j", type=int, default=None, help="Worker processes (default: all cores)."
        ),
        click.option(
            "--cache-dir", type=click.Path(path_type=Path), default=None,
            help="Build cache location (default: $INSTPY_CACHE_DIR or ~/.cache/instpy).",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the build cache."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(jobs: int | None, cache_dir: Path | None, no_cache: bool) -> tuple[int, Path | None]:
    from instpy.build.cache import default_cache_dir
    from instpy.build.pipeline import default_jobs

    return (jobs or default_jobs()), (None if no_cache else (cache_dir or default_cache_dir()))


@main.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@_build_errors
def scan(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool, as_json: bool,
) -> None:
    """Dry run: print the plan (every target, and every rule that matched nothing)."""
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules

    _need_rules(rule_paths)
    rules = load_rules(rule_paths)
    n, cache = _settings(jobs, cache_dir, no_cache)
    result = run(path, rules, rewrite=False, cache_dir=cache, jobs=n, progress=True)
    click.echo(result.plan.to_json() if as_json else result.plan.to_text(), nl=False)


@main.command()
@_common
@click.option("--format", "fmt", type=click.Choice(["tree", "wheel"]), default="tree",
              show_default=True,
              help="tree: the whole tree (with --govern: service, dependencies and runtime side "
              "by side); wheel: rewritten wheel(s) (with --govern: a wheelhouse).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Output directory.")
@click.option("--govern", is_flag=True,
              help="Govern a service: fetch its dependencies with pip, add the shipped rules "
              "for its frameworks and clients, and emit it with the runtime.")
@click.option("--license-key", default=None, metavar="KEY",
              help="License key for --govern (default: $INSTPY_LICENSE_KEY, which keeps the key "
              "out of command lines).")
@click.option("--find-links", "-f", multiple=True, metavar="URL",
              help="Passed to pip with --govern: also look for wheels here (repeatable).")
@click.option("--no-index", is_flag=True, help="Passed to pip with --govern: offline build.")
@click.option("--index-url", "-i", default=None, metavar="URL",
              help="Passed to pip with --govern.")
@click.option("--pip-arg", "pip_extra", multiple=True, metavar="ARG",
              help="Any other pip option, passed through with --govern (repeatable).")
@click.option("--target-platform", default=None, metavar="OS/ARCH",
              help="With --govern: build for this Docker platform (linux/amd64, linux/arm64, ...) "
              "with its binary wheels (default: this machine).")
@click.option("--target-python", default=None, metavar="X.Y",
              help="With --govern: build for this CPython version (default: this Python).")
@click.option("--target-libc", default=None, metavar="LIBC",
              help="With a target: the image's C library, glibc[X.Y] (default glibc2.28: "
              "Debian, Ubuntu, RHEL) or musl[1.Y] (Alpine).")
@_build_errors
def build(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool, fmt: str, output: Path, govern: bool, license_key: str | None,
    find_links: tuple[str, ...], no_index: bool, index_url: str | None,
    pip_extra: tuple[str, ...], target_platform: str | None, target_python: str | None,
    target_libc: str | None,
) -> None:
    """Rewrite PATH (a project tree, or a wheel with --format wheel) into OUTPUT.

    With --govern, PATH is a service: a project (pyproject.toml) or a folder with a
    requirements.txt. With --target-platform/--target-python, its dependencies are the target's
    wheels and its environment markers are evaluated for the target.
    """
    from instpy.build.target import parse_target

    n, cache = _settings(jobs, cache_dir, no_cache)
    target = parse_target(target_platform, target_python, target_libc)
    if target is not None and not govern:
        raise click.UsageError("--target-platform/--target-python/--target-libc need --govern")
    if govern:
        pip_args = [*(a for url in find_links for a in ("--find-links", url)), *pip_extra]
        if no_index:
            pip_args.append("--no-index")
        if index_url:
            pip_args += ["--index-url", index_url]
        rule_paths = _with_service_rules(path, rule_paths) if path.is_dir() else rule_paths
        _build_governed(path, output, fmt, rule_paths, license_key, tuple(pip_args), n, cache,
                        target)
        return
    _need_rules(rule_paths)
    _build_plain(path, output, fmt, rule_paths, n, cache)


USER_RULES = "instpy-rules.yaml"


def _with_service_rules(path: Path, rule_paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """A service's own rules live in PATH/instpy-rules.yaml by convention; used when present."""
    own = path / USER_RULES
    if own.is_file() and not any(p.resolve() == own.resolve() for p in rule_paths):
        return (*rule_paths, own)
    return rule_paths


def _need_rules(rule_paths: tuple[Path, ...]) -> None:
    if not rule_paths:
        raise click.UsageError("pass --rules FILE_OR_DIR (or --govern to use the shipped rules)")


def _build_plain(
    path: Path, output: Path, fmt: str, rule_paths: tuple[Path, ...], n: int, cache: Path | None
) -> None:
    from instpy.build.emit import emit_tree
    from instpy.build.errors import EmitError
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules
    from instpy.build.wheel import build_project_wheel, rewrite_wheel

    rules = load_rules(rule_paths)
    if fmt == "tree":
        if not path.is_dir():
            raise EmitError(f"{path} is not a directory; --format tree takes a project tree")
        result = run(path, rules, cache_dir=cache, jobs=n, progress=True)
        written = emit_tree(result, path, output, rules)
        summary = f"{len(result.plan.targets)} target(s), {written} file(s) written to {output}"
    else:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="instpy-pep517-") as tmp:
            wheel = path if path.is_file() else build_project_wheel(path, Path(tmp))
            target, result = rewrite_wheel(wheel, rules, output, cache_dir=cache, jobs=n,
                                           progress=True)
        summary = f"{len(result.plan.targets)} target(s) in {target}"
    for warning in result.plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    for u in result.plan.unmatched:
        click.echo(f"warning: {u.source}: rule {u.rule!r} matches nothing: {u.reason}", err=True)
    click.echo(summary)


def _build_governed(
    path: Path, output: Path, fmt: str, rule_paths: tuple[Path, ...], license_key: str | None,
    pip_args: tuple[str, ...], n: int, cache: Path | None, target: Target | None = None,
) -> None:
    from instpy.build.deps import DependencyError
    from instpy.build.errors import EmitError
    from instpy.build.govern import GovernOptions, build_governed, shipped_rules
    from instpy.build.license_cmd import binding_for_build

    binding = binding_for_build(license_key)
    if not path.is_dir():
        raise EmitError(f"{path} is not a folder; --govern takes the service's folder")
    opts = GovernOptions(path, output, fmt, binding, rule_paths, pip_args, cache, n, True, target)
    try:
        report = build_governed(opts)
    except DependencyError as exc:
        raise EmitError(str(exc)) from exc
    shipped = str(shipped_rules().resolve())
    for u in report.unmatched:
        if str(Path(u.source.rsplit(":", 1)[0]).resolve()).startswith(shipped):
            click.echo(f"not used: shipped rule {u.rule!r}: {u.reason}", err=True)
        else:
            click.echo(f"warning: {u.source}: rule {u.rule!r} matches nothing: {u.reason}",
                       err=True)
    for t in report.targets:
        click.echo(f"governed: {t.fingerprint} ({t.file}:{t.line})", err=True)
    built_for = report.manifest.get("target")
    if target is not None and isinstance(built_for, dict):
        check = built_for["syntax_check"]
        note = f" ({check['note']})" if check["note"] else ""
        click.echo(f"built for {target.describe()}; {check['files']} emitted file(s) checked "
                   f"against the Python {check['grammar']} grammar{note}", err=True)
    click.echo(f"{len(report.targets)} target(s) governed; {fmt} written to {output} "
               f"(manifest: {output / 'instpy-manifest.json'})")


@main.command()
@_common
@_build_errors
def diff(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Show, as a unified diff, what inject would change in PATH."""
    from instpy.build.diff import unified_diff
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules

    _need_rules(rule_paths)
    rules = load_rules(rule_paths)
    n, cache = _settings(jobs, cache_dir, no_cache)
    result = run(path, rules, cache_dir=cache, jobs=n)
    click.echo(unified_diff(result, path.resolve()), nl=False)


@main.command()
@_common
@click.option("--governance", "governance_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="governance.yaml file(s) to validate (default: PATH/governance.yaml if any).")
def check(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool, governance_files: tuple[Path, ...],
) -> None:
    """Pre-commit check: rule files and governance.yaml are valid, every rule still matches.

    Without options it checks PATH/instpy-rules.yaml and PATH/governance.yaml (PATH: `.`).
    """
    from instpy.build.errors import BuildError
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules
    from instpy.runtime.governance import ConfigError, parse_config

    default = path / "governance.yaml" if path.is_dir() else None
    if not governance_files and default is not None and default.is_file():
        governance_files = (default,)
    if path.is_dir():
        rule_paths = _with_service_rules(path, rule_paths)
    if not rule_paths and not governance_files:
        raise click.UsageError(
            f"nothing to check: no {USER_RULES} or governance.yaml in {path}; "
            "pass --rules and/or --governance"
        )
    failed = False
    for file in governance_files:
        try:
            parse_config(file.read_text(encoding="utf-8"), str(file))
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            failed = True
    targets = rule_count = 0
    if rule_paths:
        try:
            rules = load_rules(rule_paths)
            n, cache = _settings(jobs, cache_dir, no_cache)
            result = run(path, rules, rewrite=False, cache_dir=cache, jobs=n)
        except BuildError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        for u in result.plan.unmatched:
            click.echo(f"{u.source}: rule {u.rule!r} matches nothing: {u.reason}", err=True)
        failed = failed or bool(result.plan.unmatched)
        targets, rule_count = len(result.plan.targets), len(rules.rules)
    if failed:
        sys.exit(1)
    click.echo(f"ok: {rule_count} rule(s), {targets} target(s), "
               f"{len(governance_files)} governance file(s)")


@main.group("rules")
def rules_group() -> None:
    """Injection rules."""


@rules_group.command("validate")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
def rules_validate(paths: tuple[Path, ...]) -> None:
    """Validate rule files (or directories of *.yaml) without scanning any code."""
    from instpy.build.errors import BuildError
    from instpy.build.rules import load_rules

    try:
        rules = load_rules(paths)
    except BuildError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"ok: {len(rules.rules)} rule(s) in {len(rules.files)} file(s)")


def _register() -> None:
    from instpy.build.license_cmd import license_group

    main.add_command(license_group)


_register()
