"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

initdb and pg_ctl refuse to run as root, so when we are root the server runs as the
``postgres`` user (or ``nobody``). The cluster lives in a temporary directory, listens on
a free loopback port, and is removed by :meth:`Cluster.stop`.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cluster", "find_bindir"]


def find_bindir() -> Path:
    """Return the directory holding initdb/pg_ctl, or raise FileNotFoundError."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).resolve().parent))
    for directory in candidates:
        if directory and (Path(directory) / "initdb").exists():
            return Path(directory)
    raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL")


@dataclass
class Cluster:
    """A PostgreSQL server in a temporary directory; ``url`` is its asyncpg URL."""

    user: str = "oriza"
    database: str = "oriza"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    port: int = 0
    root: Path | None = None

    def _run(self, *args: str) -> None:
        owner = _server_user()
        cmd = list(args)
        if owner:
            cmd = ["setpriv", f"--reuid={owner}", f"--regid={pwd.getpwnam(owner).pw_gid}",
                   "--clear-groups", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd="/")

    def start(self) -> Cluster:
        bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="oriza-pg-"))
        self.root.chmod(0o755)
        self.port = _free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        owner = _server_user()
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        self._run(str(bindir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
                  "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C")
        pwfile.unlink()
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "start")
        self._createdb(bindir)
        return self

    def _createdb(self, bindir: Path) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                        self.database], check=True, capture_output=True, env=env)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run(str(find_bindir() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _has_c_utf8() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.stdout.splitlines())
