"""Test-only program: no resources, its config given back as outputs (the secret as a secret)."""

import pulumi

config = pulumi.Config()
pulumi.export("name", config.get("name"))
pulumi.export("ttl", config.get_int("ttl"))
pulumi.export("sizes", config.get_object("sizes"))
pulumi.export("flags", config.get_object("flags"))
pulumi.export("pin", config.get_secret("pin"))
