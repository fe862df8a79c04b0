"""Turn the measurements into PASS/FAIL targets and a Markdown report."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from bench.api import LatencyStats, Throughput
from bench.engine import Floor, Scaling
from bench.pipeline import PHASES, PipelineStats
from bench.server import PARTS, TEMPORAL
from bench.temporal import TemporalFloor
from bench.tutorial import TutorialStats
from bench.workflow import WorkflowStats

TARGET_CLIENTS = 8
MAX_P50_MS = 200
MIN_RATE = 10.0
MAX_CPU_S = 0.15
MIN_TUTORIAL_RATIO = 15.0
MAX_SCALE_RATIO = 3.0
# What the workflow path (Temporal) may add to a burn over the same steps run in-process.
MAX_WORKFLOW_ADDED_MS = 30.0


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured."""

    machine: dict[str, str]
    mode: str
    venv_note: str
    latency: LatencyStats
    pipeline: PipelineStats
    workflow: WorkflowStats
    temporal_floor: TemporalFloor
    throughput: tuple[Throughput, ...]
    leftovers: tuple[int, int]
    scaling: tuple[Scaling, ...]
    floor: Floor
    tutorial: TutorialStats
    wall_s: float

    def uuid_p50(self) -> float:
        """Warm /uuid p50 in ms."""
        return next(e.p50_ms for e in self.latency.endpoints if e.endpoint == "uuid")


@dataclasses.dataclass(frozen=True)
class Target:
    """One goal, what was measured against it, and whether it was met."""

    goal: str
    measured: str
    passed: bool


def targets(r: Results) -> list[Target]:
    """Evaluate the published targets from the numbers."""
    p50 = r.uuid_p50()
    ratio = r.tutorial.median_ms / p50 if p50 else math.nan
    found = [t for t in r.throughput if t.clients == TARGET_CLIENTS]
    load = found[0] if found else None
    missing = f"not measured ({TARGET_CLIENTS} clients not in this run)"
    sizes = {s.resources: s for s in r.scaling}
    if 10 in sizes and 100 in sizes:
        growth = sizes[100].up_ms / sizes[10].up_ms
        scale_text = f"{growth:.1f}x ({sizes[100].up_ms:.0f} / {sizes[10].up_ms:.0f} ms)"
        scale_ok = growth <= MAX_SCALE_RATIO
    else:
        scale_text, scale_ok = "not measured", False
    return [
        Target(f"warm /uuid p50 at most {MAX_P50_MS} ms (explicit passphrase)",
               f"{p50:.0f} ms", p50 <= MAX_P50_MS),
        Target(f"{TARGET_CLIENTS} clients: no errors",
               _errors(load) if load else missing, load is not None and load.errors == 0),
        Target(f"{TARGET_CLIENTS} clients: at least {MIN_RATE:g} requests/s",
               f"{load.per_second:.2f} req/s" if load else missing,
               load is not None and load.per_second >= MIN_RATE),
        Target(f"{TARGET_CLIENTS} clients: at most {MAX_CPU_S:g} CPU-seconds per request "
               "(every process of the service)",
               f"{load.cpu_s_per_request:.3f} s" if load else missing,
               load is not None and load.cpu_s_per_request <= MAX_CPU_S),
        Target(f"at least {MIN_TUTORIAL_RATIO:g}x faster than the tutorial flow",
               f"{ratio:.1f}x ({r.tutorial.median_ms:.0f} / {p50:.0f} ms)",
               ratio >= MIN_TUTORIAL_RATIO),
        Target(f"100-resource up at most {MAX_SCALE_RATIO:g}x the 10-resource up", scale_text,
               scale_ok),
        Target(f"the workflow path at most {MAX_WORKFLOW_ADDED_MS:g} ms over the same steps "
               "in-process", f"{r.workflow.added_ms:+.0f} ms ({r.workflow.workflow_ms:.0f} / "
               f"{r.workflow.in_process_ms:.0f} ms)", r.workflow.added_ms <= MAX_WORKFLOW_ADDED_MS),
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _errors(t: Throughput) -> str:
    kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(t.error_kinds.items()))
    return f"{t.errors} ({kinds})" if kinds else "0"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}"


