"""Test-only program: create one resource, then hang until interrupted."""

import time

import pulumi
import pulumi_random as random

pulumi.export("uuid", random.RandomUuid("uuid").result)
time.sleep(3600)
