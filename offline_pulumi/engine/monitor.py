"""The gRPC ResourceMonitor and Engine services a Pulumi program talks to."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

from offline_pulumi import values, wire
from offline_pulumi.engine.deployment import Deployment
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.protos import module
from offline_pulumi.engine.steps import Registration, StepFailed
from offline_pulumi.engine.transforms import TransformFailed, Transforms
from offline_pulumi.errors import CLIError

engine_pb2 = module("engine_pb2")
engine_pb2_grpc = module("engine_pb2_grpc")
resource_pb2 = module("resource_pb2")
resource_pb2_grpc = module("resource_pb2_grpc")
_MonitorServicer: Any = resource_pb2_grpc.ResourceMonitorServicer
_EngineServicer: Any = engine_pb2_grpc.EngineServicer

_SEVERITIES = {0: "debug", 1: "info", 2: "warning", 3: "error"}
# What the monitor supports, by the legacy names older SDKs probe with (newer ones read the
# same list from DeploymentInfo.supportedFeatures).
FEATURES = {"secrets": resource_pb2.RESOURCE_MONITOR_FEATURE_SECRETS,
            "resourceReferences": resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES,
            "transforms": resource_pb2.RESOURCE_MONITOR_FEATURE_TRANSFORMS}
# Our exec script (``language_exec.py``) sends the SDK's debug lines in batches of serialized
# LogRequests from a thread of its own: a blocking Log call per line stalled the program.
LOG_SERVICE = "offline_pulumi.DebugLogs"
LOG_METHOD = "Batch"
# A batch's framing: each serialized LogRequest comes after its length.
_LENGTH = struct.Struct(">I")
# After a failed step the program sees the monitor go away, as with the real engine.
MONITOR_GONE = "Resource monitor has terminated, shutting down"


def to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON values (integral numbers as ints)."""
    result: dict[str, Any] = values.normalise(json_format.MessageToDict(struct))
    return result


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """Plain JSON values as a Struct."""
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


class ResourceMonitor(_MonitorServicer):
    """Turns RegisterResource calls into deployment steps."""

    def __init__(self, deployment: Deployment, info: Any) -> None:
        self.deployment = deployment
        self.info = info
        self.transforms = Transforms()

    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:
        return self.info

    def SupportsFeature(self, request: Any, context: Any) -> Any:
        return resource_pb2.SupportsFeatureResponse(hasSupport=request.id in FEATURES)

    def RegisterResource(self, request: Any, context: Any) -> Any:
        if request.transforms or self.transforms.active:
            urn = self.deployment.urn(request.type, request.name, request.parent)
            try:
                request = self.transforms.apply(request, urn)
            except TransformFailed as exc:
                self.deployment.fail_registration(urn, request.type, f"a transform of "
                                                  f"'{request.name}' failed: {exc}")
                context.abort(grpc.StatusCode.UNAVAILABLE, MONITOR_GONE)
        registration = Registration(
            type=request.type, name=request.name, custom=request.custom,
            parent=request.parent, inputs=to_python(request.object),
            provider=request.provider, version=request.version, protect=request.protect,
            retain_on_delete=request.retainOnDelete,
            delete_before_replace=request.deleteBeforeReplace,
            dependencies=tuple(request.dependencies),
            property_dependencies={k: list(v.urns)
                                   for k, v in request.propertyDependencies.items()},
            ignore_changes=tuple(request.ignoreChanges),
            replace_on_changes=tuple(request.replaceOnChanges),
            additional_secret_outputs=tuple(request.additionalSecretOutputs),
            alias_urns=tuple(request.aliasURNs), import_id=request.importId)
        try:
            result = self.deployment.register(registration)
        except StepFailed:
            context.abort(grpc.StatusCode.UNAVAILABLE, MONITOR_GONE)
        return resource_pb2.RegisterResourceResponse(
            urn=result.urn, id=result.id, object=to_struct(result.outputs))

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        self.deployment.register_outputs(request.urn, to_python(request.outputs))
        return empty_pb2.Empty()

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    def RegisterStackTransform(self, request: Any, context: Any) -> Any:
        self.transforms.register_stack(request)
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"function '{request.tok}' is not available in the offline engine")

    def ReadResource(self, request: Any, context: Any) -> Any:
        registration = Registration(
            type=request.type, name=request.name, custom=True, parent=request.parent,
            inputs=to_python(request.properties), provider=request.provider,
            version=request.version, dependencies=tuple(request.dependencies),
            additional_secret_outputs=tuple(request.additionalSecretOutputs))
        try:
            result = self.deployment.read(registration, request.id)
        except StepFailed:
            context.abort(grpc.StatusCode.UNAVAILABLE, MONITOR_GONE)
        return resource_pb2.ReadResourceResponse(urn=result.urn,
                                                 properties=to_struct(result.outputs))

    def Call(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "component method calls are not "
                      "supported by the offline engine")


