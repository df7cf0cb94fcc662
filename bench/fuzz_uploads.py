"""Replay a deterministic corpus of malformed uploads against a running portal.

    .venv/bin/python bench/fuzz_uploads.py [--phantom DIR] [--out FILE]
        [--concurrency 2] [--limit N]

Starts a throw-away portal (bench/portal.py: gunicorn with 4 workers on a fresh
PostgreSQL database fuzz_<pid>, one Celery inference worker on Redis db 9, the
shipped model active, a fresh DATA_DIR and TMPDIR under /tmp, DEBUG off), builds the
corpus of bench/fuzz_corpus.py from the phantom series and sends every case twice:
through the upload form (session login, CSRF token, as a browser posts it) and
through the API (token). It records each answer's status and time, whether it holds
a server path or a traceback, and whether a refusal names a file it was sent (or
the limit it broke); it opens the study page of every study made. Once the worker
has drained the queue it checks what is left behind: files in storage no row
points at, rows whose file is missing, studies without files, studies not in a
final state, temporary files, and control characters or server paths in the
database. Then it opens every study page and API answer again and drops the
database. Results go to --out (docs/results/fuzz_uploads.json).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fuzz_corpus import MANY_FILES, Case, corpus, seeds_from_phantom  # noqa: E402
from bench.portal import Portal  # noqa: E402

PHANTOM = Path("/work/shared/data/dicom-head-phantom/std-brain-5mm")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Families whose refusal names a form field or a limit rather than a file.
_NAMES_NO_FILE = {"many-files", "zip-many"}


@dataclass
class Outcome:
    case: str
    family: str
    channel: str  # "web" | "api"
    status: int | str
    seconds: float
    leaks: list[str] = field(default_factory=list)
    names_file: bool | None = None  # for refusals
    study: int | None = None
    page_status: int | None = None


def upload_name(name: str) -> str:
    """The name the portal shows for an uploaded file (as Django and
    diagnosis.services.upload_name make it)."""
    name = html.unescape(name)
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if c.isprintable())
    base = _CONTROL.sub("", base).strip()
    return base[:60]  # a prefix: long names are elided in the middle


def leaks_in(text: str, portal: Portal) -> list[str]:
    found = []
    for needle in (str(portal.data_dir), "/tmp/", str(REPO), "site-packages"):  # noqa: S108 - looked for, not used
        if needle in text:
            at = text.index(needle)
            found.append(text[max(0, at - 60) : at + 80])
    if "Traceback (most recent call last)" in text:
        found.append("traceback")
    return found


def names_a_file(case: Case, text: str) -> bool:
    text = html.unescape(text)
    names = [upload_name(n) for n, _ in case.files]
    # Django's parser drops a file named "." or ".." (or nothing) before any view.
    names = [n for n in names if n not in ("", ".", "..")]
    return not names or any(n in text for n in names)


class Runner:
    def __init__(self, portal: Portal):
        self.portal = portal
        self.api = portal.api_session()
        self.web = portal.web_session()

    def send(self, case: Case, channel: str) -> Outcome:
        files = [
            ("files", (name, blob, "application/octet-stream"))
            for name, blob in case.files
        ]
        start = time.monotonic()
        try:
            if channel == "api":
                response = self.api.post(
                    f"{self.portal.base}/api/v1/studies/",
                    files=files or None,
                    data=case.fields or ({"patient_id": ""} if not files else None),
                    timeout=120,
                )
            else:
                response = self.portal.web_post_upload(
                    self.web,
                    files or [("files", ("", b"", "application/octet-stream"))],
                    fields=case.fields,
                )
        except requests.RequestException as exc:
            return Outcome(
                case.id,
                case.family,
                channel,
                type(exc).__name__,
                time.monotonic() - start,
            )
        seconds = time.monotonic() - start
        out = Outcome(case.id, case.family, channel, response.status_code, seconds)
        out.leaks = leaks_in(response.text, self.portal)
        if response.status_code == 400:
            out.names_file = self._clear_refusal(case, response.text)
        out.study = self._study_of(response, channel)
        if out.study is not None:
            out.page_status = self._check_page(out)
        return out

    def _clear_refusal(self, case: Case, text: str) -> bool:
        if not case.files:
            return "files" in text or "file" in text.lower()  # "choose a file"
        if case.fields:
            return any(name in text for name in case.fields)  # names the field
        if case.family in _NAMES_NO_FILE:
            return str(MANY_FILES - 1) in text  # names the limit
        return names_a_file(case, text)

    def _study_of(self, response, channel: str) -> int | None:
        if channel == "api" and response.status_code in (200, 201):
            return response.json().get("id")
        if channel == "web" and response.status_code == 302:
            match = re.search(r"/studies/(\d+)/", response.headers.get("Location", ""))
            return int(match.group(1)) if match else None
        return None

    def _check_page(self, out: Outcome) -> int:
        url = f"{self.portal.base}/studies/{out.study}/"
        page = self.web.get(url, timeout=60)
        out.leaks += [
            f"study page: {leak}" for leak in leaks_in(page.text, self.portal)
        ]
        return page.status_code


STATE = "from bench.fuzz_state import report; report()"


def summarise(
    outcomes: list[Outcome], state: dict, final_pages: dict, args, elapsed
) -> dict:
    times = sorted(o.seconds for o in outcomes)

    def pct(q: float) -> float:
        return round(times[min(len(times) - 1, int(q * len(times)))], 3)

    by_channel = {
        ch: dict(Counter(str(o.status) for o in outcomes if o.channel == ch))
        for ch in ("web", "api")
    }
    refusals = [o for o in outcomes if o.names_file is not None]
    return {
        "command": "python bench/fuzz_uploads.py"
        + (f" --limit {args.limit}" if args.limit else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "setup": "gunicorn (4 workers) + 1 Celery inference worker (concurrency 1), "
        "PostgreSQL 127.0.0.1 fresh database, Redis db 9, shipped model "
        "ich-seg-ctich, DEBUG off; corpus seeded from dicom-head-phantom std-brain-5mm",
        "cases": len({o.case for o in outcomes}),
        "uploads": len(outcomes),
        "families": dict(Counter(o.family for o in outcomes if o.channel == "api")),
        "status_counts": dict(Counter(str(o.status) for o in outcomes)),
        "status_by_channel": by_channel,
        "server_errors": [
            f"{o.channel} {o.case}: {o.status}"
            for o in outcomes
            if str(o.status).startswith("5") or isinstance(o.status, str)
        ],
        "request_seconds": {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "max": round(times[-1], 3),
            "mean": round(statistics.fmean(times), 3),
        },
        "slowest": [
            f"{o.channel} {o.case}: {o.seconds:.2f} s"
            for o in sorted(outcomes, key=lambda o: -o.seconds)[:8]
        ],
        "responses_with_server_path": sum(1 for o in outcomes if o.leaks),
        "server_path_examples": [
            f"{o.channel} {o.case}: {o.leaks[0]}" for o in outcomes if o.leaks
        ][:10],
        "refusals": len(refusals),
        "refusals_not_naming_a_file_or_limit": sum(
            1 for o in refusals if not o.names_file
        ),
        "unclear_refusal_examples": [
            f"{o.channel} {o.case}" for o in refusals if not o.names_file
        ][:40],
        "studies_made": len({(o.study) for o in outcomes if o.study}),
        "study_pages_after_upload": dict(
            Counter(str(o.page_status) for o in outcomes if o.page_status)
        ),
        "after_drain": state,
        "final_pages": final_pages,
        "elapsed_seconds": round(elapsed, 1),
    }


def final_checks(portal: Portal, runner: Runner, study_ids: set[int]) -> dict:
    """Every study's page and API answer once the worker is done."""
    statuses, leaks = Counter(), []
    for study_id in sorted(study_ids):
        for kind, session, url in (
            ("page", runner.web, f"{portal.base}/studies/{study_id}/"),
            ("api", runner.api, f"{portal.base}/api/v1/studies/{study_id}/"),
        ):
            response = session.get(url, timeout=60)
            statuses[f"{kind} {response.status_code}"] += 1
            leaks += [
                f"{kind} {study_id}: {x}" for x in leaks_in(response.text, portal)
            ]
    listing = runner.web.get(f"{portal.base}/studies/", timeout=60)
    statuses[f"worklist {listing.status_code}"] += 1
    leaks += leaks_in(listing.text, portal)
    return {
        "statuses": dict(statuses),
        "server_paths": len(leaks),
        "examples": leaks[:10],
    }


