"""Entry point of the offline ``pulumi`` executable: parse argv, dispatch, report errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

from offline_pulumi.args import GLOBAL, Flags, Parsed, flags, parse
from offline_pulumi.commands import config, misc, stack, update
from offline_pulumi.errors import EXIT_INTERNAL, CLIError, UnsupportedError


class Command(NamedTuple):
    """What runs for a command path, and the flags it accepts."""

    run: Callable[[Parsed], int | None]
    flags: Flags


_STACK = flags(values="stack|s")
_OPERATION = flags(
    "yes|y skip-preview|f diff expect-no-changes clear-pending-creates target-dependents "
    "exclude-dependents debug|d suppress-outputs suppress-progress show-secrets "
    "continue-on-error attach-debugger refresh|r json|j preview-only run-program "
    "exclude-protected show-config show-replacement-steps show-sames show-reads "
    "skip-pending-creates import-pending-creates remove strict neo",
    "stack|s message|m replace target|t exclude policy-pack policy-pack-config "
    "parallel|p exec-kind event-log client config-file plan save-plan import-file "
    "secrets-provider config|c exec-agent target-replace")
_CONFIG = flags(values="stack|s config-file")

COMMANDS: dict[tuple[str, ...], Command] = {
    ("version",): Command(misc.version, flags()),
    ("whoami",): Command(misc.whoami, flags("json|j")),
    ("cancel",): Command(misc.cancel, flags("yes|y") | _STACK),
    ("plugin", "ls"): Command(misc.plugin_ls, flags("json|j project")),
    ("plugin", "install"): Command(misc.plugin_install,
                                   flags("reinstall exact", "server file checksum")),
    ("plugin", "rm"): Command(misc.plugin_rm, flags("yes|y all|a")),
    ("install",): Command(misc.install, flags("use-language-version-tools no-plugins "
                                              "no-dependencies reinstall")),
    ("new",): Command(misc.new, flags(
        "yes|y force|f generate-only|g offline|o config-path list-templates "
        "remote-stack-config template-mode",
        "name|n description|d dir stack|s config|c secrets-provider runtime-options "
        "ai language")),
    ("stack", "select"): Command(stack.select, flags("create|c", "stack|s secrets-provider")),
    ("stack", "init"): Command(stack.init, flags(
        "no-select", "stack|s secrets-provider copy-config-from teams")),
    ("stack", "ls"): Command(stack.ls, flags("json|j all|a",
                                             "organization|o project|p tag|t")),
    ("stack", "rm"): Command(stack.rm, flags("yes|y force|f preserve-config remove-backups")
                             | _STACK),
    ("stack", "rename"): Command(stack.rename, flags("yes|y show-secrets") | _STACK),
    ("stack", "output"): Command(stack.output, flags("json|j show-secrets shell") | _STACK),
    ("stack", "history"): Command(stack.history, flags(
        "json|j show-secrets full-dates", "stack|s page-size page")),
    ("stack", "export"): Command(stack.export, flags("show-secrets", "stack|s file version")),
    ("stack", "import"): Command(stack.import_, flags("force|f", "stack|s file")),
    ("stack", "tag", "get"): Command(stack.tag_get, _STACK),
    ("stack", "tag", "set"): Command(stack.tag_set, _STACK),
    ("stack", "tag", "rm"): Command(stack.tag_rm, _STACK),
    ("stack", "tag", "ls"): Command(stack.tag_ls, flags("json|j") | _STACK),
    ("config",): Command(config.list_, flags("json|j show-secrets open") | _CONFIG),
    ("config", "get"): Command(config.get, flags("json|j path open") | _CONFIG),
    ("config", "set"): Command(config.set_, flags("path secret plaintext yes|y type")
                               | _CONFIG),
    ("config", "set-all"): Command(config.set_all, flags("path", "plaintext secret json")
                                   | _CONFIG),
    ("config", "rm"): Command(config.rm, flags("path") | _CONFIG),
    ("config", "rm-all"): Command(config.rm_all, flags("path") | _CONFIG),
    ("up",): Command(update.up, _OPERATION),
    ("update",): Command(update.up, _OPERATION),
    ("preview",): Command(update.preview, _OPERATION),
    ("refresh",): Command(update.refresh, _OPERATION),
    ("destroy",): Command(update.destroy, _OPERATION),
}


def _value_flags() -> frozenset[str]:
    """Every name (long or short) of a flag that takes a value, in any command."""
    names: set[str] = set()
    for known in [GLOBAL, *(command.flags for command in COMMANDS.values())]:
        names |= known.values
        names |= {short for short, long in known.aliases.items() if long in known.values}
    return frozenset(names)


# Built once at import: the resident engine's children inherit it instead of rebuilding it
# for every command.
_VALUE_FLAGS = _value_flags()


def resolve(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Split argv into the longest known command path and the remaining arguments."""
    value_flags = _VALUE_FLAGS
    word_positions: list[int] = []
    i = 0
    while i < len(argv) and len(word_positions) < 3:
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("-"):
            name, eq, _ = arg.lstrip("-").partition("=")
            i += 2 if (name in value_flags and not eq) else 1
            continue
        word_positions.append(i)
        i += 1
    words = [argv[i] for i in word_positions]
    for size in range(len(words), 0, -1):
        if tuple(words[:size]) in COMMANDS:
            taken = set(word_positions[:size])
            return tuple(words[:size]), [a for i, a in enumerate(argv) if i not in taken]
    shown = " ".join(words[:2]) if words else "(no command)"
    raise UnsupportedError(f"'pulumi {shown}'")


def run(argv: list[str]) -> int:
    """Run one command line and return its exit code."""
    path, rest = resolve(argv)
    command = COMMANDS[path]
    return command.run(parse(rest, command.flags, " ".join(path))) or 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become ``error: <message>`` on stderr, never a traceback."""
    if argv is None:  # a process of its own, not a call from Python code
        from offline_pulumi.parent import watch_parent

        watch_parent()
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 8
    except BrokenPipeError:
        return 1
    except Exception as exc:  # the CLI's one error boundary
        print(f"error: internal error in the offline engine: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        if _debug():
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL


def _debug() -> bool:
    import os

    return bool(os.environ.get("OFFLINE_PULUMI_DEBUG"))
