"""Start the web server, a Celery worker, Celery beat and the DICOM listener; stop all
of them together.

Used by `make run`. Ctrl-C (or SIGTERM) stops every process gracefully; if one of them
dies, the others are stopped too and the exit code says so.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def commands(
    host: str, port: int, worker_concurrency: int, dicom_port: int | None = None
) -> dict[str, list[str]]:
    return {
        "web": [
            str(BIN / "gunicorn"),
            "stroke_portal.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "10",
        ],
        "worker": [
            str(BIN / "celery"),
            "-A",
            "stroke_portal",
            "worker",
            "--queues",
            "default,inference,training",
            "--concurrency",
            str(worker_concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        "beat": [
            str(BIN / "celery"),
            "-A",
            "stroke_portal",
            "beat",
            "--loglevel",
            "INFO",
        ],
        # C-ECHO/C-STORE for registered scanners and PACS (DICOM_AE_TITLE, port
        # DICOM_PORT, default 11112), completing studies after the quiet time.
        "dicom": [
            sys.executable,
            "manage.py",
            "dicom_listen",
            *(["--port", str(dicom_port)] if dicom_port is not None else []),
        ],
    }


def pipe_output(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>6} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def start(name: str, argv: list[str]) -> subprocess.Popen:
    # Own session: Ctrl-C reaches this supervisor only, which then stops the
    # children in order instead of each of them reacting on its own.
    process = subprocess.Popen(  # noqa: S603 - fixed argv built above
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    threading.Thread(
        target=pipe_output, args=(name, process.stdout), daemon=True
    ).start()
    return process


def stop_all(processes: dict[str, subprocess.Popen], timeout: float = 15.0) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(remaining)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_up(url: str, processes, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("PORTAL_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORTAL_PORT", "8000"))
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=int(os.environ.get("WORKER_CONCURRENCY", "1")),
    )
    parser.add_argument(
        "--dicom-port",
        type=int,
        default=None,
        help="The DICOM listener's port (default: DICOM_PORT, 11112).",
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    processes = {
        name: start(name, cmd)
        for name, cmd in commands(
            args.host, args.port, args.worker_concurrency, args.dicom_port
        ).items()
    }
    pids = ", ".join(f"{name} pid {p.pid}" for name, p in processes.items())
    print(f"runportal: started {pids}", flush=True)
    base = f"http://{args.host}:{args.port}"
    if wait_until_up(f"{base}/healthz", processes):
        print(
            f"\n  Stroke portal is up: open {base}/  (Ctrl-C stops everything)\n",
            flush=True,
        )
    exit_code = 0
    while not stopping.is_set():
        dead = [n for n, p in processes.items() if p.poll() is not None]
        if dead:
            print(
                f"runportal: {', '.join(dead)} stopped unexpectedly; "
                "stopping the rest.",
                file=sys.stderr,
            )
            exit_code = 1
            break
        stopping.wait(0.5)
    stop_all(processes)
    print("runportal: web, worker, beat and dicom stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
