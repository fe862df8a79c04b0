"""Test-only program: secrets nested in outputs, failures that quote secrets or leave a
protected resource behind, and outputs of a chosen size."""

import pulumi
import pulumi_random as random


def fail_once_created(hex_id: str) -> str:
    # Runs once the resource exists, so the failed up leaves it in the stack.
    raise pulumi.RunError(f"failing after creating the protected id {hex_id}")


config = pulumi.Config()
token = config.require_secret("token")
if config.get_bool("fail"):
    keys = config.require_object("keys")
    raise pulumi.RunError(f"refusing token {config.require('token')} and keys {' '.join(keys)}")
if config.get_bool("protect"):
    kept = random.RandomId("kept", byte_length=4, opts=pulumi.ResourceOptions(protect=True))
    pulumi.export("kept", kept.hex.apply(fail_once_created))
pulumi.export("credentials", {"token": token, "user": "ann"})
pulumi.export("listed", ["plain", token])
pulumi.export("filler", "x" * 1024 * (config.get_int("output_kib") or 0))
