"""The state backend as the service sees it: a readiness probe, never the layout.

Only the engine reads and writes state (through ``PULUMI_BACKEND_URL``); the service asks the
same storage driver whether the store answers, and names it without credentials.
"""

from __future__ import annotations

import logging
import threading

from infra.settings import Settings
from offline_pulumi.storage import Storage, StorageError, open_storage

logger = logging.getLogger(__name__)

# /readyz must answer while the database is down: give up on a connection this soon.
PROBE_TIMEOUT = 3.0


class BackendProbe:
    """Answers whether the state backend is reachable, with one driver opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._storage: Storage | None = None
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True if the backend answers a trivial request; logs why not (no credentials)."""
        with self._lock:
            try:
                if self._storage is None:
                    self._storage = open_storage(self._settings.backend_url,
                                                 self._settings.state_dir, PROBE_TIMEOUT)
                self._storage.check()
            except (StorageError, OSError) as exc:
                logger.warning("state backend %s not ready: %s",
                               self._settings.backend_display, exc)
                return False
            return True

    def close(self) -> None:
        """Release the driver's connections."""
        with self._lock:
            if self._storage is not None:
                self._storage.close()
                self._storage = None
