"""The ``burner`` command: ``burner worker`` runs a standalone worker, ``burner burn`` one stack."""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from infra import logs
from infra.app import render
from infra.basic import Burner
from infra.engine import select_engine
from infra.errors import InfraError, ParameterError, SettingsError
from infra.kinds import parse_request
from infra.service import Service
from infra.settings import Settings

# How long a signal that reached another thread may wait for its handler to run.
SIGNAL_CHECK_SECONDS = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the service's worker and of single burner runs."""
    parser = argparse.ArgumentParser(prog="burner", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a standalone Temporal worker (INFRA_API_* "
                                                "settings, as the API uses them)")
    worker.set_defaults(run=_worker)
    burn = commands.add_parser("burn", help="run one burner stack in this process and print its "
                                            "value")
    burn.add_argument("kind", help="id, uuid, string or time")
    burn.add_argument("params", nargs="*", metavar="NAME=VALUE",
                      help="parameters, e.g. bytes=16, length=12, tz=Europe/Berlin")
    burn.add_argument("--json", action="store_true", help="print the body /KIND would answer")
    burn.add_argument("-v", "--verbose", action="count", default=0,
                      help="log steps (-v) and Pulumi output (-vv) to stderr")
    burn.set_defaults(run=_burn)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def _worker(args: argparse.Namespace) -> int:
    settings = Settings.from_environ()
    if settings.temporal_address is None:
        # An embedded server of its own would give this worker nobody to work for.
        raise SettingsError("INFRA_API_TEMPORAL_ADDRESS", "",
                            "the host:port of the Temporal cluster the API nodes use")
    logging.config.dictConfig(logs.dict_config(settings.log_level, settings.log_format))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    service = Service(settings)
    service.start(run_worker=True)
    logging.getLogger(__name__).info("worker running; Ctrl-C or SIGTERM drains and stops it")
    try:
        # Not one endless wait: Python runs a signal's handler only in the main thread, and the
        # kernel may hand the signal to any other (Temporal's among them), which cannot wake a
        # main thread blocked on a lock. A wait that ends every second lets the handler run.
        while not stop.wait(SIGNAL_CHECK_SECONDS):
            pass
    finally:
        service.stop()
    return 0


def _burn(args: argparse.Namespace) -> int:
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = dict(_split_param(param) for param in args.params)
    request = parse_request(args.kind, raw)
    settings = Settings.from_environ()
    burner = Burner(settings, select_engine(settings))
    try:
        result = burner.run(request)
    finally:
        burner.engine.stop_helpers()  # nothing of a one-off run outlives it
    if args.json:
        print(json.dumps(render(request, result), indent=2))
    else:
        print(result.value)
    return 0


def _split_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise ParameterError(text, "", "NAME=VALUE, e.g. bytes=16")
    return name, value


