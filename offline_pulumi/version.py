"""The Pulumi CLI version the offline engine speaks (one owner: every other module asks here).

The version decides how the Automation API talks to us: after 3.205.0 it serves a gRPC
``Events`` stream and passes its address as ``--event-log tcp://...``; up to 3.205.0 it tails
an event-log file. The engine speaks both.
"""

from __future__ import annotations

VERSION = "3.272.0"
