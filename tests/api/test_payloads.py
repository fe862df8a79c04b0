"""Workflow payloads: what crosses Temporal decodes back to the same dataclasses."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from temporalio.converter import default

from infra import stack_workflow, workflows


def _payload_classes() -> list[type]:
    return [cls for module in (workflows, stack_workflow)
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__]


@pytest.mark.parametrize("cls", _payload_classes(), ids=lambda cls: cls.__name__)
def test_every_payload_dataclass_carries_its_annotations_as_types(cls):
    assert [name for name, hint in cls.__annotations__.items() if isinstance(hint, str)] == []


def test_a_burn_output_round_trips_with_its_nested_dataclasses():
    output = workflows.BurnOutput(
        "c2f1", [("hex", "ab")], [workflows.PhaseTime("up", 1.5)], True,
        [workflows.Delivery(0, "evt-1", "operation.succeeded", "op-1", "{}")])
    converter = default().payload_converter
    [decoded] = converter.from_payloads(converter.to_payloads([output]), [workflows.BurnOutput])
    assert decoded == output
    assert isinstance(decoded.phases[0], workflows.PhaseTime)
    assert isinstance(decoded.deliveries[0], workflows.Delivery)
