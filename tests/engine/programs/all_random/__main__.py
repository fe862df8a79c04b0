"""Test program: one resource of every random type, all outputs exported."""

import pulumi
import pulumi_random as random

rid = random.RandomId("rid", byte_length=6, prefix="p-")
pulumi.export("id", {"id": rid.id, "hex": rid.hex, "dec": rid.dec, "b64_url": rid.b64_url,
                     "b64_std": rid.b64_std, "byte_length": rid.byte_length})

rstr = random.RandomString("rstr", length=30, special=True, override_special="_%",
                           min_upper=3, min_numeric=4, min_special=2)
pulumi.export("string", {"id": rstr.id, "result": rstr.result, "length": rstr.length})

rstr_digits = random.RandomString("digits", length=10, upper=False, lower=False, special=False)
pulumi.export("digits", rstr_digits.result)

rpw = random.RandomPassword("rpw", length=24, min_lower=2)
pulumi.export("password", rpw.result)
# Secrets nested in a plain export stay secret individually.
pulumi.export("password_meta", {"id": rpw.id, "bcrypt": rpw.bcrypt_hash})

pulumi.export("uuid", {"id": random.RandomUuid("uuid").id, "result": random.RandomUuid("uuid-b").result})
uuid4 = random.RandomUuid4("uuid4")
pulumi.export("uuid4", {"id": uuid4.id, "result": uuid4.result})
uuid7 = random.RandomUuid7("uuid7")
pulumi.export("uuid7", {"id": uuid7.id, "result": uuid7.result})

rint = random.RandomInteger("rint", min=-5, max=5)
pulumi.export("integer", {"id": rint.id, "result": rint.result, "min": rint.min, "max": rint.max})
pinned = random.RandomInteger("pinned", min=7, max=7)
pulumi.export("pinned", pinned.result)
# The same seed gives the same value.
seeded = [random.RandomInteger(f"seeded-{n}", min=1, max=10**9, seed="fixed-seed") for n in "ab"]
pulumi.export("seeded", [r.result for r in seeded])

pet = random.RandomPet("pet", length=3, separator="_", prefix="my")
pulumi.export("pet", {"id": pet.id, "length": pet.length, "separator": pet.separator})
pulumi.export("pet_default", random.RandomPet("pet-default").id)

items = ["a", "b", "c", "d", "e"]
shuffle = random.RandomShuffle("shuffle", inputs=items)
pulumi.export("shuffle", {"id": shuffle.id, "results": shuffle.results})
pulumi.export("shuffle_two", random.RandomShuffle("shuffle-two", inputs=items, result_count=2).results)
many = random.RandomShuffle("shuffle-many", inputs=["x", "y", "z"], result_count=7)
pulumi.export("shuffle_many", many.results)

rbytes = random.RandomBytes("rbytes", length=16)
pulumi.export("bytes_base64", rbytes.base64)
pulumi.export("bytes_hex", rbytes.hex)
pulumi.export("bytes_id", rbytes.id)
