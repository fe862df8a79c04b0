"""Command line for one burner stack: ``python -m infra.basic KIND [NAME=VALUE ...]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence

from infra.basic import Pipeline
from infra.engine import select_engine
from infra.errors import InfraError, ParameterError
from infra.kinds import parse_request
from infra.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run one burner stack and print its value."""
    parser = argparse.ArgumentParser(prog="python -m infra.basic", description=main.__doc__)
    parser.add_argument("kind", help="id, uuid, string or time")
    parser.add_argument("params", nargs="*", metavar="NAME=VALUE",
                        help="parameters, e.g. bytes=16, length=12, tz=Europe/Berlin")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log pipeline steps (-v) and Pulumi output (-vv) to stderr")
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        raw = dict(_split_param(param) for param in args.params)
        request = parse_request(args.kind, raw)
        settings = Settings.from_environ()
        result = Pipeline(settings, select_engine(settings)).run(request)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print(result.value)
    return 0


def _split_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise ParameterError(text, "", "NAME=VALUE, e.g. bytes=16")
    return name, value


