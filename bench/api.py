"""Latency and throughput of a real gunicorn process, measured from HTTP clients."""

from __future__ import annotations

import dataclasses
import http.client
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.common import ENDPOINTS, get, median, percentile
from bench.server import Gunicorn, backend_leftovers, busy_cpu_seconds

# Parameters that exercise each endpoint the way the README's examples do.
PATHS = {"id": "/id?bytes=16", "uuid": "/uuid", "string": "/string?length=12",
         "time": "/time?tz=Europe/Berlin"}
# Far above any concurrency we test, so the API never turns a benchmark request away.
MAX_INFLIGHT = 1024


@dataclasses.dataclass(frozen=True)
class Latency:
    """Warm latency of one endpoint, in ms, plus the median of the server-reported phases."""

    endpoint: str
    samples: int
    p50_ms: float
    p95_ms: float
    errors: int
    phase_ms: dict[str, float]


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """First request after start-up, then warm latency per endpoint."""

    cold_ms: float
    cold_endpoint: str
    endpoints: tuple[Latency, ...]


@dataclasses.dataclass(frozen=True)
class Throughput:
    """One load level: completed requests per second, errors, and CPU per request."""

    clients: int
    seconds: float
    requests: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    per_second: float
    p50_ms: float
    cpu_s_per_request: float
    cores: int
    other_cores: float
    # The same CPU per request, by what spent it (bench.server.PARTS).
    cpu_s_by_part: dict[str, float]

    @property
    def ceiling_per_second(self) -> float:
        """Requests per second the cores allow at this CPU cost per request."""
        return self.cores / self.cpu_s_per_request if self.cpu_s_per_request else 0.0

    @property
    def percent_of_ceiling(self) -> float:
        """Throughput as a percentage of what the cores allow."""
        ceiling = self.ceiling_per_second
        return 100 * self.per_second / ceiling if ceiling else 0.0


def measure_latency(work: Path, logs: Path, venv_dir: Path, samples: int) -> LatencyStats:
    """Start gunicorn, time its first /uuid, then ``samples`` sequential requests per endpoint."""
    with Gunicorn(work / "latency-state", venv_dir, logs / "gunicorn-latency.log",
                  MAX_INFLIGHT) as server:
        status, body, cold_s = get(server.port, PATHS["uuid"])
        if status != 200:
            raise RuntimeError(f"first request failed with {status}: {body}\n{server.tail()}")
        results = []
        for endpoint in ENDPOINTS:
            times: list[float] = []
            phases: dict[str, list[float]] = {}
            errors = 0
            for _ in range(samples):
                try:
                    status, body, elapsed = get(server.port, PATHS[endpoint])
                except (OSError, http.client.HTTPException):
                    status = 0
                if status != 200:
                    errors += 1
                    continue
                times.append(elapsed * 1000)
                for name, ms in body.get("phases_ms", {}).items():
                    phases.setdefault(name, []).append(ms)
            results.append(Latency(endpoint, samples, median(times), percentile(times, 95), errors,
                                   {name: median(values) for name, values in phases.items()}))
    return LatencyStats(cold_s * 1000, "uuid", tuple(results))


def measure_throughput(work: Path, logs: Path, venv_dir: Path, levels: tuple[int, ...],
                       seconds: float) -> tuple[tuple[Throughput, ...], tuple[int, int]]:
    """Load /uuid at each client count; also return what the backend kept afterwards.

    Requests per second are counted in a ``seconds`` window that opens once every client has
    had its first answer (so start-up bunching is left out); CPU per request is the tree's CPU
    from idle to idle over every request of the level, so no request is cut in half.
    """
    cores = len(os.sched_getaffinity(0))
    results = []
    state_dir = work / "throughput-state"
    with Gunicorn(state_dir, venv_dir, logs / "gunicorn-throughput.log", MAX_INFLIGHT) as server:
        # Let both workers pay their one-off engine probe before any level is timed.
        Clients(server.port, 2).run_until_warm_then(lambda: time.sleep(1))
        for clients in levels:
            parts_before, busy_before = server.cpu_by_part(), busy_cpu_seconds()
            started = time.perf_counter()
            load = Clients(server.port, clients)
            window = load.run_until_warm_then(lambda: time.sleep(seconds))
            parts = {part: spent - parts_before[part]
                     for part, spent in server.cpu_by_part().items()}
            cpu = sum(parts.values())
            # What everything else on the machine used meanwhile (other jobs, and these clients).
            others = (busy_cpu_seconds() - busy_before - cpu) / (time.perf_counter() - started)
            in_window = [ms for at, ms in load.ok if window[0] <= at < window[1]]
            results.append(Throughput(
                clients=clients, seconds=window[1] - window[0], requests=len(in_window),
                completed=len(load.ok),
                errors=sum(load.errors.values()), error_kinds=dict(load.errors), per_second=len(in_window) / (window[1] - window[0]),
                p50_ms=median(in_window),
                cpu_s_per_request=cpu / len(load.ok) if load.ok else 0.0, cores=cores,
                other_cores=max(others, 0.0),
                cpu_s_by_part={part: spent / len(load.ok) if load.ok else 0.0
                               for part, spent in parts.items()}))
    return tuple(results), backend_leftovers(state_dir)


class Clients:
    """Closed-loop client threads, each sending /uuid back to back until stopped."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.ok: list[tuple[float, float]] = []  # (finished at, latency ms)
        self.errors: Counter[str] = Counter()  # "HTTP 503" or the exception's type -> count
        self._answered: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run_until_warm_then(self, measure: Callable[[], None]) -> tuple[float, float]:
        """Start the clients, wait until each has an answer, run ``measure``, stop and drain.

        Returns the (start, end) perf_counter times of ``measure``.
        """
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(self.count)]
        for thread in threads:
            thread.start()
        try:
            while len(self._answered) < self.count:
                time.sleep(0.05)
            started = time.perf_counter()
            measure()
            return started, time.perf_counter()
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()

    def _client(self, number: int) -> None:
        while not self._stop.is_set():
            try:
                status, _, elapsed = get(self.port, PATHS["uuid"])
                error = "" if status == 200 else f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                elapsed, error = 0.0, type(exc).__name__
            with self._lock:
                if error:
                    self.errors[error] += 1
                else:
                    self.ok.append((time.perf_counter(), elapsed * 1000))
                self._answered.add(number)
            if error:
                time.sleep(0.1)  # a failing server must not turn this into a busy loop