class Engine(_EngineServicer):
    """Receives the program's log messages."""

    def __init__(self, events: EventStream, deployment: Deployment) -> None:
        self.events = events
        self.deployment = deployment
        self._root = ""
        self._lock = threading.Lock()

    def Log(self, request: Any, context: Any) -> Any:
        severity = _SEVERITIES.get(request.severity, "info")
        if not (self.deployment.failure and MONITOR_GONE in request.message):
            self.events.diagnostic(severity, request.message, urn=request.urn,
                                   ephemeral=request.ephemeral)
        return empty_pb2.Empty()

    def log_batch(self, batch: bytes, context: Any) -> bytes:
        """Every LogRequest of a batch, in order, as if each came by ``Log``.

        A batch is serialized LogRequests, each after its length (4 bytes, big-endian), as
        ``language_exec`` frames them.
        """
        at = 0
        while at < len(batch):
            (size,) = _LENGTH.unpack_from(batch, at)
            at += _LENGTH.size
            self.Log(engine_pb2.LogRequest.FromString(batch[at:at + size]), context)
            at += size
        return b""

    def GetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.GetRootResourceResponse(urn=self._root)

    def SetRootResource(self, request: Any, context: Any) -> Any:
        with self._lock:
            self._root = request.urn
        return engine_pb2.SetRootResourceResponse()

    def RequirePulumiVersion(self, request: Any, context: Any) -> Any:
        return engine_pb2.RequirePulumiVersionResponse()


class Served:
    """The monitor's server for one program run."""

    def __init__(self, address: str, stop: Callable[[], None]) -> None:
        self.address = address
        self.stop = stop


def _add_services(server: Any, deployment: Deployment, events: EventStream, info: Any) -> Engine:
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(
        ResourceMonitor(deployment, info), server)
    engine = Engine(events, deployment)
    engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
    return engine


def serve_wire(deployment: Deployment, events: EventStream, info: Any, workers: int) -> Served:
    """Serve both services, and the debug-line batches, to our exec script on the wire."""
    registry = wire.Registry()
    engine = _add_services(registry, deployment, events, info)
    registry.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(LOG_SERVICE, {
        LOG_METHOD: grpc.unary_unary_rpc_method_handler(engine.log_batch)}),))
    server = wire.Server(registry, workers)
    return Served(server.address, server.stop)


def serve_grpc(deployment: Deployment, events: EventStream, info: Any, workers: int,
               port: int = 0) -> Served:
    """Serve both services by gRPC on one loopback port (for inline programs)."""
    workers_pool = futures.ThreadPoolExecutor(max_workers=workers)
    server = grpc.server(workers_pool,
                         options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)])
    _add_services(server, deployment, events, info)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if not bound:
        raise CLIError(f"could not listen on 127.0.0.1:{port} for the program")
    server.start()

    def stop() -> None:
        # A short grace lets the program close its channels before the port goes away; the
        # workers go after the server (a command child may serve again).
        server.stop(grace=0.2).wait()
        workers_pool.shutdown(wait=True)
    return Served(f"127.0.0.1:{bound}", stop)
