"""``stack select/init/ls/rm/output/history/export/import/tag``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from offline_pulumi import integrity, values
from offline_pulumi.args import Parsed
from offline_pulumi.backend import StackRef, parse_stack_ref
from offline_pulumi.confirm import interactive, skip_confirmations
from offline_pulumi.context import Context
from offline_pulumi.errors import EXIT_FAILURE, CLIError, StackNotFound, UnsupportedError
from offline_pulumi.fileio import dump_json, write_json_atomic
from offline_pulumi.manifest import (
    PROVIDER_PREFIX,
    STACK_TYPE,
    format_unix,
    new_deployment,
    stack_resource,
)
from offline_pulumi.stackconfig import StackSettings, decrypt_value, is_secure

DEFAULT_HISTORY_PAGE = 10


def _name_argument(context: Context, parsed: Parsed) -> StackRef:
    positional = parsed.positionals[0] if parsed.positionals else None
    return context.stack_ref(positional)


def select(parsed: Parsed) -> None:
    """Select a stack (``--create`` makes it when missing)."""
    context = Context(parsed)
    ref = _name_argument(context, parsed)
    if not context.backend.exists(ref):
        if not parsed.has("create"):
            raise StackNotFound(ref.name)
        _create(context, ref, parsed)
    context.select(ref)


def init(parsed: Parsed) -> None:
    """Create a stack with a passphrase secrets manager and select it."""
    context = Context(parsed)
    # Named here or by --stack: never the selected stack, which already exists.
    if not (parsed.positionals or parsed.value("stack")):
        raise CLIError("missing stack name")
    ref = _name_argument(context, parsed)
    _create(context, ref, parsed)
    if not parsed.has("no-select"):
        context.select(ref)
    print(f"Created stack '{ref.name}'")


def _create(context: Context, ref: StackRef, parsed: Parsed) -> None:
    provider = parsed.value("secrets-provider", "passphrase")
    if provider not in ("passphrase", "default"):
        raise UnsupportedError(f"the secrets provider '{provider}'")
    if parsed.has("copy-config-from"):
        raise UnsupportedError("--copy-config-from")
    if ref.project != context.project.name:
        raise CLIError(f"stack '{ref.fqn}' belongs to another project than "
                       f"'{context.project.name}'")
    from offline_pulumi.errors import StackAlreadyExists

    if context.backend.exists(ref):
        raise StackAlreadyExists(ref.fqn)
    settings = StackSettings.load(context.project, ref.name)
    manager = context.secrets_manager(settings, None)
    context.backend.create(ref, new_deployment(manager.salt_state))


def ls(parsed: Parsed) -> None:
    """List stacks as JSON (the Automation API's form) or a table."""
    context = Context(parsed)
    show_all = parsed.has("all")
    project = None if show_all else context.project.name
    selected = context.selected()
    rows = []
    for ref in context.backend.list_stacks(project):
        row: dict[str, Any] = {
            "name": ref.name if ref.project == context.project.name else ref.fqn,
            "current": ref.fqn == selected,
        }
        try:
            latest = context.backend.read_latest(ref)
        except CLIError:
            continue  # removed while listing
        if latest:
            stamp = (latest.get("manifest") or {}).get("time")
            if stamp and not stamp.startswith("0001"):
                row["lastUpdate"] = _iso_to_history(stamp)
            row["resourceCount"] = len(latest.get("resources") or [])
        rows.append(row)
    if parsed.has("json"):
        print(json.dumps(rows, indent=2))
        return
    print("NAME  LAST UPDATE  RESOURCE COUNT")
    for row in rows:
        marker = "*" if row["current"] else ""
        print(f"{row['name']}{marker}  {row.get('lastUpdate', 'n/a')}  "
              f"{row.get('resourceCount', 'n/a')}")


def _iso_to_history(stamp: str) -> str:
    from datetime import datetime

    return format_unix(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def rm(parsed: Parsed) -> int:
    """Remove a stack; refuse while it still has resources unless ``--force``."""
    context = Context(parsed)
    ref = _name_argument(context, parsed)
    context.backend.require(ref)
    if not (parsed.has("yes") or skip_confirmations() or _confirmed(parsed, ref.name)):
        print("confirmation declined")
        return EXIT_FAILURE
    remove_stack(context, ref, force=parsed.has("force"),
                 preserve_config=parsed.has("preserve-config"))
    return 0


def _confirmed(parsed: Parsed, name: str) -> bool:
    """At a terminal, the CLI's question (``ui.ConfirmPrompt``): type the stack's name."""
    if not interactive(parsed):
        return False
    print(f"This will permanently remove the '{name}' stack!")
    print(f"Please confirm that this is what you'd like to do by typing `{name}`: ", end="",
          flush=True)
    return sys.stdin.readline().strip() == name


def remove_stack(context: Context, ref: StackRef, force: bool, preserve_config: bool) -> None:
    """Remove a stack (under its lock) and its config file, and forget the selection."""
    backend = context.backend
    backend.require(ref)
    with backend.lock(ref):
        latest = backend.read_latest(ref) or {}
        resources = latest.get("resources") or []
        real = [r for r in resources if r.get("type") != STACK_TYPE
                and not r.get("type", "").startswith(PROVIDER_PREFIX)]
        if real and not force:
            raise CLIError(f"'{ref.name}' still has resources; removal rejected. Possible "
                           "actions:\n- Make sure that 'pulumi destroy' has been run\n- To "
                           "delete the stack and its resources, use 'pulumi stack rm --force'")
        backend.remove(ref)
    # The stack's config file is this project's only for a stack of this project.
    if not preserve_config and ref.project == context.project.name:
        for suffix in ("yaml", "yml", "json"):
            (context.project.root / f"Pulumi.{ref.name}.{suffix}").unlink(missing_ok=True)
    if context.selected() == ref.fqn:
        context.select(None)
    print(f"Stack '{ref.name}' has been removed!")


def rename(parsed: Parsed) -> None:
    """Rename the selected stack (``org/project/name`` also moves it to another project)."""
    context = Context(parsed)
    old = context.stack_ref()
    new_name = _one_positional(parsed, "new stack name")
    new = parse_stack_ref(new_name, old.project)
    context.backend.require(old)
    context.backend.rename(old, new)
    if new.project == context.project.name:
        for suffix in ("yaml", "yml", "json"):
            source = context.project.root / f"Pulumi.{old.name}.{suffix}"
            if source.is_file():
                source.rename(source.with_name(f"Pulumi.{new.name}.{suffix}"))
    if context.selected() in (old.fqn, None):
        context.select(new)
    print(f"Renamed {old.fqn} to {new.fqn}")


def _load(context: Context) -> tuple[StackRef, dict[str, Any] | None, StackSettings]:
    ref = context.stack_ref()
    latest = context.backend.read_latest(ref)
    return ref, latest, StackSettings.load(context.project, ref.name)


def output(parsed: Parsed) -> None:
    """Print the stack's outputs; secrets masked unless ``--show-secrets``."""
    context = Context(parsed)
    ref = context.stack_ref()
    latest = context.backend.read_latest(ref)
    root = stack_resource(latest)
    outputs: dict[str, Any] = dict((root or {}).get("outputs") or {})
    if parsed.has("show-secrets"):
        if values.contains_secret(outputs):
            settings = StackSettings.load(context.project, ref.name)
            crypter = context.secrets_manager(settings, latest).crypter
            outputs = values.plain(values.from_state(outputs, crypter.decrypt))
    else:
        outputs = values.masked(outputs)
    outputs = values.normalise(outputs)
    as_json = parsed.has("json")
    if parsed.positionals:
        name = parsed.positionals[0]
        if name not in outputs:
            raise CLIError(f"current stack does not have output property '{name}'")
        value = outputs[name]
        print(json.dumps(value, indent=2) if as_json or not isinstance(value, str) else value)
        return
    if as_json:
        print(json.dumps(dict(sorted(outputs.items())), indent=2))
        return
    print(f"Current stack outputs ({len(outputs)}):")
    for key in sorted(outputs):
        value = outputs[key]
        print(f"    {key}  {value if isinstance(value, str) else json.dumps(value)}")


def history(parsed: Parsed) -> None:
    """Print the stack's operations, newest first, in the Automation API's JSON form."""
    context = Context(parsed)
    ref = context.stack_ref()
    context.backend.require(ref)
    entries = context.backend.read_history(ref)
    size = int(parsed.value("page-size") or DEFAULT_HISTORY_PAGE)
    page = max(int(parsed.value("page") or 1), 1)
    if size > 0:
        entries = entries[(page - 1) * size: page * size]
    show = parsed.has("show-secrets")
    needs_key = show and any(is_secure(v) for e in entries for v in (e.get("config") or {})
                             .values())
    crypter = None
    if needs_key:
        settings = StackSettings.load(context.project, ref.name)
        crypter = context.secrets_manager(settings, context.backend.read_latest(ref)).crypter
    rows = [_history_row(entry, crypter, show) for entry in entries]
    if parsed.has("json"):
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['kind']}  {row['result']}  {row['startTime']}  "
              f"{json.dumps(row.get('resourceChanges', {}))}")