def render(r: Results) -> str:
    """The whole report as Markdown."""
    out = ["# Benchmarks", "",
           f"Written by `make bench` (`python -m bench{' --quick' if r.mode == 'quick' else ''}`)"
           f"; {r.mode} run, {r.wall_s / 60:.1f} min. Do not edit by hand: re-run it. "
           "What each number means is explained at the end.", "", "## Machine", ""]
    out += _table(["", ""], [[k, v] for k, v in r.machine.items()] +
                  [["Program virtualenv", r.venv_note]])
    out += ["", "## Targets", ""]
    out += _table(["Target", "Measured", "Result"],
                  [[t.goal, t.measured, "PASS" if t.passed else "FAIL"] for t in targets(r)])
    lat = r.latency
    out += ["", "## Latency (gunicorn, one request at a time)", ""]
    rows = [[f"/{lat.cold_endpoint} cold (first request after start)", _ms(lat.cold_ms), "",
             "1", "0"]]
    rows += [[f"/{e.endpoint} warm", _ms(e.p50_ms), _ms(e.p95_ms), str(e.samples), str(e.errors)]
             for e in lat.endpoints]
    out += _table(["Request", "p50 ms", "p95 ms", "Samples", "Errors"], rows)
    p = r.pipeline
    http_phases = next(e.phase_ms for e in lat.endpoints if e.endpoint == "uuid")
    out += ["", "## Time per phase (/uuid, median ms)", ""]
    out += _table(["Phase", "gunicorn (from phases_ms)", "in-process Burner.run"],
                  [[name, _ms(http_phases.get(name, math.nan)), _ms(p.phase_ms.get(name, math.nan))]
                   for name in PHASES] +
                  [["**total**", _ms(sum(http_phases.values())), _ms(p.total_ms)]])
    counts = ", ".join(str(n) for n in sorted(set(p.pulumi_per_request)))
    breakdown = ", ".join(f"`{name}` {n:g}" for name, n in p.subcommands.items())
    out += ["", f"`pulumi` processes per request: **{counts}** over {p.runs} requests "
            f"({breakdown}); plus {p.engine_probe} per process at start-up (the version probe)."]
    out += ["", "## Throughput (gunicorn, /uuid, closed-loop clients)", ""]
    out += _table(["Clients", "Requests", "Errors", "req/s", "p50 ms", "CPU s/request",
                   "Cores allow req/s", "% of that", "Other load (cores)"],
                  [[str(t.clients), str(t.requests), _errors(t), f"{t.per_second:.2f}",
                    _ms(t.p50_ms), f"{t.cpu_s_per_request:.2f}", f"{t.ceiling_per_second:.2f}",
                    f"{t.percent_of_ceiling:.0f}%", f"{t.other_cores:.2f}"] for t in r.throughput])
    out += ["", "CPU per request by what spent it, in ms:", ""]
    out += _table(["Part", *(f"{t.clients} clients" for t in r.throughput)],
                  [[part, *(_ms(t.cpu_s_by_part[part] * 1000) for t in r.throughput)]
                   for part in PARTS])
    out += ["", f"Of the {TEMPORAL}'s share, {r.temporal_floor.server_cpu_ms:.0f} ms is its floor: "
            f"its CPU per workflow for the smallest one shaped like a burn (one activity that "
            f"heartbeats once, eager start, the service's server flags; "
            f"{r.temporal_floor.runs} runs, {r.temporal_floor.concurrency} at a time)."]
    stacks, files = r.leftovers
    total = sum(t.completed for t in r.throughput)
    per = f" ({files / total:.1f} per request)" if total else ""
    out += ["", f"After the {total} successful requests of these levels (and a few warm-up ones) "
            f"the server's file backend held {stacks} stacks and {files} files{per}."]
    out += ["", "## Engine scaling (Automation API, offline engine, temp file backend)", ""]
    out += _table(["Resources", "up ms", "destroy ms", "up CPU: program ms", "engine ms",
                   "Automation API and launchers ms"],
                  [[str(s.resources), _ms(s.up_ms), _ms(s.destroy_ms), _ms(s.program_cpu_ms),
                    _ms(s.engine_cpu_ms), _ms(s.client_cpu_ms)] for s in r.scaling])
    out += scaling_split(r.scaling)
    w = r.workflow
    out += ["", f"The workflow path (Temporal) against the burn activity's steps in-process "
            f"(operation record and engine events recorded in both): "
            f"{w.workflow_ms:.0f} / {w.in_process_ms:.0f} ms, {w.added_ms:+.0f} ms per /uuid "
            f"(medians of {w.runs}, alternating). The bare steps in-process, with neither the "
            f"operation record nor engine events: {w.bare_ms:.0f} ms."]
    f = r.floor
    out += ["", f"## Floor of one command (median of {f.runs})", ""]
    out += _table(["Layer", "ms"], [
        ["bare interpreter start (`python -SE -c pass`)", _ms(f.interpreter_ms)],
        ["the Python launcher's start (`bin/pulumi-launcher` compiled, its modules imported)",
         _ms(f.launcher_ms)],
        ["`pulumi version` through the resident engine", _ms(f.resident_ms)],
        ["`pulumi version` run by the launcher itself (no resident engine)", _ms(f.direct_ms)],
        ["the program run, cold (`python -c \"import pulumi, pulumi_random\"`, program venv)",
         _ms(f.program_ms)],
    ])
    p50 = r.uuid_p50()
    out += ["", "## The tutorial flow", ""]
    out += _table(["Measurement", "ms"], [
        [f"tutorial flow, one /uuid (median of {r.tutorial.requests})", _ms(r.tutorial.median_ms)],
        ["  of which fresh venv + pip install", _ms(r.tutorial.venv_median_ms)],
        ["this service, warm /uuid p50", _ms(p50)],
        ["ratio tutorial / this service", f"{r.tutorial.median_ms / p50:.1f}x" if p50 else "n/a"],
    ])
    out += ["", EXPLANATION]
    return "\n".join(out) + "\n"


