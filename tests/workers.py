"""Real Celery worker processes for the tests that need one (PostgreSQL shared with the test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database, as a URL another process can reach: over TCP, or over the embedded
    server's Unix socket (its directory percent-encoded as the host)."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        return f"postgres://{db['USER']}@{quote(host, safe='')}/{db['NAME']}"
    return f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_start(queue: str, **env: str) -> subprocess.Popen:
    """``celery worker --pool=solo`` on ``queue``, against the test database."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "expansion",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=os.environ | {"DATABASE_URL": database_url(), "CELERY_TASK_DEFAULT_QUEUE": queue} | env,
    )
