"""Sandbox program: several random resources in one component, and a secret output."""

from __future__ import annotations

import pulumi
import pulumi_random as random


class Sandbox(pulumi.ComponentResource):
    """A named sandbox: a pet name, a password, an id and the tags in a random order."""

    def __init__(self, name: str, owner: str, words: int, password_length: int, special: bool,
                 tags: list[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("burner:index:Sandbox", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pet = random.RandomPet(f"{name}-pet", prefix=owner, length=words, opts=child)
        self.password = random.RandomPassword(f"{name}-password", length=password_length,
                                              special=special, opts=child)
        self.id = random.RandomId(f"{name}-id", byte_length=4, opts=child)
        self.tags = random.RandomShuffle(f"{name}-tags", inputs=tags, opts=child)
        self.register_outputs({"pet": self.pet.id, "id": self.id.hex})


def _bounded(config: pulumi.Config, key: str, default: int, low: int, high: int) -> int:
    value = config.get_int(key)
    value = default if value is None else value
    if not low <= value <= high:
        raise pulumi.RunError(f"config {key!r} must be from {low} to {high}, got {value}")
    return value


def main() -> None:
    """Read the config the Pulumi.yaml declares and build one sandbox."""
    config = pulumi.Config()
    tags = config.get_object("tags")
    sandbox = Sandbox(
        "sandbox",
        owner=config.require("owner"),
        words=_bounded(config, "words", 2, 1, 5),
        password_length=_bounded(config, "password_length", 20, 8, 64),
        special=bool(config.get_bool("special")),
        tags=[str(tag) for tag in tags] if isinstance(tags, list) else ["blue", "green", "red"],
    )
    access_key = config.require_secret("access_key")
    pulumi.export("name", sandbox.pet.id)
    pulumi.export("id", sandbox.id.hex)
    pulumi.export("tags", sandbox.tags.results)
    pulumi.export("password", sandbox.password.result)
    pulumi.export("access_key_length", access_key.apply(len))


main()
