"""Exports which process started this program, what called it, and a value that proves it ran."""

import os
import traceback

import pulumi
import pulumi_random as random

with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
    parent = handle.read().replace(b"\0", b" ").decode()
pulumi.export("parent", parent)
# Every frame under the program is in the stack trace the SDK takes of each resource.
pulumi.export("callers", [f"{os.path.basename(frame.filename)}:{frame.name}"
                          for frame in traceback.extract_stack()[:-1]])
pulumi.export("suffix", random.RandomString("suffix", length=6, special=False).result)
