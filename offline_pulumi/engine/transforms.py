"""Resource transforms (``ResourceOptions(transforms=...)``, ``register_resource_transform``).

A transform is a callback in the program's process; the engine calls it through the
program's ``Callbacks`` server before it plans a step. As the real engine
(pkg/resource/deploy/source_eval.go, RegisterResource): a resource's own transforms run first,
then those of each parent up to the root, then the stack's; each sees what the previous one
returned, and a parent's transforms are remembered for its children.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from offline_pulumi.engine.protos import module

resource_pb2 = module("resource_pb2")
callback_pb2 = module("callback_pb2")
callback_pb2_grpc = module("callback_pb2_grpc")


class TransformFailed(Exception):
    """A transform callback raised; the message carries the program's error."""


class Transforms:
    """The transforms a program registered, and the channels to its callback servers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: list[Any] = []
        self._by_urn: dict[str, list[Any]] = {}
        self._parents: dict[str, str] = {}
        self._channels: dict[str, grpc.Channel] = {}
        self._active = False

    @property
    def active(self) -> bool:
        """Whether any transform was registered (until then no request needs a look)."""
        return self._active


    def register_stack(self, callback: Any) -> None:
        """A stack transform: applies to every resource registered after it."""
        with self._lock:
            self._stack.append(callback)
            self._active = True

    def apply(self, request: Any, urn: str) -> Any:
        """The RegisterResourceRequest after every transform that applies to it."""
        with self._lock:
            self._active = self._active or bool(request.transforms)
            self._by_urn[urn] = list(request.transforms)
            self._parents[urn] = request.parent
            chain = list(request.transforms)
            parent = request.parent
            while parent:
                chain += self._by_urn.get(parent, [])
                parent = self._parents.get(parent, "")
            chain += self._stack
        for callback in chain:
            request = self._call(callback, request)
        return request

    def close(self) -> None:
        """Close the channels to the program's callback servers."""
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def _call(self, callback: Any, request: Any) -> Any:
        with self._lock:
            channel = self._channels.get(callback.target)
            if channel is None:
                channel = self._channels[callback.target] = \
                    grpc.insecure_channel(callback.target)
        transform = resource_pb2.TransformRequest(
            type=request.type, name=request.name, custom=request.custom,
            parent=request.parent, properties=request.object, options=_options_of(request))
        try:
            reply = callback_pb2_grpc.CallbacksStub(channel).Invoke(
                callback_pb2.CallbackInvokeRequest(token=callback.token,
                                                   request=transform.SerializeToString()))
        except grpc.RpcError as exc:
            raise TransformFailed(exc.details() or str(exc)) from exc
        response = resource_pb2.TransformResponse.FromString(reply.response)
        return _with_result(request, response)


def _options_of(request: Any) -> Any:
    """The options a transform sees, from the registration."""
    options = resource_pb2.TransformResourceOptions(
        depends_on=list(request.dependencies), ignore_changes=list(request.ignoreChanges),
        replace_on_changes=list(request.replaceOnChanges), version=request.version,
        provider=request.provider, plugin_download_url=request.pluginDownloadURL,
        deleted_with=request.deletedWith,
        additional_secret_outputs=list(request.additionalSecretOutputs))
    if request.HasField("protect"):
        options.protect = request.protect
    if request.HasField("retainOnDelete"):
        options.retain_on_delete = request.retainOnDelete
    if request.deleteBeforeReplaceDefined or request.deleteBeforeReplace:
        options.delete_before_replace = request.deleteBeforeReplace
    return options


def _with_result(request: Any, response: Any) -> Any:
    """A copy of the registration with the transform's properties and options."""
    changed = resource_pb2.RegisterResourceRequest()
    changed.CopyFrom(request)
    changed.object.CopyFrom(response.properties)
    if not response.HasField("options"):
        return changed
    options = response.options
    del changed.dependencies[:]
    changed.dependencies.extend(options.depends_on)
    del changed.ignoreChanges[:]
    changed.ignoreChanges.extend(options.ignore_changes)
    del changed.replaceOnChanges[:]
    changed.replaceOnChanges.extend(options.replace_on_changes)
    del changed.additionalSecretOutputs[:]
    changed.additionalSecretOutputs.extend(options.additional_secret_outputs)
    changed.version = options.version
    changed.provider = options.provider
    changed.deletedWith = options.deleted_with
    if options.HasField("protect"):
        changed.protect = options.protect
    else:
        changed.ClearField("protect")
    if options.HasField("retain_on_delete"):
        changed.retainOnDelete = options.retain_on_delete
    else:
        changed.ClearField("retainOnDelete")
    changed.deleteBeforeReplace = options.HasField("delete_before_replace") and \
        options.delete_before_replace
    changed.deleteBeforeReplaceDefined = options.HasField("delete_before_replace")
    return changed
