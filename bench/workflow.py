"""What the workflow path adds: the same /uuid steps run in-process and as a Temporal workflow.

Both run in this process against one state dir and engine, alternating, so machine noise hits
both alike. In-process: what the burn activity does, without Temporal (record the operation,
provision, read the value, destroy and remove with every engine event recorded, close the
record). The workflow path: ``Service.burn`` (start the workflow on the embedded Temporal
server, a worker in this process runs the burn activity, wait for the answer).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bench.common import median, service_environ
from infra.basic import BurnSpec, Progress, new_stack_name
from infra.kinds import BurnerRequest, parse_request
from infra.orchestrator import burn_operation_id
from infra.records import Records
from infra.service import Service
from infra.settings import Settings
from infra.stacks import event_recorder
from infra.workflows import FinishInput, Outcome


@dataclasses.dataclass(frozen=True)
class WorkflowStats:
    """Median wall time of one /uuid in-process and through the workflow, in ms; and of the
    bare steps (no operation record, no engine events), to show what recording costs."""

    runs: int
    in_process_ms: float
    workflow_ms: float
    bare_ms: float

    @property
    def added_ms(self) -> float:
        """What the workflow path adds per request."""
        return self.workflow_ms - self.in_process_ms


def measure_workflow(runs: int, venv_dir: Path) -> WorkflowStats:
    """Alternate ``runs`` in-process and workflow /uuid runs after one warm-up of each."""
    request = parse_request("uuid", {})
    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as tmp:
        environ = service_environ(INFRA_API_STATE_DIR=str(Path(tmp) / "state"),
                                INFRA_API_VENV_DIR=str(venv_dir), INFRA_API_ENGINE="offline")
        service = Service(Settings.from_environ(environ))
        service.start()
        records = Records(service.store, ())
        try:
            _burn_in_process(service, records, request)
            service.burn(request)
            service.burner.run(request)
            local, remote, bare = [], [], []
            for _ in range(runs):
                started = time.perf_counter()
                _burn_in_process(service, records, request)
                local.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                service.burn(request)
                remote.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                service.burner.run(request)
                bare.append((time.perf_counter() - started) * 1000)
        finally:
            service.stop()
    return WorkflowStats(runs, median(local), median(remote), median(bare))


def _burn_in_process(service: Service, records: Records, request: BurnerRequest) -> str:
    """The burn activity's steps, called directly; the value."""
    stack = new_stack_name()
    operation = burn_operation_id(stack)
    records.open_burn(operation, stack)
    progress = Progress(on_event=event_recorder(records.event_sink(operation), ()))
    burned = service.burner.burn(BurnSpec(request, stack), progress)
    records.close(FinishInput(operation, Outcome("succeeded")))
    return burned.provisioned.value
