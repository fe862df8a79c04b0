"""``python -m bench.backend``: the service on ``file://`` and on ``postgres://``, side by side.

For each backend, one gunicorn (embedded Temporal, offline engine): a cold /uuid, warm
sequential /uuid, then 8 closed-loop clients. For postgres, the database's own counters give
the statements (each an autocommitted transaction: one round trip) and the connections per
request. The PostgreSQL server is a throwaway cluster on loopback (tests/pgserver.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench.api import PATHS, Clients
from bench.common import SHARED_VENV_DIR, get, median, percentile
from bench.server import Gunicorn
from infra.settings import PROGRAM_DIR, PROJECT_ROOT
from infra.venv import ensure_venv
from tests.pgserver import DATABASE, PostgresServer, running_server

LOG_DIR = PROJECT_ROOT / ".state" / "bench"
TARGET_RATIO = 1.3


@dataclasses.dataclass(frozen=True)
class BackendRun:
    """One backend's numbers."""

    backend: str
    cold_ms: float
    warm_p50_ms: float
    warm_p95_ms: float
    clients: int
    per_second: float
    load_p50_ms: float
    errors: int
    statements_per_request: float | None
    connections_per_request: float | None


def counters(server: PostgresServer) -> tuple[int, int]:
    """(transactions, sessions) of the backend's database so far, minus this query's own."""
    time.sleep(1.5)  # the server publishes its statistics about once a second
    with psycopg.connect(server.url("postgres")) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
                           "WHERE datname = %s", (DATABASE,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure(name: str, work: Path, samples: int, clients: int, seconds: float,
            server: PostgresServer | None) -> BackendRun:
    """Cold, warm and loaded /uuid against one backend."""
    extra = {"INFRA_API_BACKEND_URL": server.url(table="bench_state")} if server else {}
    with Gunicorn(work / name, SHARED_VENV_DIR, LOG_DIR / f"gunicorn-backend-{name}.log", 1024,
                  **extra) as gunicorn:
        status, body, cold_s = get(gunicorn.port, PATHS["uuid"])
        if status != 200:
            raise RuntimeError(f"first request failed with {status}: {body}\n{gunicorn.tail()}")
        before = counters(server) if server else None
        times = []
        for _ in range(samples):
            status, body, elapsed = get(gunicorn.port, PATHS["uuid"])
            if status != 200:
                raise RuntimeError(f"warm request failed with {status}: {body}")
            times.append(elapsed * 1000)
        after = counters(server) if server else None
        load = Clients(gunicorn.port, clients)
        window = load.run_until_warm_then(lambda: time.sleep(seconds))
    in_window = [ms for at, ms in load.ok if window[0] <= at < window[1]]
    per_request = None
    if before and after:
        # The counters query itself is one transaction (its session may be counted later).
        per_request = ((after[0] - before[0] - 1) / samples,
                       max(after[1] - before[1] - 1, 0) / samples)
    return BackendRun(name, cold_s * 1000, median(times), percentile(times, 95), clients,
                      len(in_window) / (window[1] - window[0]), median(in_window),
                      sum(load.errors.values()),
                      per_request[0] if per_request else None,
                      per_request[1] if per_request else None)


def render(runs: Sequence[BackendRun], seconds: float) -> str:
    """A Markdown table of the runs, and postgres/file ratios against the target."""
    lines = ["| backend | cold /uuid ms | warm /uuid p50 ms | p95 ms | "
             f"{runs[0].clients} clients req/s | loaded p50 ms | errors | "
             "statements / request | new connections / request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"
        lines.append(f"| `{run.backend}://` | {run.cold_ms:.0f} | {run.warm_p50_ms:.0f} | "
                     f"{run.warm_p95_ms:.0f} | {run.per_second:.2f} | {run.load_p50_ms:.0f} | "
                     f"{run.errors} | {fmt(run.statements_per_request)} | "
                     f"{fmt(run.connections_per_request)} |")
    file, pg = runs
    warm = pg.warm_p50_ms / file.warm_p50_ms
    rate = file.per_second / pg.per_second if pg.per_second else float("inf")
    lines += ["", f"Load window {seconds:.0f} s per backend. postgres/file: warm latency "
              f"{warm:.2f}x, throughput {rate:.2f}x slower (target: within {TARGET_RATIO}x: "
              f"{'met' if max(warm, rate) <= TARGET_RATIO else 'missed'})."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both backends and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.backend", description=main.__doc__)
    parser.add_argument("--samples", type=int, default=10, help="warm requests per backend")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients under load")
    parser.add_argument("--seconds", type=float, default=30, help="load window per backend")
    args = parser.parse_args(argv)
    ensure_venv(PROGRAM_DIR, SHARED_VENV_DIR)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as tmp, running_server() as pg:
        runs = [measure("file", Path(tmp), args.samples, args.clients, args.seconds, None),
                measure("postgres", Path(tmp), args.samples, args.clients, args.seconds, pg)]
    print(render(runs, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
