"""How secret values are hidden wherever the service shows, stores or logs them: config,
outputs (a secret nested inside an output too) and free text such as engine messages."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pulumi import automation as auto

# How a secret value appears wherever the API shows config, outputs or errors.
SECRET_MASK = "[secret]"

# How a Pulumi deployment marks a secret value: this key with this value (Pulumi's own constants).
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_STACK_TYPE = "pulumi:pulumi:Stack"


def mask_config(config: Mapping[str, Any], secret_keys: Collection[str]) -> dict[str, Any]:
    """The config with every secret key's value replaced by the mask."""
    return {key: SECRET_MASK if key in secret_keys else value for key, value in config.items()}


# A line of a multi-line secret shorter than this is not masked on its own (a lone "}" would
# mask every brace); the whole secret always is.
_MIN_LINE = 4


def secret_texts(config: Mapping[str, Any], secret_keys: Iterable[str]) -> tuple[str, ...]:
    """Every text a secret config value may appear as: the value as Pulumi stores it (arrays
    as JSON), each element of an array, each line of a multi-line one (output is logged line
    by line, continuation lines indented), and each as Python's repr and JSON escape it."""
    texts: set[str] = set()
    for key in secret_keys:
        if key not in config:
            continue
        value = config[key]
        whole = [_text(value), *(_text(item) for item in value)] if isinstance(value, list) \
            else [_text(value)]
        for text in whole:
            texts.update(_forms(text))
            lines = [line.strip() for line in text.splitlines()]
            if len(lines) > 1:
                texts.update(form for line in lines if len(line) >= _MIN_LINE
                             for form in _forms(line))
    return tuple(text for text in texts if text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _forms(text: str) -> set[str]:
    # A program's error often quotes a value with repr ('...'), a JSON encoder with "...".
    return {text, repr(text)[1:-1], json.dumps(text)[1:-1]}


def mask_text(text: str, secrets: Collection[str]) -> str:
    """``text`` with every occurrence of a secret replaced by the mask (longest first, so a
    secret that contains another is masked whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, SECRET_MASK)
    return text


def mask_outputs(outputs: Mapping[str, auto.OutputValue], deployment: auto.Deployment
                 ) -> dict[str, Any]:
    """The outputs with every secret replaced by the mask, at any depth.

    The Automation API marks only an output that is a secret as a whole; the stack's exported
    deployment marks each secret where it sits, so it says which parts to mask. Where the two
    disagree, the whole output is masked: nothing is shown that the deployment does not vouch for.
    """
    marked = _stack_outputs(deployment)
    return {key: SECRET_MASK if output.secret or key not in marked
            else _masked(output.value, marked[key])
            for key, output in outputs.items()}


def _stack_outputs(deployment: auto.Deployment) -> dict[str, Any]:
    resources = (deployment.deployment or {}).get("resources") or []
    for resource in resources:
        if resource.get("type") == _STACK_TYPE:
            return dict(resource.get("outputs") or {})
    return {}


def _masked(value: Any, marked: Any) -> Any:
    if isinstance(marked, dict) and marked.get(_SECRET_SIG_KEY) == _SECRET_SIG:
        return SECRET_MASK
    if isinstance(value, dict):
        if not isinstance(marked, dict) or set(marked) != set(value):
            return SECRET_MASK
        return {key: _masked(item, marked[key]) for key, item in value.items()}
    if isinstance(value, list):
        if not isinstance(marked, list) or len(marked) != len(value):
            return SECRET_MASK
        return [_masked(item, mark) for item, mark in zip(value, marked, strict=True)]
    return value
