"""Phase 3 for wheels: the same wheel with its matched modules rewritten and a correct RECORD.

A project directory is first built into a wheel by the standard PEP 517 front end (`python -m
build` when installed, otherwise `pip wheel`). Entry order, permissions and timestamps are kept
(or all set to `SOURCE_DATE_EPOCH`), so the same input gives a byte-identical wheel.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from instpy.build.emit import source_date_epoch
from instpy.build.errors import EmitError
from instpy.build.files import atomic_write
from instpy.build.pipeline import BuildResult, run
from instpy.build.rules import RuleSet

_SIGNATURES = ("RECORD.jws", "RECORD.p7s")  # invalid once files change; dropped


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_project_wheel(project: Path, dest: Path) -> Path:
    """Build `project` with the PEP 517 front end; return the wheel's path."""
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dest), str(project)]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest)]
        if os.environ.get("INSTPY_NO_BUILD_ISOLATION"):
            cmd.append("--no-build-isolation")
        cmd.append(str(project))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise EmitError(
            f"building a wheel of {project} failed ({' '.join(cmd[1:4])} exited "
            f"{proc.returncode}); fix the project's build, or pass a wheel instead.\n"
            f"{proc.stderr.strip()[-2000:]}"
        )
    return wheels[0]


def rewrite_wheel(
    wheel: Path,
    rules: RuleSet,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> tuple[Path, BuildResult]:
    """Write the rewritten `wheel` into `out_dir` under the same file name."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmitError(f"{wheel} is not a readable wheel ({exc}); pass a .whl file") from exc
    with archive, tempfile.TemporaryDirectory(prefix="instpy-wheel-") as tmp:
        infos = archive.infolist()
        for info in infos:
            if info.is_dir() or ".." in Path(info.filename).parts or info.filename.startswith("/"):
                continue
            archive.extract(info, tmp)
        result = run(Path(tmp), rules, cache_dir=cache_dir, jobs=jobs, progress=progress)
        result.plan.root = wheel.name
        contents = {i.filename: archive.read(i) for i in infos if not i.is_dir()}
    data = _repack(infos, contents, result.outputs)
    target = out_dir / wheel.name
    atomic_write(target, data)
    return target, result


def _repack(
    infos: list[zipfile.ZipInfo], contents: dict[str, bytes], outputs: dict[str, bytes]
) -> bytes:
    records = [i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise EmitError("the wheel has no single *.dist-info/RECORD; it is not a valid wheel")
    record_name = records[0]
    epoch = source_date_epoch()
    buf = io.BytesIO()
    rows: list[list[str]] = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in infos:
            name = info.filename
            if name == record_name or name.rsplit("/", 1)[-1] in _SIGNATURES or info.is_dir():
                continue
            data = outputs.get(name, contents[name])
            new.writestr(_info(info, epoch), data)
            rows.append([name, record_hash(data), str(len(data))])
        rows.append([record_name, "", ""])
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        record_info = next(i for i in infos if i.filename == record_name)
        new.writestr(_info(record_info, epoch), text.getvalue().encode())
    return buf.getvalue()


def _info(old: zipfile.ZipInfo, epoch: int | None) -> zipfile.ZipInfo:
    stamp = time.gmtime(epoch)[:6] if epoch is not None else old.date_time
    info = zipfile.ZipInfo(old.filename, date_time=stamp)
    info.external_attr = old.external_attr
    info.create_system = old.create_system
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def add_requirement(wheel: Path, requirement: str) -> None:
    """Add `Requires-Dist: requirement` to a wheel's METADATA (once) and rewrite its RECORD."""
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
        contents = {i.filename: archive.read(i) for i in infos if not i.is_dir()}
    metadata = [n for n in contents if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
    if len(metadata) != 1:
        raise EmitError(f"{wheel.name} has no single *.dist-info/METADATA; it is not a valid wheel")
    text = contents[metadata[0]].decode("utf-8")
    line = f"Requires-Dist: {requirement}"
    if line in text.splitlines():
        return
    # Headers end at the first blank line (the description follows): add ours to the headers.
    head, sep, body = text.partition("\n\n")
    edited = f"{head.rstrip(chr(10))}\n{line}\n{sep or chr(10)}{body}"
    atomic_write(wheel, _repack(infos, contents, {metadata[0]: edited.encode("utf-8")}))


def write_runtime_wheel(out_dir: Path, files: dict[str, bytes], metadata: str) -> Path:
    """Write the runtime's own pure-Python wheel (reproducible: sorted, fixed timestamps)."""
    from instpy import __version__

    dist_info = f"instpy_runtime-{__version__}.dist-info"
    wheel_meta = "Wheel-Version: 1.0\nGenerator: instpy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members = {**files, f"{dist_info}/METADATA": metadata.encode(),
               f"{dist_info}/WHEEL": wheel_meta.encode(),
               f"{dist_info}/top_level.txt": b"instpy\n"}
    epoch = source_date_epoch() or 315532800
    stamp = time.gmtime(epoch)[:6]
    rows = [[name, record_hash(data), str(len(data))] for name, data in members.items()]
    rows.append([f"{dist_info}/RECORD", "", ""])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    members[f"{dist_info}/RECORD"] = text.getvalue().encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    target = out_dir / f"instpy_runtime-{__version__}-py3-none-any.whl"
    atomic_write(target, buf.getvalue())
    return target
