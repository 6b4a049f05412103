"""The `instpy` command line."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from instpy import __version__

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
            "--rules", "-r", "rule_paths", multiple=True, required=True,
            type=click.Path(exists=True, path_type=Path),
            help="Injection-rule file or directory of *.yaml files (repeatable).",
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

    rules = load_rules(rule_paths)
    n, cache = _settings(jobs, cache_dir, no_cache)
    result = run(path, rules, rewrite=False, cache_dir=cache, jobs=n, progress=True)
    click.echo(result.plan.to_json() if as_json else result.plan.to_text(), nl=False)


@main.command()
@_common
@click.option("--format", "fmt", type=click.Choice(["tree", "wheel"]), default="tree",
              show_default=True, help="tree: the whole input tree; wheel: a rewritten wheel.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Output directory.")
@_build_errors
def build(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool, fmt: str, output: Path,
) -> None:
    """Rewrite PATH (a project tree, or a wheel with --format wheel) into OUTPUT."""
    from instpy.build.emit import emit_tree
    from instpy.build.errors import EmitError
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules
    from instpy.build.wheel import build_project_wheel, rewrite_wheel

    rules = load_rules(rule_paths)
    n, cache = _settings(jobs, cache_dir, no_cache)
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

    rules = load_rules(rule_paths)
    n, cache = _settings(jobs, cache_dir, no_cache)
    result = run(path, rules, cache_dir=cache, jobs=n)
    click.echo(unified_diff(result, path.resolve()), nl=False)


@main.command()
@_common
def check(
    path: Path, rule_paths: tuple[Path, ...], jobs: int | None, cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Pre-commit check: rule files are valid and every rule still matches something."""
    from instpy.build.errors import BuildError
    from instpy.build.pipeline import run
    from instpy.build.rules import load_rules

    try:
        rules = load_rules(rule_paths)
        n, cache = _settings(jobs, cache_dir, no_cache)
        result = run(path, rules, rewrite=False, cache_dir=cache, jobs=n)
    except BuildError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for u in result.plan.unmatched:
        click.echo(f"{u.source}: rule {u.rule!r} matches nothing: {u.reason}", err=True)
    if result.plan.unmatched:
        sys.exit(1)
    click.echo(f"ok: {len(rules.rules)} rule(s), {len(result.plan.targets)} target(s)")
