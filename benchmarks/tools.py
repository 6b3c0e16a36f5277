"""The programs we compare with: find them, install them as root, or say what is skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

# Debian package for each program the benchmarks run.
_PACKAGES = {"fping": "fping", "ping": "iputils-ping", "tcpdump": "tcpdump", "time": "time"}

# What each program is for, so a skip line can say what is lost.
PURPOSE = {
    "fping": "the fping side of cases a-c (burst, 5,000 x 10, 20,000 x 10)",
    "ping": "the iputils ping side of case d (RTT)",
    "tcpdump": "case e (pacing on the wire)",
    "time": "exact peak RSS in cases a-c (without it, RSS is at least this harness's own)",
}


@dataclass(frozen=True)
class Tools:
    """Where each program is, or why it is not there."""

    fping: str | None
    ping: str | None
    tcpdump: str | None
    gnu_time: str | None
    """GNU time, which reports the peak RSS of the program it forks (see measure.py)."""
    missing_reason: str

    def skip_reason(self, name: str) -> str:
        """One line saying why the comparison needing ``name`` cannot run."""
        return f"{name} not found ({self.missing_reason})"


def _is_iputils_ping(path: str) -> bool:
    """busybox and inetutils have a ``ping`` too; case d's parsing and flags are iputils'."""
    try:
        completed = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "iputils" in completed.stdout + completed.stderr


def _locate() -> dict[str, str | None]:
    found: dict[str, str | None] = {name: shutil.which(name) for name in _PACKAGES}
    # The shell keyword 'time' is no use here: the program /usr/bin/time is.
    found["time"] = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    ping = found["ping"]
    if ping is not None and not _is_iputils_ping(ping):
        found["ping"] = None
    return found


def find_tools(*, install: bool = True) -> Tools:
    """Find fping, iputils ping and tcpdump; as root, install what is missing with apt-get.

    Everything done is said on stdout: the install, and each comparison that has to be
    skipped with the reason.
    """
    found = _locate()
    missing = [name for name, path in found.items() if path is None]
    reason = ""
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = [_PACKAGES[name] for name in missing]
        print(
            f"tools: {', '.join(missing)} missing: running apt-get update && "
            f"apt-get install -y {' '.join(packages)}",
            flush=True,
        )
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
            completed = subprocess.run(
                command, capture_output=True, text=True, env=environment, check=False
            )
            if completed.returncode:
                tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:]
                reason = f"'{' '.join(command)}' failed: {' '.join(tail) or completed.returncode}"
                print(f"tools: {reason}", flush=True)
                break
        found = _locate()
        missing = [name for name, path in found.items() if path is None]
    elif missing and os.geteuid() != 0:
        reason = "not root, so not installed"
    elif missing and install:
        reason = "apt-get not available"
    elif missing:
        reason = "installing was not asked for"
    for name, path in found.items():
        if path is None:
            print(
                f"tools: SKIPPED {PURPOSE[name]}: {name} is missing "
                f"({reason or 'still missing after apt-get install'})",
                flush=True,
            )
        else:
            print(f"tools: {name} = {path}", flush=True)
    return Tools(
        fping=found["fping"],
        ping=found["ping"],
        tcpdump=found["tcpdump"],
        gnu_time=found["time"],
        missing_reason=reason or "still missing after apt-get install",
    )


def version_line(path: str, flag: str) -> str:
    """The first line a program prints about its version, for the report's header."""
    try:
        completed = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path}: {exc}"
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    return lines[0] if lines else path
