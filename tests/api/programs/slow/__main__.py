"""Test-only program: create one resource, then wait (long by default) before finishing."""

import time

import pulumi
import pulumi_random as random


def wait(hex_id: str) -> str:
    # Runs once the id exists, so the stack has a resource while the program waits.
    time.sleep(pulumi.Config().get_int("seconds") or 0)
    return hex_id


pulumi.export("id", random.RandomId("id", byte_length=4).hex.apply(wait))
