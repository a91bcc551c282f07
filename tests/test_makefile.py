"""`make run`'s addresses: the links in messages follow the port it serves on."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(*args: str, **env: str) -> str:
    """What `make run` would print and run, without running it (-n), with a clean SITE_URL."""
    environ = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "HOST", "PORT")}
    environ.update(env)
    return subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", *args],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout


def test_make_run_points_the_links_in_messages_at_its_own_port():
    out = _dry_run("PORT=8111")
    assert "runserver --noreload 127.0.0.1:8111" in out
    assert "Links in messages: http://127.0.0.1:8111" in out
    out = _dry_run("HOST=0.0.0.0", "PORT=8112")
    assert "Links in messages: http://0.0.0.0:8112" in out


def test_a_site_url_from_the_environment_wins():
    out = _dry_run("PORT=8111", SITE_URL="https://offers.example.com")
    assert "Links in messages: https://offers.example.com" in out
    assert "runserver --noreload 127.0.0.1:8111" in out


def test_the_site_url_is_exported_to_the_server_worker_and_beat():
    """Every recipe's shell sees it in its environment (a probe target added with --eval)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "HOST", "PORT")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "--eval", 'probe: ; @echo "$$SITE_URL"']
        + ["probe", "PORT=8111"],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout
    assert out == "http://127.0.0.1:8111\n"
