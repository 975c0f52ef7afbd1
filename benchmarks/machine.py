"""What a measurement ran on, and the process's own memory high-water mark."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

MB = 1024 * 1024
_PACKAGES = ("markdown-it-py", "prefect", "arxiv", "httpx", "pyarrow", "lxml")


def peak_rss_mb() -> float:
    """This process's own peak resident set size so far, in MiB.

    On Linux, `VmHWM` of /proc/self/status: `getrusage`'s `ru_maxrss` is kept across
    `execve`, so in a process started by another it is at least the parent's peak (a
    next night started by a first night's process would report that night's peak when
    its own is lower). Elsewhere `ru_maxrss`, whose unit is KiB on Linux and bytes on
    macOS."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    """Logical CPUs this process may run on."""
    ram_gib: float
    python: str
    platform: str
    date_utc: str
    git_commit: str
    packages: dict[str, str]

    def lines(self) -> list[str]:
        packages = ", ".join(f"{name} {ver}" for name, ver in self.packages.items())
        return [
            f"- CPU: {self.cpu_model}, {self.cores} cores available",
            f"- RAM: {self.ram_gib:.1f} GiB",
            f"- Python {self.python} on {self.platform}",
            f"- Date: {self.date_utc}",
            f"- Code: {self.git_commit}",
            f"- Packages: {packages}",
        ]


def describe_machine(project_root: Path) -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=len(os.sched_getaffinity(0)),
        ram_gib=_ram_bytes() / 1024**3,
        python=sys.version.split()[0],
        platform=platform.platform(),
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        git_commit=_git_commit(project_root),
        packages={name: _version(name) for name in _PACKAGES},
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _git_commit(root: Path) -> str:
    """HEAD, and whether the working tree differs from it (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} (with uncommitted changes)" if dirty else head


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
