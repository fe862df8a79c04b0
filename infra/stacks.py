"""Persistent stacks' steps: apply (create or select, set the whole config, up) and destroy,
and what an operation's event stream shows of the engine's events.

Secrets never leave here in the clear: secret config is set as Pulumi secrets (encrypted in
the state), outputs come back with every secret masked, nested ones too, and engine messages
have secret values masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from infra import logs
from infra.basic import Burner, Progress, create_stack, select_existing, up
from infra.errors import OutputsTooLargeError
from infra.masking import mask_outputs, mask_text

logger = logging.getLogger(__name__)

# The engine's colour markup, e.g. <{%reset%}>: meaningless outside a terminal.
_COLOR_TAG = re.compile(r"<\{%[^%]*%\}>")

# Outputs travel in workflow payloads, which Temporal caps at 2 MB (and warns from 512 KB).
MAX_OUTPUTS_BYTES = 256 * 1024

# What an operation's stream records: (event type, data) for one engine event.
EventSink = Callable[[str, dict[str, Any]], None]


def config_value(value: Any, secret: bool) -> auto.ConfigValue:
    """A config value as Pulumi stores it: text, with arrays and booleans as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return auto.ConfigValue(text, secret=secret)


class StackSteps:
    """Apply and destroy a catalog program's persistent stack, streaming its engine events."""

    def __init__(self, burner: Burner) -> None:
        self.burner = burner

    def apply(self, program_dir: Path, stack_name: str, config: Mapping[str, Any],
              secret_keys: Collection[str], create: bool, progress: Progress
              ) -> dict[str, Any]:
        """Create (or select) the stack, set its whole config, ``up``; return its outputs with
        every secret masked.

        Raises EngineError naming the failed step.
        """
        burner = self.burner
        with logs.bound(logs.stack_name, stack_name), burner.step("ensure_venv", progress):
            burner.venv(program_dir)
        with (logs.bound(logs.stack_name, stack_name),
              burner.workspace(stack_name, program_dir) as workspace):
            with burner.step("create_stack" if create else "select", progress):
                progress.created = True
                stack = (create_stack(stack_name, workspace) if create
                         else auto.Stack.select(stack_name, workspace))
            with burner.step("configure", progress):
                # Every operation has a fresh work dir: the whole config is set each time.
                stack.set_all_config({key: config_value(value, key in secret_keys)
                                      for key, value in config.items()})
            with burner.step("up", progress):
                outputs = up(stack, progress.on_event).outputs
            with burner.step("read_outputs", progress):
                masked = mask_outputs(outputs, stack.export_stack())
            size = len(json.dumps(masked))
            if size > MAX_OUTPUTS_BYTES:
                raise OutputsTooLargeError(stack_name, size, MAX_OUTPUTS_BYTES)
            return masked

    def destroy(self, program_dir: Path, stack_name: str, clear_lock: bool,
                progress: Progress) -> None:
        """Destroy the stack's resources and remove it (gone already is a success)."""
        self.burner.teardown(stack_name, clear_lock, progress, program_dir)

    def stand_in(self, project: str) -> Path:
        """A program directory for a stack whose program left the catalog: its project's
        name, the burner program's requirements (a virtualenv that exists), nothing to run."""
        settings = self.burner.settings
        # The catalog admitted the name (never "." or ".."), so it is a safe path segment.
        path = settings.state_dir / "retired-programs" / project
        path.mkdir(parents=True, exist_ok=True)
        files = {"Pulumi.yaml": yaml.safe_dump({"name": project, "runtime": "python"}),
                 "requirements.txt": (settings.program_dir / "requirements.txt").read_text()}
        for name, text in files.items():
            target = path / name
            if not target.exists() or target.read_text() != text:
                # Another destroy may read it meanwhile: it sees the old file or the new one.
                partial = path / f".{name}.{uuid.uuid4().hex}"
                partial.write_text(text)
                os.replace(partial, target)
        return path

    def outputs(self, program_dir: Path, stack_name: str) -> dict[str, Any] | None:
        """The stack's outputs with secrets in the clear (None if the stack is gone)."""
        with self.burner.workspace(stack_name, program_dir) as workspace:
            stack = select_existing(workspace, stack_name)
            if stack is None:
                return None
            return {key: output.value for key, output in stack.outputs().items()}


def translate(event: auto.EngineEvent, secrets: Collection[str]) -> tuple[str, dict[str, Any]] | None:
    """The stream's form of an engine event (None for the ones it does not show).

    Resource events name the step, never its inputs or outputs; messages have ``secrets``
    (the stack's secret config values) masked.
    """
    if event.resource_pre_event is not None:
        return "resource", _step("pre", event.resource_pre_event.metadata)
    if event.res_outputs_event is not None:
        return "resource", _step("done", event.res_outputs_event.metadata)
    if event.res_op_failed_event is not None:
        return "resource", _step("failed", event.res_op_failed_event.metadata)
    if event.diagnostic_event is not None:
        diagnostic = event.diagnostic_event
        if diagnostic.ephemeral or diagnostic.severity == "debug":
            return None
        message = _COLOR_TAG.sub("", diagnostic.message).strip()
        return "diagnostic", {"severity": diagnostic.severity,
                              "message": mask_text(message, secrets),
                              "urn": diagnostic.urn}
    if event.summary_event is not None:
        summary = event.summary_event
        changes = {str(getattr(op, "value", op)): count
                   for op, count in (summary.resource_changes or {}).items()}
        return "summary", {"changes": changes, "duration_s": summary.duration_seconds}
    # The engine ends every stream with a cancel event: a marker, not a cancellation.
    return None


def _step(step: str, metadata: Any) -> dict[str, Any]:
    urn = str(metadata.urn)
    return {"step": step, "op": str(getattr(metadata.op, "value", metadata.op)), "urn": urn,
            "type": metadata.type, "name": urn.rsplit("::", 1)[-1]}


def event_recorder(sink: EventSink, secrets: Collection[str]) -> auto.OnEvent:
    """An ``on_event`` callback that records each shown event; a failing sink never fails the
    operation (its error goes to the log)."""
    context_stack = logs.stack_name.get()

    def record(event: auto.EngineEvent) -> None:
        shown = translate(event, secrets)
        if shown is None:
            return
        try:
            sink(*shown)
        except Exception:
            logger.exception("could not record an engine event of %s", context_stack)

    return record
