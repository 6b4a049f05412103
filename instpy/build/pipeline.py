"""Runs scan (and inject) over a whole tree: pre-filters, cache, processes, progress, the plan.

`run(root, rules, ...)` returns the plan and the rewritten bytes of every changed file; the emit
phase decides where they go. Files no rule can match never leave the parent process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click
import libcst as cst

from instpy.build.cache import BuildCache
from instpy.build.inject import inject
from instpy.build.plan import Plan, PlannedTarget, Unmatched
from instpy.build.rules import InjectionRule, RuleSet
from instpy.build.scan import (
    FileScan,
    SourceFile,
    is_src_layout,
    module_name,
    scan_source,
    tree_versions,
    version_problem,
    walk_tree,
)

# Below this many candidate files, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 48


@dataclass(frozen=True)
class _Job:
    path: str
    source: SourceFile
    rules: tuple[int, ...]  # indices into the rule set


@dataclass
class BuildResult:
    plan: Plan
    files: list[str]  # every file of the input, relative, sorted
    outputs: dict[str, bytes] = field(default_factory=dict)  # rel -> rewritten bytes


@dataclass
class _WorkerState:
    rules: tuple[InjectionRule, ...] = ()
    cache: BuildCache | None = None
    rewrite: bool = True


_state = _WorkerState()


def _init_worker(rules: tuple[InjectionRule, ...], cache: BuildCache | None, rewrite: bool) -> None:
    _state.rules, _state.cache, _state.rewrite = rules, cache, rewrite


def _process(job: _Job) -> tuple[str, FileScan, bytes | None]:
    """Scan one file and, when building, inject into it; through the cache when there is one."""
    with open(job.path, "rb") as fh:
        data = fh.read()
    cache = _state.cache
    key = cache.key(data, job.source.rel) if cache is not None else ""
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return job.source.rel, hit[0], hit[1]
    rules = [_state.rules[i] for i in job.rules]
    scan = scan_source(data, job.source, rules)
    output: bytes | None = None
    if _state.rewrite and scan.targets:
        try:
            rewritten = inject(data, scan.targets, job.source.rel)
        except (cst.ParserSyntaxError, cst.CSTValidationError) as exc:
            # Not safe to rewrite: report it with path:line and leave the file alone.
            line = scan.targets[0].line
            scan.warnings.append(
                f"{job.source.rel}:{line}: not rewritten, LibCST cannot handle it ({exc}); "
                "the file is copied unchanged and its targets are not governed"
            )
            scan.targets = []
            rewritten = data
        output = rewritten if rewritten != data else None
    if cache is not None and scan.parsed:
        cache.put(key, scan, output)
    return job.source.rel, scan, output


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(
    root: Path,
    rules: RuleSet,
    *,
    rewrite: bool = True,
    cache_dir: Path | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> BuildResult:
    """Scan `root` against `rules`; with `rewrite`, also inject into every matched file."""
    root = root.resolve()
    files = list(walk_tree(root))
    versions = tree_versions(root, files)
    problems = {r.name: version_problem(r, versions) for r in rules.rules}
    live = [i for i, r in enumerate(rules.rules) if problems[r.name] is None]
    src_layout = is_src_layout(root)
    module_seen: set[str] = set()
    jobs_list: list[_Job] = []
    for rel in files:
        module = module_name(rel, src_layout)
        if module is None:
            continue
        wanted = tuple(i for i in live if rules.rules[i].matches_module(module))
        if wanted:
            module_seen.update(rules.rules[i].name for i in wanted)
            jobs_list.append(_Job(str(root / rel), SourceFile(rel, module), wanted))
    mode = "build" if rewrite else "scan"
    cache = BuildCache(cache_dir / mode, rules.digest) if cache_dir is not None else None
    plan = Plan(root=str(root), rules_digest=rules.digest, files_scanned=len(jobs_list))
    result = BuildResult(plan=plan, files=files)
    for rel, scan, output in _execute(jobs_list, rules, cache, rewrite, jobs, progress):
        plan.targets.extend(scan.targets)
        plan.warnings.extend(scan.warnings)
        plan.files_parsed += scan.parsed
        if output is not None:
            result.outputs[rel] = output
    plan.targets.sort(key=lambda t: (t.file, t.index))
    plan.unmatched = _unmatched(rules, problems, module_seen, plan.targets)
    return result


def _execute(
    jobs_list: list[_Job],
    rules: RuleSet,
    cache: BuildCache | None,
    rewrite: bool,
    jobs: int,
    progress: bool,
) -> Iterator[tuple[str, FileScan, bytes | None]]:
    results: Iterable[tuple[str, FileScan, bytes | None]]
    if jobs > 1 and len(jobs_list) >= PARALLEL_THRESHOLD:
        pool = ProcessPoolExecutor(
            max_workers=jobs, initializer=_init_worker, initargs=(rules.rules, cache, rewrite)
        )
        chunk = max(1, len(jobs_list) // (jobs * 8))
        results = pool.map(_process, jobs_list, chunksize=chunk)
    else:
        pool = None
        _init_worker(rules.rules, cache, rewrite)
        results = map(_process, jobs_list)
    try:
        if progress and sys.stderr.isatty() and jobs_list:
            with click.progressbar(
                results, length=len(jobs_list), label="instpy", file=sys.stderr
            ) as bar:
                yield from bar
        else:
            yield from results
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _unmatched(
    rules: RuleSet,
    problems: dict[str, str | None],
    module_seen: set[str],
    targets: list[PlannedTarget],
) -> list[Unmatched]:
    hit = {name for t in targets for name in t.rules}
    out: list[Unmatched] = []
    for rule in rules.rules:
        if rule.name in hit:
            continue
        reason = problems[rule.name]
        if reason is None and rule.name not in module_seen:
            reason = f"no module of the input matches {rule.module!r}"
        elif reason is None:
            where = f"class {rule.cls!r}, " if rule.cls else "module level, "
            reason = f"module found, but no function matches {where}function {rule.function!r}"
        out.append(Unmatched(rule.name, rule.source, reason))
    return out
