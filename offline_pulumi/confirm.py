"""Whether a command that changes a stack may go ahead without asking.

The CLI asks at a terminal and refuses elsewhere unless told to go ahead
(``pkg/cmd/pulumi/operations/up.go``, ``stack/stack_rm.go``; ``backenderr``'s
``NoConfirmationInNonInteractiveError``). ``stack rm`` asks as the CLI does; ``up``,
``refresh`` and ``destroy``, which the CLI previews before it asks, want the flag at a
terminal too.
"""

from __future__ import annotations

import os
import sys

from offline_pulumi.args import Parsed
from offline_pulumi.errors import EXIT_CONFIG_ERROR, CLIError

NO_CONFIRMATION = ("--yes or --skip-preview or --preview-only must be passed in to proceed when "
                   "running in non-interactive mode")
NO_PROMPT = ("--yes or --skip-preview or --preview-only must be passed in to proceed: the "
             "offline engine does not ask for confirmation")


def skip_confirmations() -> bool:
    """``PULUMI_SKIP_CONFIRMATIONS``, which stands for ``--yes`` everywhere."""
    return os.environ.get("PULUMI_SKIP_CONFIRMATIONS", "").strip().lower() in ("1", "true")


def interactive(parsed: Parsed) -> bool:
    """As the CLI decides (``cmdutil.Interactive``): no ``--non-interactive``, not in CI, and
    both stdin and stdout are terminals."""
    if parsed.has("non-interactive") or os.environ.get("CI", "").strip().lower() in ("1", "true"):
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def require_go_ahead(parsed: Parsed) -> None:
    """Refuse an ``up``, ``refresh`` or ``destroy`` that nothing told to go ahead (a preview,
    ``--preview-only``, needs nothing)."""
    if parsed.has("yes") or parsed.has("skip-preview") or skip_confirmations():
        return
    raise CLIError(NO_PROMPT if interactive(parsed) else NO_CONFIRMATION, EXIT_CONFIG_ERROR)
