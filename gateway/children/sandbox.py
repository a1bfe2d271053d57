"""The sandbox of stdio children and install steps (issue 10 item 1; docs/sandbox.md).

`Sandbox.wrap` turns a server's argv into one that runs it under bubblewrap
(https://github.com/containers/bubblewrap, the mechanism Flatpak uses):

- a fresh root: `/usr`, `/etc` (and `/bin`, `/lib*`, `/sbin` as the host has them)
  read-only; the gateway's interpreter (`sys.prefix`, `sys.base_prefix`), the
  project's source root (editable installs: `python -m catalog.echo.server`) and
  `sandbox_read_paths` read-only; a private `/tmp`; `/proc`, `/dev` of its own;
- the platform's data dir (signing key, stores, secrets, logs, other servers) is never
  visible: when it lies under a read-only path it is covered by an empty tmpfs, and
  only the server's own directory (`<servers_dir>/<name>`: cwd, HOME, caches) is bound
  back, read-write;
- new PID, IPC, UTS (and with `network: none`, network) namespaces, `--die-with-parent`,
  `--new-session` (a child cannot push keystrokes into a terminal with TIOCSTI);
- limits as rlimits (`prlimit`): memory as RLIMIT_DATA at twice the limit (RLIMIT_AS
  would break V8's large virtual reservations), processes as RLIMIT_NPROC, open files, CPU seconds, no
  core files. The container has no usable cgroup, so a watchdog (`tree_rss`) adds a
  limit on the resident memory of the whole process tree.

When the gateway runs as root, bwrap mounts with root's rights (so paths under 0700
directories such as a pyenv in /root can be shown) and the sandboxed command then runs
through `setpriv` as the server's own unprivileged uid (`uid_for`): RLIMIT_NPROC counts
per uid, so one server's fork bomb cannot starve the others. A non-root gateway runs
bwrap unprivileged (a user namespace), the children keep its uid, and RLIMIT_NPROC,
set inside the namespace, counts that sandbox's processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from shared.models import NetworkAccess, PackageLimits, PackageSource, ServerSpec
from shared.settings import Settings

import gateway

log = logging.getLogger(__name__)

BWRAP = "bwrap"
NONE = "none"
# host directories every child sees read-only; symlinks (Debian's merged /usr) stay links
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# RLIMIT_DATA of each process, as a multiple of the server's memory limit
DATA_LIMIT_FACTOR = 2
# stderr text of a process whose allocation failed under RLIMIT_DATA (Python, Node, C, C++)
_ALLOCATION_FAILED = re.compile(
    r"MemoryError|out of memory|Cannot allocate memory|ENOMEM|std::bad_alloc|"
    r"allocation failed", re.IGNORECASE)


class SandboxUnavailableError(RuntimeError):
    """`gateway_sandbox` is `bwrap` but bubblewrap (or util-linux) is not installed."""


class SandboxRefusedError(OSError):
    """The server may not run here unsandboxed; `str()` says why and how to opt in."""


@dataclass(frozen=True)
class Limits:
    """Effective limits of one server: MiB, processes, descriptors, CPU seconds (None:
    unlimited)."""

    memory_mb: int
    processes: int
    open_files: int
    cpu_seconds: int | None


def source_root() -> Path:
    """Directory holding the gateway's own packages (the repo root for an editable
    install; a site-packages dir, already under `sys.prefix`, otherwise)."""
    return Path(gateway.__file__).resolve().parents[1]


def _minimal(paths: list[Path]) -> list[Path]:
    """Existing `paths`, without duplicates or paths inside another of them."""
    kept: list[Path] = []
    for path in sorted({p.resolve() for p in paths if p.exists()}):
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def _ancestors(path: Path) -> list[str]:
    """`--dir` for every ancestor of `path`: bwrap would create missing ones mode 0700,
    which the unprivileged child could not traverse."""
    args: list[str] = []
    for parent in reversed(path.parents[:-1]):
        args += ["--dir", str(parent)]
    return args


class Sandbox:
    """Builds the argv of sandboxed children (see the module docstring).

    Args:
        settings: `gateway_sandbox`, `data_dir`, `sandbox_*` and `gateway_unsandboxed_teams`.
    Raises SandboxUnavailableError (from `check`) when `bwrap` mode lacks its tools.
    """

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.gateway_sandbox
        self.data_dir = settings.data_dir.resolve()
        self.servers_dir = self.data_dir / settings.servers_dir.relative_to(settings.data_dir)
        self.defaults = Limits(settings.sandbox_memory_mb, settings.sandbox_processes,
                               settings.sandbox_open_files, settings.sandbox_cpu_seconds)
        self.unsandboxed_teams = frozenset(settings.gateway_unsandboxed_teams)
        self.uid_base, self.uid_count = settings.sandbox_uid_base, settings.sandbox_uid_count
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.tools = {name: shutil.which(name) for name in ("bwrap", "prlimit", "setpriv")}
        extra = [Path(p) for p in settings.sandbox_read_paths]
        candidates = [Path(sys.prefix), Path(sys.base_prefix), source_root(), *extra]
        # never the data dir (or inside it); system dirs are shown anyway
        self.read_paths = [p for p in _minimal(candidates) if not p.is_relative_to(self.data_dir)
                           and not any(p.is_relative_to(d) for d in SYSTEM_DIRS)]

    @property
    def enabled(self) -> bool:
        """True when children run under bubblewrap."""
        return self.mode == BWRAP

    def check(self) -> None:
        """At gateway start: fail when `bwrap` mode cannot work; warn loudly for `none`."""
        if not self.enabled:
            log.warning("SANDBOX OFF (MCPAAS_GATEWAY_SANDBOX=none): stdio servers run as the "
                        "gateway's user and can read everything it can; team-owned servers are "
                        "refused unless listed in MCPAAS_GATEWAY_UNSANDBOXED_TEAMS (docs/sandbox.md)")
            return
        missing = [name for name, path in self.tools.items() if path is None
                   and (name != "setpriv" or self.as_root)]
        if missing:
            raise SandboxUnavailableError(
                f"MCPAAS_GATEWAY_SANDBOX=bwrap but {', '.join(missing)} not found: install "
                "them (apt-get install -y bubblewrap util-linux), or run with "
                "MCPAAS_GATEWAY_SANDBOX=none, which hosts team servers only when opted in")

    def admit(self, spec: ServerSpec) -> None:
        """Raise SandboxRefusedError when `spec` may not run unsandboxed here."""
        team = spec.owner_team
        if self.enabled or not team or team in self.unsandboxed_teams:
            return
        raise SandboxRefusedError(
            f"server '{spec.name}' belongs to team '{team}' and the gateway runs without a "
            "sandbox (MCPAAS_GATEWAY_SANDBOX=none); an operator must opt the team in with "
            "MCPAAS_GATEWAY_UNSANDBOXED_TEAMS")

    def own_dir(self, name: str) -> Path:
        """The server's own directory: cwd, HOME and caches of its children."""
        return self.servers_dir / name

    def uid_for(self, name: str) -> int | None:
        """The server's own uid when children change user (root gateway), else None."""
        if not (self.enabled and self.as_root):
            return None
        digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
        return self.uid_base + digest % self.uid_count

    def prepare(self, name: str) -> Path:
        """Create the server's own directory, owned by its uid; returns it."""
        own = self.own_dir(name)
        own.mkdir(parents=True, exist_ok=True)
        uid = self.uid_for(name)
        if uid is not None and own.stat().st_uid != uid:
            # files left by an unsandboxed run (or an older layout) become the server's
            for root, dirs, files in os.walk(own):
                for entry in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.lchown(entry, uid, uid)
        return own

    def limits(self, package: PackageSource) -> Limits:
        """The spec's limits, each unset one taken from the gateway's defaults."""
        spec = package.limits or PackageLimits()
        d = self.defaults
        return Limits(spec.memory_mb or d.memory_mb, spec.processes or d.processes,
                      spec.open_files or d.open_files, spec.cpu_seconds or d.cpu_seconds)

    def wrap(self, name: str, package: PackageSource, argv: list[str]) -> list[str]:
        """`argv` as server `name` runs it: unchanged without the sandbox."""
        if not self.enabled:
            return argv
        own = self.own_dir(name)
        args = [self.tools["bwrap"] or BWRAP, "--perms", "1777", "--tmpfs", "/tmp"]
        args += self._system_mounts()
        for path in self.read_paths:
            args += [*_ancestors(path), "--ro-bind", str(path), str(path)]
        if any(self.data_dir.is_relative_to(p) for p in self.read_paths):
            args += ["--tmpfs", str(self.data_dir)]  # hides keys, stores, logs, servers
        args += [*_ancestors(own), "--bind", str(own), str(own), "--chdir", str(own),
                 "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if package.network == NetworkAccess.NONE:
            args.append("--unshare-net")
        uid = self.uid_for(name)
        if uid is not None:
            # root's bwrap mounts; setpriv then drops to the server's uid (and every cap)
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                     self.tools["setpriv"] or "setpriv", f"--reuid={uid}", f"--regid={uid}",
                     "--clear-groups", "--inh-caps=-all", "--no-new-privs"]
        return [*args, "--", *self._rlimits(package), "--", *argv]

    def _system_mounts(self) -> list[str]:
        args: list[str] = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args

    def _rlimits(self, package: PackageSource) -> list[str]:
        limits = self.limits(package)
        # the watchdog enforces memory_mb on the tree; this per-process ceiling only
        # stops a spike between two of its looks
        memory = DATA_LIMIT_FACTOR * limits.memory_mb * 1024 * 1024
        args = [self.tools["prlimit"] or "prlimit", f"--data={memory}",
                f"--nproc={limits.processes}", f"--nofile={limits.open_files}", "--core=0"]
        if limits.cpu_seconds is not None:
            args.append(f"--cpu={limits.cpu_seconds}")
        return args


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in bytes (0 once gone).

    Source: proc(5) `/proc/<pid>/statm` (pages) and `/proc/<pid>/task/<tid>/children`.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # exited while we looked
    return total


def allocation_failed(stderr_tail: list[str]) -> bool:
    """True when a child's last stderr lines say an allocation failed (RLIMIT_DATA)."""
    return any(_ALLOCATION_FAILED.search(line) for line in stderr_tail)
