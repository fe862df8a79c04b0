"""Entry point of the offline ``pulumi`` executable: parse argv, dispatch, report errors."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from offline_pulumi.args import GLOBAL_VALUE, parse
from offline_pulumi.errors import EXIT_INTERNAL, CLIError, UnsupportedError

# The version we report decides how the Automation API talks to us: up to 3.205.0 it tails
# an event-log file (a later version would make it expect a gRPC event stream).
VERSION = "3.205.0"

_OP_BOOLS = frozenset({"yes", "y", "skip-preview", "f", "diff", "expect-no-changes",
                       "clear-pending-creates", "target-dependents", "exclude-dependents",
                       "debug", "d", "suppress-outputs", "suppress-progress", "show-secrets",
                       "continue-on-error", "attach-debugger", "refresh", "r", "json", "j",
                       "preview-only", "run-program", "exclude-protected", "show-config",
                       "show-replacement-steps", "show-sames", "show-reads",
                       "skip-pending-creates", "import-pending-creates", "remove",
                       "strict", "neo"})
_OP_VALUES = frozenset({"stack", "s", "message", "m", "replace", "target", "t", "exclude",
                        "policy-pack", "policy-pack-config", "parallel", "p", "exec-kind",
                        "event-log", "client", "config-file", "plan", "save-plan",
                        "import-file", "secrets-provider", "config", "c", "exec-agent",
                        "target-replace"})

# (command path) -> (module, function, boolean flags, value flags)
COMMANDS: dict[tuple[str, ...], tuple[str, str, frozenset[str], frozenset[str]]] = {
    ("version",): ("misc", "version", frozenset(), frozenset()),
    ("whoami",): ("misc", "whoami", frozenset({"json", "j"}), frozenset()),
    ("cancel",): ("misc", "cancel", frozenset({"yes", "y"}), frozenset({"stack", "s"})),
    ("plugin", "ls"): ("misc", "plugin_ls", frozenset({"json", "j", "project"}), frozenset()),
    ("plugin", "install"): ("misc", "plugin_install", frozenset({"reinstall", "exact"}),
                            frozenset({"server", "file", "checksum"})),
    ("plugin", "rm"): ("misc", "plugin_rm", frozenset({"yes", "y", "all", "a"}), frozenset()),
    ("install",): ("misc", "install", frozenset({"use-language-version-tools", "no-plugins",
                                                 "no-dependencies", "reinstall"}), frozenset()),
    ("stack", "select"): ("stack", "select", frozenset({"create", "c"}),
                          frozenset({"stack", "s", "secrets-provider"})),
    ("stack", "init"): ("stack", "init", frozenset({"no-select"}),
                        frozenset({"stack", "s", "secrets-provider", "copy-config-from",
                                   "teams"})),
    ("stack", "ls"): ("stack", "ls", frozenset({"json", "j", "all", "a"}),
                      frozenset({"organization", "o", "project", "p", "tag", "t"})),
    ("stack", "rm"): ("stack", "rm", frozenset({"yes", "y", "force", "f", "preserve-config",
                                                "remove-backups"}), frozenset({"stack", "s"})),
    ("stack", "output"): ("stack", "output", frozenset({"json", "j", "show-secrets", "shell"}),
                          frozenset({"stack", "s"})),
    ("stack", "history"): ("stack", "history", frozenset({"json", "j", "show-secrets",
                                                          "full-dates"}),
                           frozenset({"stack", "s", "page-size", "page"})),
    ("stack", "export"): ("stack", "export", frozenset({"show-secrets"}),
                          frozenset({"stack", "s", "file", "version"})),
    ("stack", "import"): ("stack", "import_", frozenset({"force", "f"}),
                          frozenset({"stack", "s", "file"})),
    ("stack", "tag", "get"): ("stack", "tag_get", frozenset(), frozenset({"stack", "s"})),
    ("stack", "tag", "set"): ("stack", "tag_set", frozenset(), frozenset({"stack", "s"})),
    ("stack", "tag", "rm"): ("stack", "tag_rm", frozenset(), frozenset({"stack", "s"})),
    ("stack", "tag", "ls"): ("stack", "tag_ls", frozenset({"json", "j"}),
                             frozenset({"stack", "s"})),
    ("config",): ("config", "list_", frozenset({"json", "j", "show-secrets", "open"}),
                  frozenset({"stack", "s", "config-file"})),
    ("config", "get"): ("config", "get", frozenset({"json", "j", "path", "open"}),
                        frozenset({"stack", "s", "config-file"})),
    ("config", "set"): ("config", "set_", frozenset({"path", "secret", "plaintext", "yes",
                                                     "y", "type"}),
                        frozenset({"stack", "s", "config-file"})),
    ("config", "set-all"): ("config", "set_all", frozenset({"path"}),
                            frozenset({"stack", "s", "config-file", "plaintext", "secret",
                                       "json"})),
    ("config", "rm"): ("config", "rm", frozenset({"path"}),
                       frozenset({"stack", "s", "config-file"})),
    ("config", "rm-all"): ("config", "rm_all", frozenset({"path"}),
                           frozenset({"stack", "s", "config-file"})),
    ("up",): ("update", "up", _OP_BOOLS, _OP_VALUES),
    ("update",): ("update", "up", _OP_BOOLS, _OP_VALUES),
    ("preview",): ("update", "preview", _OP_BOOLS, _OP_VALUES),
    ("refresh",): ("update", "refresh", _OP_BOOLS, _OP_VALUES),
    ("destroy",): ("update", "destroy", _OP_BOOLS, _OP_VALUES),
}


def resolve(argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Split argv into the longest known command path and the remaining arguments."""
    value_flags = GLOBAL_VALUE.union(*(spec[3] for spec in COMMANDS.values()))
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
    command, rest = resolve(argv)
    module_name, function_name, bools, values = COMMANDS[command]
    parsed = parse(rest, bools, values, " ".join(command))
    module = importlib.import_module(f"offline_pulumi.commands.{module_name}")
    function: Callable[..., int | None] = getattr(module, function_name)
    return function(parsed) or 0


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