def log_errors(portal: Portal) -> dict:
    web = (portal.data_dir / "web.log").read_text(errors="replace")
    worker = (portal.data_dir / "worker.log").read_text(errors="replace")
    return {
        "web_log_internal_server_errors": web.count("Internal Server Error"),
        "web_log_tracebacks": web.count("Traceback"),
        "worker_log_tracebacks": worker.count("Traceback"),
        "worker_tasks_failed": worker.count("raised unexpected"),
    }


def run(args) -> dict:
    cases = corpus(seeds_from_phantom(args.phantom))
    if args.limit:
        cases = cases[:: max(1, len(cases) // args.limit)][: args.limit]
    started = time.monotonic()
    with Portal() as portal:
        runner = Runner(portal)
        jobs = [(c, ch) for c in cases for ch in ("web", "api")]
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            outcomes = list(pool.map(lambda job: runner.send(*job), jobs))
        print(f"{len(outcomes)} uploads sent; waiting for the worker", file=sys.stderr)
        left = portal.drain(timeout=args.drain_timeout)
        state = json.loads(portal.shell(STATE).strip().splitlines()[-1])
        state["drain_timed_out_with"] = left
        state.update(log_errors(portal))
        pages = final_checks(portal, runner, {o.study for o in outcomes if o.study})
        result = summarise(outcomes, state, pages, args, time.monotonic() - started)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phantom", type=Path, default=PHANTOM)
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "results" / "fuzz_uploads.json"
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--limit", type=int, default=0, help="a spread subset of N cases"
    )
    parser.add_argument("--drain-timeout", type=float, default=1800)
    args = parser.parse_args()
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "uploads",
                    "status_counts",
                    "request_seconds",
                    "responses_with_server_path",
                    "refusals_not_naming_a_file_or_limit",
                )
            },
            indent=2,
        )
    )
    print(json.dumps(result["after_drain"], indent=2, ensure_ascii=False)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
