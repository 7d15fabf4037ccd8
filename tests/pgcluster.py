"""Throwaway PostgreSQL servers for the tests and the benchmarks, as analysts meet them.

:class:`Cluster` is a primary with TLS on (a self-signed certificate) and streaming
replication allowed; :class:`Standby` is its hot standby (``pg_basebackup -R``);
:class:`Bouncer` is pgbouncer in transaction mode with its default configuration
otherwise. initdb, pg_ctl and pgbouncer refuse to run as root, so when we are root the
servers run as the ``postgres`` user (or ``nobody``). Each lives in a temporary directory,
listens on a free loopback port, and is removed by ``stop()``.
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
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Bouncer", "Cluster", "Standby", "find_bindir", "have_pgbouncer"]


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


def _as_server_user(cmd: list[str]) -> list[str]:
    owner = _server_user()
    if not owner:
        return cmd
    return ["setpriv", f"--reuid={owner}", f"--regid={pwd.getpwnam(owner).pw_gid}", "--clear-groups", "--", *cmd]


def _chown(*paths: Path) -> None:
    owner = _server_user()
    if owner:
        entry = pwd.getpwnam(owner)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


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
        subprocess.run(_as_server_user(list(args)), check=True, capture_output=True, cwd="/")

    def start(self) -> Cluster:
        bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="oriza-pg-"))
        self.root.chmod(0o755)
        self.port = _free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        _chown(self.root, pwfile)
        data = self.root / "data"
        self._run(str(bindir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
                  "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C")
        pwfile.unlink()
        tls = self._self_signed_certificate(data)
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
                f"-c wal_level=replica -c max_wal_senders=4 {tls}")
        self._run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "start")
        self._createdb(bindir)
        return self

    def _self_signed_certificate(self, data: Path) -> str:
        """TLS on, with a self-signed certificate for localhost (the options to pass), if openssl is here."""
        if not shutil.which("openssl"):
            return ""
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(data / "server.key"), "-out", str(data / "server.crt")],
                       check=True, capture_output=True)
        (data / "server.key").chmod(0o600)
        _chown(data / "server.key", data / "server.crt")
        shutil.copy(data / "server.crt", self.root / "ca.crt")  # what a client trusts (verify-full)
        (self.root / "ca.crt").chmod(0o644)
        return "-c ssl=on"

    @property
    def ca_file(self) -> Path | None:
        """The certificate a client verifies the server against, if TLS is on."""
        path = self.root / "ca.crt" if self.root else None
        return path if path and path.exists() else None

    def sql(self, *statements: str) -> None:
        """Run statements as the superuser, with psql."""
        bindir = find_bindir()
        psql = bindir / "psql" if (bindir / "psql").exists() else Path(shutil.which("psql") or "psql")
        env = {**os.environ, "PGPASSWORD": self.password}
        for statement in statements:
            subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d",
                            self.database, "-v", "ON_ERROR_STOP=1", "-qc", statement],
                           check=True, capture_output=True, env=env)

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


@dataclass
class Standby:
    """A streaming hot standby of ``primary``: read-only, as analysts' replicas are."""

    primary: Cluster
    port: int = 0
    root: Path | None = None

    def start(self) -> Standby:
        bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="oriza-standby-"))
        self.root.chmod(0o755)
        _chown(self.root)
        self.port = _free_port()
        data = self.root / "data"
        env = {**os.environ, "PGPASSWORD": self.primary.password}
        subprocess.run(_as_server_user([str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                                        str(self.primary.port), "-U", self.primary.user, "-D", str(data),
                                        "-R", "-X", "stream", "-c", "fast"]),
                       check=True, capture_output=True, env=env, cwd="/")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c hot_standby=on"
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                        str(self.root / "log"), "-w", "start"]), check=True, capture_output=True,
                       cwd="/")
        return self

    @property
    def url(self) -> str:
        p = self.primary
        return f"postgresql://{p.user}:{p.password}@127.0.0.1:{self.port}/{p.database}"

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            subprocess.run(_as_server_user([str(find_bindir() / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                                            "immediate", "-w", "stop"]), capture_output=True, cwd="/")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


@dataclass
class Bouncer:
    """pgbouncer in front of ``primary``, in transaction mode, otherwise as installed
    (so ``ignore_startup_parameters`` is empty: it refuses what it does not track)."""

    primary: Cluster
    port: int = 0
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Bouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.root = Path(tempfile.mkdtemp(prefix="oriza-pgbouncer-"))
        self.root.chmod(0o755)
        self.port = _free_port()
        p = self.primary
        (self.root / "userlist.txt").write_text(f'"{p.user}" "{p.password}"\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{p.database} = host=127.0.0.1 port={p.port} dbname={p.database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
            f"logfile = {self.root / 'log'}\n"
        )
        _chown(self.root, self.root / "userlist.txt", self.root / "pgbouncer.ini")
        (self.root / "userlist.txt").chmod(0o600)
        self.process = subprocess.Popen(_as_server_user([binary, str(self.root / "pgbouncer.ini")]),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start: {(self.root / 'log').read_text() if self.root else ''}")

    @property
    def url(self) -> str:
        p = self.primary
        return f"postgresql://{p.user}:{p.password}@127.0.0.1:{self.port}/{p.database}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def have_pgbouncer() -> bool:
    return bool(shutil.which("pgbouncer") or Path("/usr/sbin/pgbouncer").exists())


def _has_c_utf8() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.stdout.splitlines())
