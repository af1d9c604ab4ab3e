"""Real MariaDB and PostgreSQL servers for the service tests, each started as a child process
in a temporary folder on a free localhost port, and stopped (folder removed) afterwards.

Debian's ``mariadb-server`` and ``postgresql`` packages provide the binaries (``.ci/run``
installs them). Both servers refuse to run as root by default:

* MariaDB accepts ``--user=root`` (it then does not try to switch user);
* PostgreSQL never runs as root: as root the server is started as the ``postgres`` user
  (which Debian's package creates) with ``runuser``, in a folder that user owns.

Without the binaries the tests that need a server fail with the install line when ``CI`` is set
(or ``CO2TWIN_REQUIRE_SERVERS=1``), and are skipped with it otherwise.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

APT = "apt-get install -y mariadb-server postgresql"


@dataclass
class Server:
    """A running database server: its SQLAlchemy URL (database ``valco2t``) and how to stop it."""

    kind: str
    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    log: Path
    admin_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the server (PostgreSQL: fast shutdown; MariaDB: SIGTERM; then SIGKILL) and
        remove its folder."""
        pid_file = self.folder / "data" / "postmaster.pid"
        if self.kind == "postgresql" and pid_file.exists() and self.process.poll() is None:
            # SIGINT to the postmaster (runuser's child): a fast shutdown, not waiting for clients
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def missing(what: str) -> None:
    """Fail (in CI) or skip (elsewhere) because a server binary is not installed."""
    message = f"{what} not found: install it with `{APT}`"
    if os.environ.get("CI") or os.environ.get("CO2TWIN_REQUIRE_SERVERS") == "1":
        pytest.fail(message + " (CI requires the database server tests to run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(names: list[str]) -> str | None:
    for name in names:
        hit = shutil.which(name) if "/" not in name else next(iter(sorted(glob.glob(name))), None)
        if hit:
            return hit
    return None


def _wait(server: Server, ready: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if ready():  # type: ignore[operator]
                return
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            pass
        time.sleep(0.2)
    text = server.log.read_text(errors="replace")[-3000:] if server.log.exists() else ""
    server.stop()
    pytest.fail(f"{what} did not start within {timeout:g} s:\n{text}", pytrace=False)


def start_mariadb() -> Server:
    """A MariaDB server with a database ``valco2t`` and a user ``co2twin`` (password in the URL)."""
    mysqld = _find(["mariadbd", "mysqld", "/usr/sbin/mariadbd", "/usr/sbin/mysqld"])
    install = _find(["mariadb-install-db", "mysql_install_db"])
    if mysqld is None or install is None:
        missing("MariaDB (mariadbd, mariadb-install-db)")
    import pymysql

    folder = Path(tempfile.mkdtemp(prefix="co2twin-mariadb-"))
    data = folder / "data"
    root = os.geteuid() == 0
    as_user = ["--user=root"] if root else []
    done = subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *as_user], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"mariadb-install-db failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    port = free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        [mysqld, "--no-defaults", f"--datadir={data}", f"--socket={folder / 'mysqld.sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={folder / 'mysqld.pid'}",
         f"--log-error={log}", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
         "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve", "--max-connections=300",
         *as_user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server("mariadb", "", folder, process, log)

    def ready() -> bool:
        pymysql.connect(host="127.0.0.1", port=port, user="root", password="").close()
        return True

    _wait(server, ready, "MariaDB")
    admin = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE valco2t CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute("CREATE USER 'co2twin'@'%' IDENTIFIED BY 'test-only-pw'")
        cur.execute("GRANT ALL PRIVILEGES ON valco2t.* TO 'co2twin'@'%'")
    admin.close()
    server.url = f"mysql+pymysql://co2twin:test-only-pw@127.0.0.1:{port}/valco2t?charset=utf8mb4"
    server.admin_url = f"mysql+pymysql://root:@127.0.0.1:{port}/?charset=utf8mb4"
    return server


def start_postgres() -> Server:
    """A PostgreSQL server with a database ``valco2t`` and a user ``co2twin`` (password in the URL)."""
    bindir = _find(["/usr/lib/postgresql/*/bin"])
    initdb = str(Path(bindir) / "initdb") if bindir else _find(["initdb"])
    postgres = str(Path(bindir) / "postgres") if bindir else _find(["postgres"])
    if not initdb or not postgres or not Path(initdb).exists():
        missing("PostgreSQL (initdb, postgres)")
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="co2twin-postgres-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        # postgres refuses to run as root: run it as Debian's postgres user, in a folder it owns
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            missing("the postgres system user (Debian's postgresql package creates it)")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    done = subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                           "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    port = free_port()
    log = folder / "server.log"
    with open(log, "wb") as handle:
        if prefix:
            os.chown(log, user.pw_uid, user.pw_gid)
        process = subprocess.Popen(
            [*prefix, postgres, "-D", str(data), "-p", str(port), "-k", str(folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300"],
            stdout=handle, stderr=subprocess.STDOUT)
    server = Server("postgresql", "", folder, process, log)

    def ready() -> bool:
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
        return True

    _wait(server, ready, "PostgreSQL")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         autocommit=True) as admin:
        admin.execute("CREATE USER co2twin PASSWORD 'test-only-pw'")
        admin.execute("CREATE DATABASE valco2t OWNER co2twin ENCODING 'UTF8'")
    server.url = f"postgresql+psycopg://co2twin:test-only-pw@127.0.0.1:{port}/valco2t"
    server.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    return server
