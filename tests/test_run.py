"""`make run`'s runner, as a newcomer meets it: embedded default, demo users, a task runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.processes import ROOT, free_port, wait_until


def test_runner_serves_tasks_and_runs_a_demo_task(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    # The embedded default (SQLite file + filesystem broker), in a folder of its own.
    env.update(SGM_VAR_DIR=str(tmp_path / "var"), SGM_ADDRESS=f"127.0.0.1:{port}", DEBUG="1")
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    runner = subprocess.Popen(
        [sys.executable, "-m", "sgm.run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    try:

        def up() -> bool:
            try:
                return session.get(f"{base}/accounts/login/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=90, interval=0.5)
        output = (tmp_path / "run.log").read_text()
        assert "ana / ana-demo" in output and "admin / admin-demo" in output

        login = session.get(f"{base}/accounts/login/", timeout=5)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token is not None
        response = session.post(
            f"{base}/accounts/login/",
            data={"username": "ana", "password": "ana-demo", "csrfmiddlewaretoken": token[1]},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=5,
        )
        assert response.status_code == 200 and "/tasks/" in response.url
        assert "Consolidar nómina" in response.text  # the seeded history

        launched = session.post(
            f"{base}/nomina/consolidar/",
            data={"periodo_id": "11"},
            headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": base},
            timeout=5,
        )
        assert launched.status_code == 202
        task_id = launched.json()["task_id"]

        def finished() -> bool:
            progress = session.get(f"{base}/tasks/{task_id}/progress/", timeout=5)
            return progress.status_code == 286 and "state-success" in progress.text

        wait_until(finished, timeout=60, interval=0.5)
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(timeout=40)
        except subprocess.TimeoutExpired:
            runner.kill()
            raise AssertionError(f"make run did not stop on SIGTERM:\n{_tail(tmp_path)}") from None
        log.close()
    time.sleep(0.5)
    leftovers = subprocess.run(
        ["pgrep", "-f", f"runserver --noreload 127.0.0.1:{port}"], capture_output=True
    )
    assert leftovers.returncode == 1, "the web server outlived make run"


def _tail(tmp_path) -> str:
    text: str = (tmp_path / "run.log").read_text()
    return text[-3000:]