def _history_row(entry: dict[str, Any], crypter: Any, show: bool) -> dict[str, Any]:
    config = {}
    for key, raw in (entry.get("config") or {}).items():
        if is_secure(raw):
            item: dict[str, Any] = {"secret": True}
            if show:
                try:
                    item["value"] = crypter.decrypt(raw["secure"])
                except CLIError:
                    item["value"] = "ERROR_UNABLE_TO_DECRYPT"
            config[key] = item
        else:
            plain = decrypt_value(raw, None)
            config[key] = {"value": plain if isinstance(plain, str) else json.dumps(plain),
                           "secret": False}
    row = {"version": 0, "kind": entry["kind"], "startTime": format_unix(entry["startTime"]),
           "message": entry.get("message", ""), "environment": entry.get("environment", {}),
           "config": config, "result": entry["result"]}
    if entry.get("endTime"):
        row["endTime"] = format_unix(entry["endTime"])
    if entry.get("resourceChanges") is not None:
        row["resourceChanges"] = entry["resourceChanges"]
    return row


def export(parsed: Parsed) -> None:
    """Print (or write to ``--file``) the stack's deployment."""
    context = Context(parsed)
    if parsed.has("version"):
        raise UnsupportedError("stack export --version")
    _, latest, settings = _load(context)
    deployment = dict(latest or {})
    if parsed.has("show-secrets") and values.contains_secret(deployment.get("resources")):
        crypter = context.secrets_manager(settings, latest).crypter
        deployment["resources"] = values.to_plaintext_state(
            values.from_state(deployment["resources"], crypter.decrypt))
    document = {"version": 3, "deployment": deployment}
    target = parsed.value("file")
    if target:
        write_json_atomic(Path(target), document, indent=4)
    else:
        print(json.dumps(document, indent=4))


