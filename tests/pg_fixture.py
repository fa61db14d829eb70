"""A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary folder, trust auth, listening on a unix
socket in that folder and on a free loopback TCP port; stopped and removed at the end of the session.

PostgreSQL refuses to run as root (CI runs as root), so then the cluster runs as the `postgres` system user that
Debian's `postgresql` package creates. The tests that use it are skipped only when no PostgreSQL binaries exist.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_fixtures import free_port


def find_pg_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: on PATH, else the newest Debian /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    # Debian keeps the server binaries off PATH (only the client wrappers are there).
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


class PgCluster:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ecrs-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        # postgres will not run as root: hand the folder to the `postgres` user and run every command as it.
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.dir)
                raise RuntimeError("running as root and there is no `postgres` user to run PostgreSQL as") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        out = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}\n{log}")

    def start(self) -> PgCluster:
        # --no-sync only skips initdb's own fsyncs; the server keeps fsync on, like a real deployment.
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        opts = f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres", socket: bool = False) -> str:
        if socket:  # libpq reads a folder in `host` as the unix socket's directory
            return f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}"
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database (one per test, so tests see no one else's sessions); returns its name."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # CREATE DATABASE cannot run in a transaction
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)")
    cluster = PgCluster(bin_dir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()

