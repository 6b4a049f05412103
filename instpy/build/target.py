"""The machine a governed artifact is built for, when it is not the machine building it.

`parse_target("linux/arm64", "3.12")` turns the names a Docker user writes into what pip and the
build need: the wheel platform tags of the architecture (manylinux for glibc, musllinux for
musl, newest first), pip's `--platform/--python-version/--implementation/--abi` options, the full
set of wheel tags the target accepts, and the environment that requirement markers
(`; python_version < "3.12"`, `; platform_machine == "aarch64"`) are evaluated in.

Only Linux CPython targets are supported: the images governed services ship in. The C library is
not part of a Docker platform name, so it is an option of its own: `glibc2.28` by default (glibc
2.28 or newer: Debian 10+, Ubuntu 20.04+, RHEL 8+, the official `python:*` images), or `musl1.2`
for Alpine. Wheels needing a newer glibc than the target's are never picked.
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags

from instpy.build.errors import BuildError

__all__ = ["MIN_PYTHON", "Target", "TargetError", "host_platform", "parse_target"]

# The runtime a governed artifact carries needs this (runtime_pkg: Requires-Python >=3.10).
MIN_PYTHON = (3, 10)
DEFAULT_GLIBC = (2, 28)
DEFAULT_MUSL = (1, 2)

# Docker architecture (after "linux/") -> the machine name in wheel tags and `uname -m`.
_ARCHES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm64/v8": "aarch64",
    "386": "i686",
    "arm/v7": "armv7l",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_DOCKER_NAME = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm/v7"}
# The oldest manylinux glibc per machine (PEP 600/599); the legacy aliases of PEP 513/571/599.
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5, "riscv64": 31}
_LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_ALIAS_ARCHES = {
    "manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x"},
    "manylinux2010": {"x86_64", "i686"},
    "manylinux1": {"x86_64", "i686"},
}
_PYTHON_RE = re.compile(r"^(?:cp|python)?\s*3\.(\d{1,2})(?:\.(\d{1,3}))?$")
_LIBC_RE = re.compile(r"^(glibc|musl)(?:\s*(\d+)\.(\d+))?$")


class TargetError(BuildError):
    """A --target-platform, --target-python or --target-libc value cannot be used."""


@dataclass(frozen=True)
class Target:
    """A Linux CPython target: architecture, Python version and C library."""

    platform: str  # Docker's name, normalised: "linux/arm64"
    machine: str  # wheel tags and `platform.machine()`: "aarch64"
    python: tuple[int, int]  # (3, 12)
    micro: int  # markers see python_full_version "3.12.<micro>"; 0 unless given
    libc: str  # "glibc" | "musl"
    libc_version: tuple[int, int]  # the target's C library version, (2, 28)
    native: bool = False  # derived from the build machine, no --target-* option given

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def abi(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    def describe(self) -> str:
        libc = f"{self.libc} {self.libc_version[0]}.{self.libc_version[1]}"
        return f"{self.platform} CPython {self.python_version} ({libc})"

    @cached_property
    def platforms(self) -> tuple[str, ...]:
        """Wheel platform tags the target runs, most specific first (pip's order of preference)."""
        major, newest = self.libc_version
        out: list[str] = []
        if self.libc == "musl":
            for minor in range(newest, -1, -1):
                out.append(f"musllinux_{major}_{minor}_{self.machine}")
            return tuple(out)
        oldest = _OLDEST_GLIBC_MINOR.get(self.machine, 17)
        for minor in range(newest, oldest - 1, -1):
            out.append(f"manylinux_{major}_{minor}_{self.machine}")
            alias = _LEGACY_ALIASES.get(minor)
            if alias is not None and self.machine in _ALIAS_ARCHES[alias]:
                out.append(f"{alias}_{self.machine}")
        return tuple(out)

    @cached_property
    def tags(self) -> frozenset[Tag]:
        """Every wheel tag the target accepts: what pip derives from the options below."""
        cp = list(cpython_tags(self.python, abis=[self.abi], platforms=self.platforms))
        rest = compatible_tags(self.python, interpreter=self.abi, platforms=self.platforms)
        return frozenset([*cp, *rest])

    def pip_args(self) -> list[str]:
        """pip's own options for resolving wheels for this target (download/install)."""
        args = [a for p in self.platforms for a in ("--platform", p)]
        return [*args, "--python-version", self.python_version, "--implementation", "cp",
                "--abi", self.abi, "--only-binary=:all:"]  # fmt: skip

    def tags_tried(self) -> str:
        """The tags pip was allowed, compactly, for error messages."""
        abis = f"{self.abi}-{self.abi}, {self.abi}-abi3 (and older cp3x-abi3), {self.abi}-none"
        return (f"interpreter/ABI {abis}, py3-none; platforms {', '.join(self.platforms)}, "
                "any")  # fmt: skip

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker variables as they are on the target (none taken from this machine)."""
        full = f"{self.python_version}.{self.micro}"
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",  # the target's kernel is not known at build time
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": full,
            "python_version": self.python_version,
            "sys_platform": "linux",
        }

    def to_manifest(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "python": self.python_version,
            "implementation": "cp",
            "abi": self.abi,
            "libc": f"{self.libc}{self.libc_version[0]}.{self.libc_version[1]}",
            "wheel_platforms": list(self.platforms),
            "native": self.native,
        }


def host_platform() -> str | None:
    """This machine as a Docker platform name, or None when it is not Linux."""
    if not sys.platform.startswith("linux"):
        return None
    machine = platform.machine()
    return f"linux/{_DOCKER_NAME.get(machine, machine)}"


def _host_libc() -> tuple[str, tuple[int, int]]:
    name, version = platform.libc_ver()
    parts = version.split(".")
    if name == "glibc" and len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
        return "glibc", (int(parts[0]), int(parts[1]))
    return "musl", DEFAULT_MUSL


def _parse_platform(value: str) -> tuple[str, str]:
    text = value.strip().lower()
    os_name, sep, arch = text.partition("/")
    if not sep:
        os_name, arch = "linux", text
    supported = ", ".join(f"linux/{a}" for a in _ARCHES)
    if os_name != "linux":
        raise TargetError(
            f"--target-platform {value!r}: only Linux targets are supported (the images governed "
            f"services run in); use one of {supported}"
        )
    machine = _ARCHES.get(arch)
    if machine is None:
        raise TargetError(
            f"--target-platform {value!r}: unknown architecture {arch!r}; use one of {supported} "
            "(Docker's names, as in `docker build --platform`)"
        )
    return "linux/" + ("arm64" if arch == "arm64/v8" else arch), machine


def _parse_python(value: str) -> tuple[tuple[int, int], int]:
    match = _PYTHON_RE.match(value.strip().lower())
    if match is None:
        raise TargetError(
            f"--target-python {value!r} is not a Python version; write it as 3.12 (or 3.12.4)"
        )
    python = (3, int(match.group(1)))
    if python < MIN_PYTHON:
        raise TargetError(
            f"--target-python {value}: the governance runtime needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer on the target; use an image with a newer "
            "Python"
        )
    return python, int(match.group(2) or 0)


def _parse_libc(value: str, machine: str) -> tuple[str, tuple[int, int]]:
    match = _LIBC_RE.match(value.strip().lower())
    if match is None:
        raise TargetError(
            f"--target-libc {value!r}: write glibc or musl, optionally with the target's version "
            "(glibc2.36 for Debian bookworm, musl1.2 for Alpine)"
        )
    name = match.group(1)
    if match.group(2) is not None:
        version = (int(match.group(2)), int(match.group(3)))
    elif name == "glibc":
        oldest = _OLDEST_GLIBC_MINOR.get(machine, 17)
        version = max(DEFAULT_GLIBC, (2, oldest))
    else:
        version = DEFAULT_MUSL
    if name == "glibc" and (version[0] != 2 or version[1] < _OLDEST_GLIBC_MINOR.get(machine, 17)):
        raise TargetError(
            f"--target-libc {value}: no manylinux wheel exists for glibc {version[0]}."
            f"{version[1]} on {machine}; give the target's real glibc version (`ldd --version` "
            "in the image)"
        )
    if name == "musl" and version[0] != 1:
        raise TargetError(f"--target-libc {value}: musllinux wheels exist for musl 1.x only")
    return name, version


def parse_target(
    platform_name: str | None, python: str | None, libc: str | None = None
) -> Target | None:
    """The target named by the options, or None for a native build (no option given).

    An option left out is taken from this machine: `--target-python 3.12` alone builds for this
    machine's architecture and C library with Python 3.12.
    """
    if platform_name is None and python is None and libc is None:
        return None
    if platform_name is None:
        host = host_platform()
        if host is None or host.removeprefix("linux/") not in _ARCHES:
            raise TargetError(
                f"this machine ({sys.platform}/{platform.machine()}) is not a Linux target: pass "
                "--target-platform too (e.g. linux/amd64)"
            )
        platform_name = host
    name, machine = _parse_platform(platform_name)
    if python is None:
        version, micro = (sys.version_info[0], sys.version_info[1]), sys.version_info[2]
        if version < MIN_PYTHON:
            raise TargetError("pass --target-python: this machine's Python is too old to target")
    else:
        version, micro = _parse_python(python)
    if libc is not None:
        libc_name, libc_version = _parse_libc(libc, machine)
    elif host_platform() == name:
        libc_name, libc_version = _host_libc()
    else:
        libc_name, libc_version = _parse_libc("glibc", machine)
    return Target(name, machine, version, micro, libc_name, libc_version)


def native_target() -> Target | None:
    """This machine as a Target (for the manifest of a native build); None off Linux."""
    host = host_platform()
    if host is None or host.removeprefix("linux/") not in _ARCHES:
        return None
    libc_name, libc_version = _host_libc()
    _, machine = _parse_platform(host)
    info = sys.version_info
    return Target(host, machine, (info[0], info[1]), info[2], libc_name, libc_version, True)
