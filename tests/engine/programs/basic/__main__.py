"""Test program: three random resources and a few exports, with failure modes chosen by config.

Config keys (all optional): ``keeper`` (RandomId keepers value), ``token`` (secret export),
``sleep`` (seconds to sleep before registering resources), ``fail`` (raise with this message),
``unknown_provider`` (also register a resource of a provider the engine does not have).
"""

import time

import pulumi
import pulumi_random as random

config = pulumi.Config()

delay = config.get_float("sleep")
if delay:
    time.sleep(delay)

message = config.get("fail")
if message:
    raise ValueError(message)

rid = random.RandomId("rid", byte_length=8, keepers={"k": config.get("keeper") or "one"})
rstr = random.RandomString("rstr", length=12, special=False)
rpw = random.RandomPassword("rpw", length=20)

if config.get_bool("unknown_provider"):
    pulumi.CustomResource("aws:s3/bucket:Bucket", "bucket", {})

pulumi.export("hex", rid.hex)
pulumi.export("str", rstr.result)
pulumi.export("password", rpw.result)
pulumi.export("token", pulumi.Output.secret(config.get("token") or "plain-token"))
pulumi.export("nested", {"list": [1, 2.5, True, None], "word": "hi"})
