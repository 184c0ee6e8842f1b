"""`make run`: migrate, then the web server and a Celery worker together.

Ctrl-C (or SIGTERM) stops everything this started. The worker uses whatever broker the
settings name: the filesystem broker by default, CELERY_BROKER_URL when set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType


def _demo_credentials() -> list[str]:
    import django
    from django.conf import settings

    django.setup()
    if not settings.DEBUG:
        return []  # production settings: no demo users, ever
    from sgm.demo import seed_demo

    return seed_demo()


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")
    address = os.environ.get("SGM_ADDRESS", "127.0.0.1:8000")
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput"], check=True)
    credentials = _demo_credentials()
    from django.conf import settings  # set up by _demo_credentials

    # One worker with an embedded beat (-B): taskboard's periodic jobs run on a laptop too.
    beat_schedule = str(settings.VAR_DIR / "celerybeat-schedule")
    # It consumes taskboard's own queues too (reconciliation, alerts: CELERY_TASK_ROUTES).
    worker = ["-m", "celery", "-A", "sgm", "worker", "-l", "INFO", "-c", "2"]
    worker += ["-Q", "celery,taskboard,taskboard-alerts"]
    worker += ["-B", "-s", beat_schedule]
    children = [
        subprocess.Popen([python, *worker]),
        subprocess.Popen([python, "manage.py", "runserver", "--noreload", address]),
    ]
    print(f"taskboard: http://{address}/tasks/  (Ctrl-C stops web and worker)", flush=True)
    if credentials:
        print("Demo users (development only):", *credentials, sep="\n", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return max((child.returncode or 0 for child in children), default=0)


if __name__ == "__main__":
    sys.exit(main())
