"""The ``--event-log`` stream (one JSON object per line) and the progress text on stdout."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

from offline_pulumi import values
from offline_pulumi.fileio import dump_json

RESET = "<{%reset%}>"
_SYMBOLS = {"create": "+ ", "update": "~ ", "delete": "- ", "replace": "+-",
            "create-replacement": "++", "delete-replaced": "--", "same": "  ",
            "refresh": "~ ", "read": "> ", "import": "= ", "discard": "< "}
_DONE = {"create": "created", "update": "updated", "delete": "deleted",
         "replace": "replaced", "create-replacement": "created replacement",
         "delete-replaced": "deleted original", "same": "", "refresh": "refreshed",
         "read": "read", "import": "imported", "discard": "discarded"}
_SUMMARY = (("create", "+", "created"), ("update", "~", "updated"),
            ("replace", "+-", "replaced"), ("delete", "-", "deleted"),
            ("import", "=", "imported"))


class EventStream:
    """Writes engine events to the event log and mirrors them as human-readable progress."""

    def __init__(self, log_target: str | None, out: IO[str] | None = None,
                 json_digest: bool = False) -> None:
        from offline_pulumi.engine.event_sinks import open_sink

        self._lock = threading.Lock()
        self._sequence = 0
        self._sink = open_sink(log_target)
        self._out = out or sys.stdout
        # With --json the progress text is replaced by one JSON document at the end.
        self._digest: dict[str, Any] | None = {"steps": [], "diagnostics": []} \
            if json_digest else None
        self.diagnostics: list[tuple[str, str, str]] = []
        self.started = time.monotonic()

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._sink is not None:
                event = {"sequence": self._sequence, "timestamp": int(time.time()),
                         kind: payload}
                self._sink.send(dump_json(event))
            self._sequence += 1

    @property
    def records_debug(self) -> bool:
        """Whether debug diagnostics go anywhere: only an event log keeps them."""
        return self._sink is not None

    def close(self) -> None:
        """Deliver the events still buffered and close the event log (idempotent)."""
        with self._lock:
            sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def say(self, text: str) -> None:
        """Print a progress line (nothing in --json mode)."""
        if self._digest is not None:
            return
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    # -- event kinds -------------------------------------------------------------------
    def prelude(self, config: dict[str, str]) -> None:
        """The first event: the stack's config with secrets masked."""
        self._emit("preludeEvent", {"config": config})
        if self._digest is not None:
            self._digest["config"] = config

    def diagnostic(self, severity: str, message: str, urn: str = "",
                   ephemeral: bool = False) -> None:
        """A diagnostic message; everything but debug is shown in the final report."""
        payload: dict[str, Any] = {"message": f"{RESET}{message}{RESET}\n", "color": "raw",
                                   "severity": severity}
        if severity in ("warning", "error", "debug"):
            payload["prefix"] = f"<{{%fg 3%}}>{severity}: {RESET}"
        if urn:
            payload["urn"] = urn
        if ephemeral:
            payload["ephemeral"] = True
        self._emit("diagnosticEvent", payload)
        if severity != "debug" and not ephemeral:
            with self._lock:
                self.diagnostics.append((urn, severity, message))
                if self._digest is not None:
                    self._digest["diagnostics"].append(
                        {"urn": urn, "message": message, "severity": severity})

    def step_pre(self, metadata: dict[str, Any], quiet: bool = False) -> None:
        """A step is about to run."""
        # Blinding walks every value: only for an event log or a digest that keeps it.
        digest = None if quiet else self._digest
        if self._sink is not None or digest is not None:
            blinded = _blind(metadata)
            self._emit("resourcePreEvent", {"metadata": blinded})
            if digest is not None:
                step = {"op": blinded["op"], "urn": blinded["urn"],
                        "provider": blinded["provider"]}
                step.update({f"{side}State": blinded[side] for side in ("old", "new")
                             if blinded.get(side)})
                with self._lock:
                    digest["steps"].append(step)
        if not quiet and metadata["op"] != "same":
            self.say(f" {_SYMBOLS.get(metadata['op'], '  ')} {_title(metadata)} "
                     f"{_progress(metadata['op'])}")

    def step_done(self, metadata: dict[str, Any], seconds: float, quiet: bool = False) -> None:
        """A step finished."""
        if self._sink is not None:
            self._emit("resOutputsEvent", {"metadata": _blind(metadata)})
        if not quiet and metadata["op"] != "same":
            self.say(f" {_SYMBOLS.get(metadata['op'], '  ')} {_title(metadata)} "
                     f"{_DONE.get(metadata['op'], metadata['op'])} ({seconds:.2f}s)")

    def step_failed(self, metadata: dict[str, Any]) -> None:
        """A step failed (its error diagnostic was already emitted)."""
        if self._sink is not None:
            self._emit("resOpFailedEvent", {"metadata": _blind(metadata), "status": 0,
                                            "steps": 0})

    def summary(self, changes: dict[str, int], preview: bool, ok: bool,
                outputs: dict[str, Any] | None) -> None:
        """The closing report and the final ``summaryEvent``/``cancelEvent`` pair."""
        duration = time.monotonic() - self.started
        if self._digest is None:
            self._report(changes, outputs, duration)
        else:
            self._print_digest(changes, outputs, duration, self._digest.get("config", {}))
        self._emit("summaryEvent", {"maybeCorrupt": False, "durationSeconds": int(duration),
                                    "resourceChanges": changes, "PolicyPacks": {},
                                    "isPreview": preview,
                                    "result": "succeeded" if ok else "failed"})
        self._emit("cancelEvent", {})
        self.close()

    def _print_digest(self, changes: dict[str, int], outputs: dict[str, Any] | None,
                      duration: float, config: dict[str, str]) -> None:
        assert self._digest is not None
        digest = {"config": config, "steps": self._digest["steps"],
                  "diagnostics": self._digest["diagnostics"],
                  "duration": int(duration * 1e9), "changeSummary": changes}
        if outputs:
            digest["outputs"] = values.masked(outputs)
        with self._lock:
            self._out.write(json.dumps(digest, indent=4, ensure_ascii=False) + "\n")
            self._out.flush()

    def _report(self, changes: dict[str, int], outputs: dict[str, Any] | None,
                duration: float) -> None:
        lines: list[str] = []
        if self.diagnostics:
            lines += ["", "Diagnostics:"]
            for urn, severity, message in self.diagnostics:
                where = urn.rsplit("::", 1)[-1] if urn else "pulumi:pulumi:Stack"
                prefix = "" if severity.startswith("info") else f"{severity}: "
                lines.append(f"  {where}:")
                lines += [f"    {prefix}{line}" if i == 0 else f"    {line}"
                          for i, line in enumerate(message.rstrip("\n").split("\n"))]
        if outputs:
            lines += ["", "Outputs:"]
            for key in sorted(outputs):
                lines.append(f"    {key}: {json.dumps(values.masked(outputs[key]))}")
        lines += ["", "Resources:"]
        for op, symbol, word in _SUMMARY:
            if changes.get(op):
                lines.append(f"    {symbol} {changes[op]} {word}")
        if changes.get("same"):
            lines.append(f"    {changes['same']} unchanged")
        lines += ["", f"Duration: {duration:.0f}s" if duration >= 1 else
                  f"Duration: {duration:.2f}s"]
        self.say("\n".join(lines))


def _title(metadata: dict[str, Any]) -> str:
    urn: str = metadata["urn"]
    return f"{metadata['type']} {urn.rsplit('::', 1)[-1]}"


def _progress(op: str) -> str:
    return {"create": "creating", "update": "updating", "delete": "deleting",
            "replace": "replacing", "create-replacement": "creating replacement",
            "delete-replaced": "deleting original", "refresh": "refreshing",
            "read": "reading", "import": "importing", "discard": "discarding"}.get(op, op)


def _blind(metadata: dict[str, Any]) -> dict[str, Any]:
    blinded = dict(metadata)
    for side in ("old", "new"):
        state = metadata.get(side)
        if state:
            blinded[side] = {**state, "inputs": values.blinded(state.get("inputs", {})),
                             "outputs": values.blinded(state.get("outputs", {}))}
    return blinded
