"""A throwaway PostgreSQL server from the system's binaries (Debian's `postgresql` package), for the
tests that need a real database behind MLflow: initdb in a temporary folder, started on
127.0.0.1 at a free port, stopped and removed afterwards.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from tests.ports import free_port


def binaries() -> Path | None:
    """The folder of initdb and postgres: on PATH, else Debian's /usr/lib/postgresql/VERSION/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def server(database: str = "mlflow") -> Iterator[str]:
    """Yields the SQLAlchemy URI of an empty database on a fresh server (user `mlflow`, trust auth on
    127.0.0.1 only); the server and its files are gone afterwards."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb): apt-get install -y postgresql")
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    data, port = folder / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_owner([str(bin_dir / cmd[0]), *cmd[1:]]), check=True, capture_output=True, text=True)

    proc = None
    try:
        run("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "--encoding=UTF8", "--no-sync")
        proc = subprocess.Popen(
            _as_owner(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "server.log", "w"),
        )
        for _ in range(120):
            if subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.25)
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", database)
        yield f"postgresql://mlflow@127.0.0.1:{port}/{database}"
    finally:
        if proc is not None:
            # fast shutdown (ends the sessions left open), waiting until the server is gone
            subprocess.run(
                _as_owner([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"]), capture_output=True, timeout=60
            )
            proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