def scaling_split(scaling: Sequence[Scaling]) -> list[str]:
    """What one more resource costs, from 10 to 100, and what the ratio target asks of it."""
    sizes = {s.resources: s for s in scaling}
    if 10 not in sizes or 100 not in sizes:
        return []
    small, large = sizes[10], sizes[100]
    per = (large.up_ms - small.up_ms) / 90
    fixed = small.up_ms - 10 * per
    program = (large.program_cpu_ms - small.program_cpu_ms) / 90
    engine = (large.engine_cpu_ms - small.engine_cpu_ms) / 90
    return ["", f"From 10 to 100 resources, each more resource adds {per:.2f} ms to the `up` "
            f"({program:.2f} ms of the program's CPU, {engine:.2f} ms of the engine's, on the "
            f"other core); what does not grow with resources is {fixed:.0f} ms. The "
            f"{MAX_SCALE_RATIO:g}x target holds when that fixed part is at least "
            f"{(100 - 10 * MAX_SCALE_RATIO) / (MAX_SCALE_RATIO - 1):.0f} times the cost of a "
            "resource: a faster fixed part makes the ratio worse, a cheaper resource better."]


EXPLANATION = """## What the numbers mean

- **cold**: the first `/uuid` after gunicorn answers `/healthz`. The program virtualenv
  already exists (built once under `.cache/program-venvs/`, shared with the tests), so this is the
  worker's first use of the engine plus one pipeline run.
- **warm p50/p95**: sequential requests to each endpoint on the same server, timed by the client
  (connect to last byte). The server has its own temporary state dir.
- **Time per phase**: the `phases_ms` the API returns for warm `/uuid` requests, and the same
  pipeline driven in-process through an engine whose `bin/pulumi` is a shim that logs each
  invocation before running the real one; the shim's log gives the `pulumi` process count.
- **Throughput**: N client threads each send `/uuid` back to back. req/s counts successful
  answers in a fixed window that opens once every client has had its first answer, so the
  bunched start is left out; p50 is over those answers. Errors are non-200 answers and
  connection failures over the whole level. CPU s/request = user+system time of the gunicorn
  process tree (master, workers and every `pulumi` launcher they waited for) plus the offline
  engine's helpers of this server (the resident engine and the commands it forked, the program
  host and the program runs it forked; read from `/proc`), from idle before
  the level to idle after it, over the level's successful
  requests. "Cores allow" = usable cores / CPU s/request; "% of that" = req/s / cores allow,
  i.e. how busy the service kept the cores. "Other load" is the CPU everything else on the
  machine used meanwhile (including these client threads), in cores, from `/proc/stat`.
- **CPU by what spent it**: the same CPU per request, split by process: gunicorn's own
  processes; the `pulumi` launchers, as the workers reaped them; the embedded Temporal server;
  the resident engine with the commands it ran; the program host with the program runs. The
  Temporal floor is measured on its own: a fresh embedded server with the service's flags
  runs workflows that each run one activity that heartbeats once and returns, started
  eagerly by a client whose worker is in the same process, as many at a time as the target's
  clients; the server's CPU over those runs divided by their number.
- **Engine scaling**: a generated program of N alternating `RandomString`/`RandomId`
  resources, `up` then `destroy` on one stack per size through `pulumi.automation` with
  `offline_pulumi.pulumi_command()`; medians of rounds that each run every size once, so a
  drift in the machine's speed does not skew the ratio between sizes. The CPU of each `up` is
  read from `/proc` around it: the program run (a child of the warm program host), the
  engine's commands (children of the resident engine), and the bench's own process with the
  `pulumi` launchers it waited for (the Automation API's side).
- **Passphrase**: every service here runs with an explicit `PULUMI_CONFIG_PASSPHRASE`, as an
  operator sets it; the engine then keeps derived keys in its resident process's memory only.
- **Floor of one command**: what each layer under a `pulumi` command costs: the engine's
  interpreter starting with nothing to do; the Python launcher `bin/pulumi-launcher` starting
  (compiled, with the modules it uses to reach the resident engine; `bin/pulumi` is a native
  client in front of it where a C compiler built one); `pulumi version` through the resident
  engine (`bin/pulumi`, connect, fork of a child with the engine imported, exit code back) and
  run by the Python launcher itself; and the program's own Python importing the SDK, what a program run
  costs before it does anything (the service's `up` skips it: the offline engine forks each
  program run from a warm host that imported the SDK once).
- **Tutorial flow**: per request a fresh `python -m venv` plus `pip install -r
  burner-program/requirements.txt` (pip's cache allowed, as on a developer machine; the
  tutorial's extra `pip install --upgrade pip` is left out), one fixed stack `dev` for every
  request, config, refresh, up, destroy, one request at a time, on the same offline engine.
- Other processes may share the machine; the load average at start is recorded above.
- The gunicorn logs of the last run are kept in `.state/bench/` (git-ignored).
"""
