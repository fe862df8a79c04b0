"""Test-only program: create one UUID, then pause before finishing (as /uuid's program would)."""

import time

import pulumi
import pulumi_random as random

pulumi.export("uuid", random.RandomUuid("uuid").result)
time.sleep(4)
