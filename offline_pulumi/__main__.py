"""``python -m offline_pulumi`` runs the offline CLI."""

from __future__ import annotations

import sys

from offline_pulumi.cli import main

sys.exit(main())
