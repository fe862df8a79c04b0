"""Exports which process started this program, and a value that proves it ran."""

import os

import pulumi
import pulumi_random as random

with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
    parent = handle.read().replace(b"\0", b" ").decode()
pulumi.export("parent", parent)
pulumi.export("suffix", random.RandomString("suffix", length=6, special=False).result)
