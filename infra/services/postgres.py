"""PostgreSQL: a private cluster (Debian's newest server, installed when absent) run with
``pg_ctl``, its application role and database, health check and shutdown."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .common import (
    HOST,
    PORTS,
    RUN,
    already_up,
    apt_install,
    ensure_free,
    log,
    pid_of,
    sh,
    stop_pid,
    wait_for,
)

PG_DB = "decisionflow"
PG_USER = "decisionflow"


def pg_bin() -> Path:
    """The newest PostgreSQL server's bin folder (installing the server when absent).

    The client package alone also creates /usr/lib/postgresql/<v>/bin (psql, pg_isready...):
    only a folder holding ``initdb`` and ``postgres`` counts.
    """

    def servers() -> list[Path]:
        found = [
            p
            for p in Path("/usr/lib/postgresql").glob("*/bin")
            if (p / "initdb").is_file() and (p / "postgres").is_file()
        ]
        return sorted(found, key=lambda p: int(p.parent.name))

    roots = servers()
    if not roots:
        apt_install("postgresql")
        roots = servers()
    if not roots:
        raise SystemExit("[stack] no PostgreSQL server after installing 'postgresql'")
    return roots[-1]


def as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the Debian `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def psql_cmd(bindir: Path) -> list[str]:
    """``psql`` as the superuser on the stack's server, ready for one ``-tAc`` query."""
    return [
        str(bindir / "psql"),
        "-h",
        HOST,
        "-p",
        str(PORTS["postgres"]),
        "-U",
        "postgres",
        "-tAc",
    ]


def postgres_up() -> None:
    d = RUN / "postgres"
    if already_up("postgres", postgres_healthy):
        return
    ensure_free("postgres", PORTS["postgres"])
    bindir = pg_bin()
    data = d / "data"
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        for parent in (RUN, *RUN.parents):  # the postgres user must be able to reach d
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    if not (data / "PG_VERSION").exists():
        log("initialising PostgreSQL cluster")
        sh(
            as_pg_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        )
    sh(
        as_pg_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(d / "postgres.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-c listen_addresses={HOST} -c port={PORTS['postgres']} "
                f"-c unix_socket_directories={d} -c fsync=off "
                f"-c external_pid_file={d / 'postgres.pid'}",
                "start",
            ]
        )
    )
    wait_for("postgres", postgres_healthy, 60)
    create_database(bindir)
    log(f"postgres up on {HOST}:{PORTS['postgres']} (database {PG_DB})")


def create_database(bindir: Path) -> None:
    """The application's role and database, created when missing."""
    query = psql_cmd(bindir)
    if sh([*query, f"SELECT 1 FROM pg_roles WHERE rolname='{PG_USER}'"]).stdout.strip() != "1":
        sh([*query, f"CREATE ROLE {PG_USER} LOGIN CREATEDB"])
    if sh([*query, f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"]).stdout.strip() != "1":
        sh([*query, f"CREATE DATABASE {PG_DB} OWNER {PG_USER}"])


def postgres_healthy() -> bool:
    r = subprocess.run(
        [*psql_cmd(pg_bin()), "SELECT 1"], capture_output=True, text=True, timeout=10
    )
    return r.returncode == 0 and r.stdout.strip() == "1"


def postgres_down() -> None:
    data = RUN / "postgres" / "data"
    if pid_of("postgres") and (data / "postmaster.pid").exists():
        subprocess.run(
            as_pg_user([str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
    pid = pid_of("postgres")
    if pid:
        stop_pid("postgres", pid)
