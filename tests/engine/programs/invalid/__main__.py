"""Test program: one valid resource plus the invalid resource named by config ``case``."""

import pulumi
import pulumi_random as random

config = pulumi.Config()
random.RandomUuid("ok")

CASES = {
    "integer_min_gt_max": lambda: random.RandomInteger("bad", min=10, max=1),
    "string_length_0": lambda: random.RandomString("bad", length=0),
    "string_mins_exceed_length": lambda: random.RandomString("bad", length=3, min_upper=2, min_numeric=2),
    "string_empty_charset": lambda: random.RandomString(
        "bad", length=5, special=False, upper=False, lower=False, numeric=False),
    "id_byte_length_0": lambda: random.RandomId("bad", byte_length=0),
    "bytes_length_0": lambda: random.RandomBytes("bad", length=0),
}
case = config.get("case")
if case:
    CASES[case]()
