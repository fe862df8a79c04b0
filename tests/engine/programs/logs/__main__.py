"""Test program: a warning, one resource, then many debug lines as its last act."""

import pulumi
import pulumi_random as random

LINES = 200

pulumi.log.warn("a warning before the debug lines")
random.RandomId("id", byte_length=4)
pulumi.export("lines", LINES)
for number in range(LINES):
    pulumi.log.debug(f"debug line {number}")
