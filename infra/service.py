"""The one assembly point: settings, metrics, the burner steps, Temporal, and the WSGI app.

Every entry point builds its service here: ``infra_api`` (gunicorn and ``create_app()``), the
development server, and ``burner worker``. Building does no I/O; ``start()`` checks the state
dir, builds the program venv, starts the embedded Temporal server when no cluster is named,
connects, and starts this process's worker.
"""

from __future__ import annotations

import logging
import threading

import falcon

from infra.app import build_app
from infra.basic import Burner, BurnerResult
from infra.catalog import Catalog
from infra.control import StackControl
from infra.embedded import EmbeddedTemporal
from infra.engine import select_engine
from infra.errors import InfraError
from infra.kinds import BurnerRequest
from infra.metrics import Metrics
from infra.orchestrator import Orchestrator
from infra.records import Records
from infra.settings import Settings
from infra.stacks import StackSteps
from infra.store import open_store
from infra.webhooks import load_subscribers

logger = logging.getLogger(__name__)


class Service:
    """Everything that lives as long as one serving or working process."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.burner = Burner(settings, select_engine(settings), self.metrics)
        self.catalog = Catalog(settings.programs)
        self.store = open_store(settings)
        self.control = StackControl(settings, self.catalog, self.store, StackSteps(self.burner),
                                    self._orchestrator)
        self.embedded: EmbeddedTemporal | None = None
        self.orchestrator: Orchestrator | None = None
        self._lock = threading.Lock()

    def app(self) -> falcon.App:
        """The WSGI app of this service."""
        return build_app(self.settings, self, self.metrics, self.catalog, self.control)

    def start(self, run_worker: bool | None = None) -> None:
        """Prepare and connect (once); raise InfraError with a one-line reason if it cannot."""
        with self._lock:
            if self.orchestrator is not None:
                return
            settings = self.settings
            logger.info("auth: %s", "bearer token required" if settings.token else
                        "off (INFRA_API_TOKEN is not set)")
            logger.info("state backend: %s", settings.backend_display)
            self.catalog.programs()
            subscribers = load_subscribers(settings.webhooks_file)
            if subscribers:
                logger.info("webhooks: %d subscribers from %s", len(subscribers),
                            settings.webhooks_file)
            self.burner.toolchain()
            # Every program's virtualenv once, now, rather than in its first operation.
            for program in self.catalog.programs().values():
                self.burner.venv(program.path)
            self.burner.engine.command()
            address = settings.temporal_address
            if address is None:
                self.embedded = EmbeddedTemporal(settings.state_dir)
                address = self.embedded.start()
            worker = settings.run_worker if run_worker is None else run_worker
            orchestrator = Orchestrator(self.burner, self.catalog, Records(self.store, subscribers),
                                        address, worker)
            try:
                orchestrator.start()
            except BaseException:
                orchestrator.stop()
                self._stop_embedded()
                raise
            self.orchestrator = orchestrator

    def stop(self, last: bool = True) -> None:
        """Drain and stop the worker, then the embedded server (if this service started one).

        ``last``: no other process of this service goes on (gunicorn's workers pass False, and
        the master stops the engine's helpers after the last worker).
        """
        with self._lock:
            orchestrator, self.orchestrator = self.orchestrator, None
            if orchestrator is not None:
                orchestrator.stop()
            self._stop_embedded()
            self.store.close()
            if last:
                self.burner.engine.stop_helpers()

    def _orchestrator(self) -> Orchestrator:
        self.start()
        assert self.orchestrator is not None
        return self.orchestrator

    def _stop_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    # -- the Operations seam of the app ------------------------------------------------------

    def burn(self, request: BurnerRequest) -> BurnerResult:
        """Run one burner workflow and wait for its value."""
        return self._orchestrator().burn(request)

    def readiness(self) -> dict[str, bool]:
        """The steps' checks and, once started, Temporal's."""
        checks = self.burner.readiness()
        try:
            self.store.check()
            checks["store"] = True
        except InfraError:
            checks["store"] = False
        orchestrator = self.orchestrator
        if orchestrator is None:
            checks.update(temporal=False, worker=False)
        else:
            checks.update(orchestrator.readiness())
        return checks
