"""What the stack and operation routes ask for: checked requests, records, workflow calls.

Every accepted request is recorded before its workflow hears of it, so any API node can answer
for any stack from the store alone; the store also enforces one operation at a time per stack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from infra import logs
from infra.basic import is_burner_stack
from infra.catalog import Catalog, Program, shown
from infra.errors import (
    ConflictError,
    ForbiddenError,
    IdempotencyError,
    InfraError,
    NotFoundError,
    ParameterError,
)
from infra.masking import mask_config
from infra.settings import Settings
from infra.stack_workflow import OperationRequest, StackOrder
from infra.stacks import StackSteps
from infra.store import FINAL, EventRecord, OperationRecord, StackRecord, Store

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
# ASCII digits, at most 12 of them: far above any TTL, and never too many for a float.
_DURATION = re.compile(r"P(?:(?P<weeks>[0-9]{1,12})W)?(?:(?P<days>[0-9]{1,12})D)?"
                       r"(?:T(?:(?P<hours>[0-9]{1,12})H)?(?:(?P<minutes>[0-9]{1,12})M)?"
                       r"(?:(?P<seconds>[0-9]{1,12})S)?)?")
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
_KEY = re.compile(r"[!-~]{1,255}")
CREATE_FIELDS = ("program", "config", "ttl", "name")
UPDATE_FIELDS = ("config", "ttl")
MAX_PAGE = 100


class Workflows(Protocol):
    """The workflow calls the routes make (the orchestrator's)."""

    def start_stack(self, order: StackOrder) -> None:
        """Start a persistent stack's workflow."""
        ...

    def submit(self, stack: str, request: OperationRequest) -> None:
        """Signal an accepted update or destroy to the stack's workflow."""
        ...

    def cancel(self, operation: OperationRecord) -> None:
        """Ask the workflow running ``operation`` to cancel it."""
        ...


def new_operation_id() -> str:
    """A fresh operation id."""
    return "op-" + uuid.uuid4().hex[:16]


class StackControl:
    """The stack and operation routes' logic, around the store and the workflows."""

    def __init__(self, settings: Settings, catalog: Catalog, store: Store, steps: StackSteps,
                 workflows: Callable[[], Workflows]) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.steps = steps
        self._workflows = workflows

    # -- stacks ------------------------------------------------------------------------------

    def create(self, body: Any, idempotency_key: str | None) -> tuple[OperationRecord, bool]:
        """Accept a create; return its operation and whether it is new (not a replay)."""
        fields = _object(body, CREATE_FIELDS)
        operation_id = new_operation_id()
        if idempotency_key is not None:
            if not _KEY.fullmatch(idempotency_key):
                raise ParameterError("Idempotency-Key", idempotency_key[:100],
                                     "1-255 printable ASCII characters")
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            claimed = self.store.claim_idempotency_key(idempotency_key, digest, operation_id,
                                                       time.time())
            if claimed is not None:
                return self._replay(idempotency_key, digest, *claimed), False
        try:
            return self._create(fields, operation_id), True
        except BaseException:
            if idempotency_key is not None:
                self.store.release_idempotency_key(idempotency_key, operation_id)
            raise

    def _replay(self, key: str, digest: str, stored_digest: str, operation: str
                ) -> OperationRecord:
        if stored_digest != digest:
            raise IdempotencyError(f"Idempotency-Key {key!r} was used with another request body")
        record = self.store.get_operation(operation)
        if record is None:
            # The first request with this key is still being accepted.
            raise ConflictError(f"the request with Idempotency-Key {key!r} is still in progress")
        return record

    def _create(self, fields: Mapping[str, Any], operation_id: str) -> OperationRecord:
        program = self._program(fields.get("program"))
        config = program.validate(_config_object(fields.get("config", {})))
        ttl = self._ttl(fields["ttl"]) if "ttl" in fields else None
        name = _stack_name(fields["name"]) if "name" in fields else _generated(program)
        now = time.time()
        secret_keys = [key.name for key in program.config if key.secret]
        masked = mask_config(config, secret_keys)
        operation = OperationRecord(operation_id, "create", name, program.name, "queued", now)
        stack = StackRecord(name, program.name, "creating", masked, None, now, now,
                            now + ttl if ttl else None, operation_id)
        self.store.begin_create(stack, operation)
        order = StackOrder(name, program.name, config, secret_keys, ttl, operation_id,
                           logs.request_id.get())
        self._dispatch(operation, lambda workflows: workflows.start_stack(order), "gone")
        logger.info("create %s of %s accepted as %s", name, program.name, operation_id)
        return operation

    def update(self, name: str, body: Any) -> OperationRecord:
        """Accept an update: the given config keys (merged over the current ones) and TTL."""
        fields = _object(body, UPDATE_FIELDS)
        if not fields:
            raise ParameterError("body", "{}", "at least one of config, ttl")
        stack = self._stack(name)
        program = self._stack_program(stack)
        config = _config_object(fields.get("config", {}))
        known = {key.name: key for key in program.config}
        for key_name in sorted(config):
            if key_name not in known:
                raise program.unknown_key(key_name)
            known[key_name].check(config[key_name])
        ttl = self._ttl(fields["ttl"]) if "ttl" in fields else None
        operation = OperationRecord(new_operation_id(), "update", name, program.name, "queued",
                                    time.time())
        self.store.begin_operation(operation, "updating")
        request = OperationRequest(operation.id, "update", config or None, ttl,
                                   logs.request_id.get())
        self._dispatch(operation, lambda workflows: workflows.submit(name, request), "ready")
        return operation

    def delete(self, name: str) -> OperationRecord:
        """Accept a destroy of the stack."""
        stack = self._stack(name)
        operation = OperationRecord(new_operation_id(), "destroy", name, stack.program, "queued",
                                    time.time())
        self.store.begin_operation(operation, "destroying")
        request = OperationRequest(operation.id, "destroy", request_id=logs.request_id.get())
        self._dispatch(operation, lambda workflows: workflows.submit(name, request), "ready")
        return operation

    def stack(self, name: str, show_secrets: bool) -> dict[str, Any]:
        """One stack; with ``show_secrets``, its outputs read from the stack, secrets clear."""
        record = self._stack(name)
        body = record.to_json()
        if show_secrets:
            if self.settings.token is None:
                raise ForbiddenError("secrets are revealed only when INFRA_API_TOKEN is set "
                                     "and the caller sent it")
            program = self._stack_program(record)
            logger.warning("revealing the outputs of %s", name)
            body["outputs"] = self.steps.outputs(program.path, name)
        return body

    def stacks(self, program: str | None, status: str | None, limit: int, after: str | None
               ) -> tuple[list[StackRecord], str | None]:
        """A page of stacks, by name."""
        return self.store.list_stacks(program, status, limit, after)

    # -- operations ------------------------------------------------------------------------

    def operation(self, operation_id: str) -> OperationRecord:
        """One operation; NotFoundError if unknown (or forgotten after the retention)."""
        record = self.store.get_operation(operation_id)
        if record is None:
            raise NotFoundError(f"no operation {operation_id!r}")
        return record

    def operations(self, stack: str | None, limit: int, after: str | None
                   ) -> tuple[list[OperationRecord], str | None]:
        """A page of operations, newest first."""
        return self.store.list_operations(stack, limit, after)

    def events(self, operation_id: str, after: int, limit: int) -> list[EventRecord]:
        """Events of an operation after sequence number ``after``."""
        self.operation(operation_id)
        return self.store.events(operation_id, after, limit)

    def cancel(self, operation_id: str) -> OperationRecord:
        """Ask for an operation to be cancelled (it ends as ``cancelled`` or as it would have)."""
        record = self.operation(operation_id)
        if record.status in FINAL:
            raise ConflictError(f"operation {operation_id} already ended: {record.status}",
                                operation_id)
        if record.kind in ("destroy", "expire"):
            raise ConflictError(f"a {record.kind} is not cancelled: stopping it half-way would "
                                "leave resources behind", operation_id)
        self._workflows().cancel(record)
        logger.warning("cancel requested for %s %s of %s", record.kind, operation_id, record.stack)
        return record

    # -- helpers ---------------------------------------------------------------------------

    def _dispatch(self, operation: OperationRecord, call: Callable[[Workflows], None],
                  stack_status: str) -> None:
        """Run the workflow call; if it fails, close the operation so the stack is not stuck."""
        try:
            call(self._workflows())
        except InfraError:
            self.store.finish_operation(operation.id, "failed", time.time(),
                                        "orchestration_unavailable",
                                        "the workflow service did not take the operation")
            if stack_status == "gone":
                self.store.delete_stack(operation.stack)
            else:
                self.store.update_stack(operation.stack, status=stack_status)
            raise

    def _stack(self, name: str) -> StackRecord:
        record = self.store.get_stack(name)
        if record is None:
            raise NotFoundError(f"no stack {name!r}")
        return record

    def _program(self, name: Any) -> Program:
        programs = self.catalog.programs()
        if not isinstance(name, str) or name not in programs:
            raise ParameterError("program", shown(name),
                                 "a program of the catalog: " + ", ".join(sorted(programs)))
        return programs[name]

    def _stack_program(self, stack: StackRecord) -> Program:
        program = self.catalog.programs().get(stack.program)
        if program is None:
            raise ConflictError(f"program {stack.program!r} of stack {stack.name!r} is no longer "
                                "in the catalog: the stack can only be destroyed")
        return program

    def _ttl(self, value: Any) -> float:
        seconds: float | None = None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**15:
            seconds = float(value)
        elif isinstance(value, str):
            match = _DURATION.fullmatch(value)
            if match is not None and value not in ("P", "PT") and not value.endswith("T"):
                seconds = float(sum(int(amount) * _UNIT_SECONDS[unit]
                                    for unit, amount in match.groupdict().items() if amount))
        limit = self.settings.max_ttl
        if seconds is None or not 0 < seconds <= limit:
            raise ParameterError("ttl", str(value)[:100],
                                 f"seconds or an ISO 8601 duration (PT30M, P1D), from 1 s to "
                                 f"{limit:g} s (INFRA_API_MAX_TTL)")
        return seconds


def _object(body: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ParameterError("body", type(body).__name__, "a JSON object")
    for name in body:
        if name not in fields:
            raise ParameterError(str(name)[:100], shown(body[name]),
                                 "a field among " + ", ".join(fields))
    return body


def _config_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterError("config", shown(value), "a JSON object of config keys")
    return value


def _stack_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or is_burner_stack(value):
        raise ParameterError("name", str(value)[:100],
                             "1-63 lowercase letters, digits and '-', starting with a letter "
                             "(burner-<16 hex> names are the value routes')")
    return value


def _generated(program: Program) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", program.name.lower()).strip("-") or "stack"
    if not slug[0].isalpha():
        slug = "s-" + slug
    return f"{slug[:50]}-{uuid.uuid4().hex[:8]}"
