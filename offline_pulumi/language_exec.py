"""Runs a Pulumi Python program for the offline engine (the CLI's exec script, re-written).

Executed by the program's own interpreter, so it imports nothing from ``offline_pulumi``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import inspect
import logging
import os
import queue
import runpy
import struct
import sys
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Exit code telling the engine the error was already reported (the real language host's rule).
BAIL = 32
# The engine's method for batches of debug lines (``offline_pulumi.engine.monitor``; this
# script imports nothing from ``offline_pulumi``).
LOG_BATCH = "offline_pulumi.DebugLogs/Batch"
# How long the exit waits for the engine to take the last debug lines.
CLOSE_SECONDS = 10.0
# Allocations between two young-generation collections of the program (Python's default: 700).
YOUNG_COLLECTION_EVERY = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for name in ("monitor", "engine", "project", "root_directory", "stack", "pwd", "dry_run",
                 "tracing", "organization"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--parallel", required=True)
    # Ours, not the CLI's: "false" when the engine keeps no debug lines (no event log).
    parser.add_argument("--debug_lines", default="true")
    parser.add_argument("PROGRAM")
    parser.add_argument("ARGS", nargs=argparse.REMAINDER)
    return parser


# Built at import: a warm program host imports this module once, and building a parser costs
# a run several milliseconds (argparse formats every argument's help as it is added).
PARSER = _parser()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments the language host passes, in the real CLI's names."""
    return PARSER.parse_args(argv)


class DebugLogStream:
    """The SDK's engine client, except that debug lines go to the engine in batches.

    The SDK logs several debug lines per resource, each a blocking ``Log`` call: the program
    stalled while the engine was busy. Here a debug line is queued and a thread sends the
    queue to the engine (``engine/monitor.py``), in order, each call carrying every line
    waiting by then. Other severities stay blocking calls: a warning or an error reaches the
    engine before the program goes on. When the engine keeps no debug lines (``wanted``
    false: there is no event log), they are dropped here: sending them cost a 100-resource
    ``up`` an eighth of its time.
    """

    def __init__(self, channel: Any, wanted: bool = True) -> None:
        from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

        self._engine = engine_pb2_grpc.EngineStub(channel)
        self._send_batch = channel.unary_unary(f"/{LOG_BATCH}", request_serializer=_framed)
        self._debug = engine_pb2.DEBUG
        self._wanted = wanted
        self._lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self.error: Exception | None = None

    def Log(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # the Engine service's name
        if request.severity != self._debug:
            return self._engine.Log(request, *args, **kwargs)
        if not self._wanted:
            return None
        if self._sender is None:
            self._sender = threading.Thread(target=self._send, daemon=True)
            self._sender.start()
        self._lines.put(request)
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _send(self) -> None:
        try:
            for batch in _batches(self._lines):
                self._send_batch(batch)
        except Exception as exc:  # the engine is gone: it reports that itself
            self.error = exc
            while self._lines.get() is not None:
                pass

    def close(self) -> None:
        """Wait until the engine has taken every debug line (they are lost if we exit first)."""
        if self._sender is not None:
            self._lines.put(None)
            self._sender.join(CLOSE_SECONDS)
            self._sender = None


def _batches(lines: queue.SimpleQueue[Any]) -> Iterator[list[Any]]:
    """The queued lines up to the closing None, as many to a batch as are waiting.

    A gRPC message costs both processes far more than a line in it.
    """
    while True:
        batch = [lines.get()]
        while batch[-1] is not None:
            try:
                batch.append(lines.get_nowait())
            except queue.Empty:
                break
        closed = batch[-1] is None
        if closed:
            batch.pop()
        if batch:
            yield batch
        if closed:
            return


def _framed(batch: list[Any]) -> bytes:
    """Serialized LogRequests, each after its length (4 bytes, big-endian)."""
    parts: list[bytes] = []
    for request in batch:
        data = request.SerializeToString()
        parts += (struct.pack(">I", len(data)), data)
    return b"".join(parts)


def load_wire() -> Any:
    """The engine's wire module (``wire.py`` beside this script), under a name no program
    can shadow or be shadowed by."""
    name = "_offline_pulumi_wire"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def configure(args: argparse.Namespace) -> None:
    """Hand config and the engine's services, on the wire, to the Pulumi runtime."""
    import pulumi.runtime
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime.proto import resource_pb2_grpc

    pulumi.runtime.set_all_config(runtime_config.get_config_env(),
                                  runtime_config.get_config_secret_keys_env())
    wire = load_wire()
    channel = wire.Channel(args.monitor)
    engine = DebugLogStream(wire.Channel(args.engine) if args.engine != args.monitor
                            else channel, wanted=args.debug_lines != "false") \
        if args.engine else None
    settings = dict(monitor=resource_pb2_grpc.ResourceMonitorStub(channel), engine=engine,
                    project=args.project, stack=args.stack, parallel=int(args.parallel),
                    dry_run=args.dry_run == "true", organization=args.organization,
                    root_directory=args.root_directory or None)
    accepted = inspect.signature(pulumi.runtime.Settings).parameters
    pulumi.runtime.configure(pulumi.runtime.Settings(
        **{k: v for k, v in settings.items() if k in accepted}))


def user_frames(exc: BaseException) -> str:
    """The traceback without the frames of this script and the Pulumi runtime."""
    frames = traceback.extract_tb(exc.__traceback__)
    stdlib = os.path.dirname(os.__file__)
    kept = [f for f in frames if os.sep + "pulumi" + os.sep not in f.filename
            and f.filename != __file__ and not f.filename.startswith(("<frozen", stdlib))]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(kept or frames),
             *traceback.format_exception_only(type(exc), exc)]
    return "".join(lines).rstrip("\n")


async def run_main(program: str) -> None:
    """Execute the program's entry point as ``__main__``, then let the RPCs it began start."""
    runpy.run_path(program, run_name="__main__")
    # The SDK's final wait awaits the RPCs it knows of one at a time, which is cheap, and then
    # waits on all pending outputs at once, passing over every one of them each time one
    # resolves. An RPC is known once its task first runs: this one turn of the loop lets every
    # registration the program made become known before that wait, so it is not paid for with
    # a pass over all outputs per response.
    await asyncio.sleep(0)


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
    if sys.pycache_prefix is None:
        # Outside a program host (which caches bytecode privately) nothing is written beside
        # the program's sources.
        sys.dont_write_bytecode = True
    args = parse_args(argv)
    configure(args)
    program = args.PROGRAM
    sys.argv = [program, *args.ARGS]
    os.chdir(args.pwd or os.getcwd())
    if os.path.isdir(program) and not os.path.exists(os.path.join(program, "__main__.py")):
        pulumi.log.error("unable to find main python program `__main__.py` in "
                         f"`{os.path.abspath(program)}`")
        return BAIL
    # The SDK makes dozens of futures, tasks and closures per resource: at the default
    # threshold a 100-resource up ran 71 collections (4.4 ms). A run is one short process;
    # its garbage may wait a little longer.
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The SDK makes its blocking calls (registrations above all) from the loop's executor: one
    # thread per resource operation --parallel allows, as in Pulumi's server for inline
    # programs. More threads only queued at the engine, each with a connection and a thread
    # there: a 100-resource up took 5% longer with four times as many.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(int(args.parallel), 1)))
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
        if isinstance(engine, DebugLogStream):
            engine.close()
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