def import_(parsed: Parsed) -> None:
    """Replace the stack's deployment with one read from ``--file`` or stdin."""
    context = Context(parsed)
    ref, latest, settings = _load(context)
    source = parsed.value("file")
    try:
        text = Path(source).read_text() if source else sys.stdin.read()
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CLIError(f"could not read the deployment: {exc}") from exc
    deployment = document.get("deployment") if isinstance(document, dict) else None
    if not isinstance(deployment, dict) or document.get("version") not in (3, 4):
        raise CLIError("the file is not a version 3 deployment export")
    try:
        resources = integrity.check_shape(deployment.get("resources") or [])
    except integrity.MalformedDeployment as exc:
        raise CLIError(f"could not deserialize deployment: {exc}") from None
    problems = integrity.foreign_resources(resources, ref.name)
    broken = integrity.integrity_error(resources)
    if broken:
        problems.append(f"state file contains errors: {broken}")
    if problems and not parsed.has("force"):
        raise CLIError(integrity.error_list(
            [*problems, "importing this file could be dangerous; rerun with --force to proceed "
                        "anyway"]))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    for operation in deployment.get("pending_operations") or []:
        urn = (operation.get("resource") or {}).get("urn", "") \
            if isinstance(operation, dict) else ""
        kind = operation.get("type", "") if isinstance(operation, dict) else ""
        print(f"warning: removing pending operation '{kind}' on '{urn}' from snapshot",
              file=sys.stderr)
    deployment = {k: v for k, v in deployment.items() if k != "pending_operations"}
    manager = context.secrets_manager(settings, latest)
    if values.contains_secret(resources):
        source_salt = ((deployment.get("secrets_providers") or {}).get("state") or {}) \
            .get("salt")
        from offline_pulumi.crypto import PassphraseManager

        source_manager = PassphraseManager(source_salt) if source_salt else manager
        decoded = values.from_state(resources, lambda c: source_manager.crypter.decrypt(c))
        resources = values.to_state(decoded, manager.crypter.encrypt)
    deployment = {**deployment, "resources": resources,
                  "secrets_providers": {"type": "passphrase",
                                        "state": {"salt": manager.salt_state}}}
    with context.backend.lock(ref):
        context.backend.save_latest(ref, deployment)
    print("Import complete.")


def _tags(context: Context) -> tuple[StackRef, dict[str, str]]:
    ref = context.stack_ref()
    context.backend.require(ref)
    tags = context.backend.read_tags(ref)
    tags.setdefault("pulumi:project", context.project.name)
    tags.setdefault("pulumi:runtime", context.project.runtime)
    return ref, tags


def tag_get(parsed: Parsed) -> None:
    """Print one tag's value."""
    _, tags = _tags(Context(parsed))
    name = _one_positional(parsed, "tag name")
    if name not in tags:
        raise CLIError(f"stack tag '{name}' not found")
    print(tags[name])


def tag_set(parsed: Parsed) -> None:
    """Set one tag."""
    context = Context(parsed)
    ref, tags = _tags(context)
    if len(parsed.positionals) != 2:
        raise CLIError("stack tag set needs a name and a value")
    tags[parsed.positionals[0]] = parsed.positionals[1]
    context.backend.write_tags(ref, tags)


def tag_rm(parsed: Parsed) -> None:
    """Remove one tag."""
    context = Context(parsed)
    ref, tags = _tags(context)
    tags.pop(_one_positional(parsed, "tag name"), None)
    context.backend.write_tags(ref, tags)


def tag_ls(parsed: Parsed) -> None:
    """Print every tag as JSON."""
    _, tags = _tags(Context(parsed))
    print(dump_json(dict(sorted(tags.items())), indent=2))


def _one_positional(parsed: Parsed, what: str) -> str:
    if len(parsed.positionals) != 1:
        raise CLIError(f"expected one argument: the {what}")
    return parsed.positionals[0]
