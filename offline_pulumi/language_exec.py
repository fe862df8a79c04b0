"""Runs a Pulumi Python program for the offline engine (the CLI's exec script, re-written).

Executed by the program's own interpreter, so it imports nothing from ``offline_pulumi``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import runpy
import socket
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Exit code telling the engine the error was already reported (the real language host's rule).
BAIL = 32
# Debug logs in flight before the answered ones are dropped from the list kept for the exit.
MAX_UNCHECKED_LOGS = 256


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for name in ("monitor", "engine", "project", "root_directory", "stack", "pwd", "dry_run",
                 "tracing", "organization"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--parallel", required=True)
    parser.add_argument("PROGRAM")
    parser.add_argument("ARGS", nargs=argparse.REMAINDER)
    return parser


# Built at import: a warm program host imports this module once, and building a parser costs
# a run several milliseconds (argparse formats every argument's help as it is added).
PARSER = _parser()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments the language host passes, in the real CLI's names."""
    return PARSER.parse_args(argv)


class DebugLogsAhead:
    """The SDK's engine client, except that debug logs do not wait for the engine's answer.

    The SDK logs several debug lines per resource, each a blocking call, so the program stalls
    while the engine is busy with other resources. Other severities stay blocking: a warning
    or an error must reach the engine before the program goes on or exits.
    """

    def __init__(self, engine: object) -> None:
        from pulumi.runtime.proto import engine_pb2

        self._engine = engine
        self._debug = engine_pb2.DEBUG
        self._sent: list[Any] = []

    def Log(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # the Engine service's name
        if request.severity == self._debug:
            if len(self._sent) >= MAX_UNCHECKED_LOGS:
                self._sent = [call for call in self._sent if not call.done()]
            self._sent.append(self._engine.Log.future(request))  # type: ignore[attr-defined]
            return None
        return self._engine.Log(request, *args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def wait(self) -> None:
        """Until the engine has answered every debug log (they are lost if we exit first)."""
        for call in self._sent:
            with contextlib.suppress(Exception):  # a gone engine is reported elsewhere
                call.result()
        self._sent.clear()


def configure(args: argparse.Namespace) -> None:
    """Hand config and the engine addresses to the Pulumi runtime."""
    import pulumi.runtime
    from pulumi.runtime import config as runtime_config

    pulumi.runtime.set_all_config(runtime_config.get_config_env(),
                                  runtime_config.get_config_secret_keys_env())
    settings = dict(monitor=args.monitor, engine=args.engine or None, project=args.project,
                    stack=args.stack, parallel=int(args.parallel),
                    dry_run=args.dry_run == "true", organization=args.organization,
                    root_directory=args.root_directory or None)
    accepted = inspect.signature(pulumi.runtime.Settings).parameters
    pulumi.runtime.configure(pulumi.runtime.Settings(
        **{k: v for k, v in settings.items() if k in accepted}))
    engine = pulumi.runtime.settings.SETTINGS.engine
    if engine is not None:
        pulumi.runtime.settings.SETTINGS.engine = DebugLogsAhead(engine)


def wait_for(address: str, timeout: float = 60.0) -> bool:
    """Wait until the engine's monitor accepts connections (it starts alongside us)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.005)
    return False


def user_frames(exc: BaseException) -> str:
    """The traceback without the frames of this script and the Pulumi runtime."""
    frames = traceback.extract_tb(exc.__traceback__)
    stdlib = os.path.dirname(os.__file__)
    kept = [f for f in frames if os.sep + "pulumi" + os.sep not in f.filename
            and f.filename != __file__ and not f.filename.startswith(("<frozen", stdlib))]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(kept or frames),
             *traceback.format_exception_only(type(exc), exc)]
    return "".join(lines).rstrip("\n")


def run_main(program: str) -> None:
    """Execute the program's entry point as ``__main__``."""
    runpy.run_path(program, run_name="__main__")


def main(argv: list[str]) -> int:
    """Run the program and return the exit code the engine expects."""
    # Python put this script's directory first on sys.path; the program must not see it.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    try:
        import pulumi
    except ImportError:
        sys.stderr.write("It looks like the Pulumi SDK has not been installed. Have you run "
                         "pip install pulumi in the program's virtualenv?\n")
        return 1
    args = parse_args(argv)
    if not wait_for(args.monitor):
        sys.stderr.write(f"the engine's resource monitor at {args.monitor} never came up\n")
        return 1
    configure(args)
    program = args.PROGRAM
    sys.argv = [program, *args.ARGS]
    os.chdir(args.pwd or os.getcwd())
    if os.path.isdir(program) and not os.path.exists(os.path.join(program, "__main__.py")):
        pulumi.log.error("unable to find main python program `__main__.py` in "
                         f"`{os.path.abspath(program)}`")
        return BAIL
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(int(args.parallel), 1) * 4))
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    from pulumi.runtime import stack

    try:
        loop.run_until_complete(stack.run_in_stack(lambda: run_main(program)))
        return 0
    except pulumi.RunError as exc:
        if "Resource monitor has terminated" not in str(exc):
            pulumi.log.error(str(exc))
        return 1
    except Exception as exc:  # every program failure is reported the same way
        pulumi.log.error("Program failed with an unhandled exception:\n" + user_frames(exc))
        return BAIL
    finally:
        engine = pulumi.runtime.settings.SETTINGS.engine
        if isinstance(engine, DebugLogsAhead):
            engine.wait()
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
