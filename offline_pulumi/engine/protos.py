"""The Pulumi SDK's generated gRPC modules, loaded without importing the SDK itself.

``import pulumi.runtime.proto`` runs ``pulumi/__init__.py``, which imports the whole SDK
(automation, runtime, telemetry): about 0.1 s the engine does not need on every ``up``. The
generated modules only import each other relatively, so they load as a private package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_PACKAGE = "_offline_pulumi_protos"


def module(name: str) -> Any:
    """A generated module by name, e.g. ``resource_pb2`` or ``engine_pb2_grpc``."""
    if _PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("pulumi")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the pulumi package is not installed")
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "runtime" / "proto")]
        sys.modules[_PACKAGE] = package
    return importlib.import_module(f"{_PACKAGE}.{name}")
