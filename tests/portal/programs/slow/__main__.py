"""Test-only program: random pets registered one at a time, a pause before each."""

import time

import pulumi
import pulumi_random as random

config = pulumi.Config()
count = config.get_int("resources") or 6
pause_ms = config.get_int("pause_ms")
pause = (800 if pause_ms is None else pause_ms) / 1000
names = []
for index in range(count):
    time.sleep(pause)
    names.append(random.RandomPet(f"pet-{index}", length=2).id)
pulumi.export("pets", pulumi.Output.all(*names))
