"""Prometheus metrics: requests, workflows, activities, phase latency, in-flight stacks, reaping.

Under gunicorn every worker is its own process, so ``gunicorn.conf.py`` turns on
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) and ``/metrics`` then sums
the files of all workers; otherwise the app's own registry is served.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Burner requests take about a second when idle, tens of seconds under load.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, float("inf"))


class Metrics:
    """The service's metrics, registered in their own registry (one per app, no globals)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "burner_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=self.registry)
        self.request_seconds = Histogram(
            "burner_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.phase_seconds = Histogram(
            "burner_phase_duration_seconds", "Time of one burner pipeline phase.",
            ["phase"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inflight = Gauge(
            "burner_inflight_stacks", "Burner stacks being provisioned or torn down right now.",
            registry=self.registry, multiprocess_mode="livesum")
        self.failures = Counter(
            "burner_failures", "Burner runs that failed, by error code and phase.",
            ["code", "phase"], registry=self.registry)
        self.rejected = Counter(
            "burner_rejected", "Requests refused with 503 because every slot was busy.",
            registry=self.registry)
        self.workflows = Counter(
            "burner_workflows", "Burner workflows awaited by this API node, by outcome.",
            ["outcome"], registry=self.registry)
        self.workflow_seconds = Histogram(
            "burner_workflow_duration_seconds", "Time from starting a burner workflow to its end.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.activities = Counter(
            "burner_activities", "Activities this worker ran, by activity and outcome.",
            ["activity", "outcome"], registry=self.registry)
        self.activity_seconds = Histogram(
            "burner_activity_duration_seconds", "Time of one activity, by activity.",
            ["activity"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.reaped = Counter(
            "burner_reaped_stacks", "Orphaned burner stacks the reaper schedule destroyed and removed.",
            registry=self.registry)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format (summed over workers in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
