"""Pet-name generator for RandomPet: adverbs, an adjective and an animal name."""

from __future__ import annotations

import secrets

ADVERBS: tuple[str, ...] = (
    "barely", "boldly", "briefly", "calmly", "closely", "deeply", "eagerly", "easily",
    "evenly", "fairly", "firmly", "freely", "gently", "gladly", "greatly", "happily",
    "highly", "kindly", "lightly", "loudly", "mainly", "merely", "mostly", "neatly",
    "nicely", "openly", "partly", "plainly", "quickly", "quietly", "rarely", "really",
    "safely", "sharply", "simply", "slowly", "smoothly", "softly", "surely", "truly",
    "vastly", "warmly", "wildly", "wisely",
)

ADJECTIVES: tuple[str, ...] = (
    "able", "amber", "brave", "bright", "busy", "calm", "clever", "cosmic", "crisp",
    "daring", "eager", "fancy", "fast", "fluffy", "frank", "fresh", "gentle", "golden",
    "grand", "happy", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucky",
    "mellow", "merry", "mighty", "noble", "polite", "proud", "quick", "quiet", "rapid",
    "sharp", "shiny", "smart", "steady", "sunny", "swift", "tidy", "vivid", "witty",
)

NAMES: tuple[str, ...] = (
    "badger", "beaver", "bison", "camel", "cheetah", "cobra", "condor", "coyote", "crane",
    "dingo", "dolphin", "eagle", "falcon", "ferret", "finch", "gazelle", "gecko", "gopher",
    "heron", "ibex", "jackal", "koala", "lemur", "lynx", "marmot", "meerkat", "mole",
    "moose", "newt", "ocelot", "otter", "owl", "panda", "pelican", "puffin", "quail",
    "rabbit", "raven", "salmon", "seal", "sloth", "tapir", "toucan", "walrus", "wombat",
    "yak", "zebra",
)


def generate(length: int, separator: str) -> str:
    """Return `length` words: adverbs, then an adjective (if length >= 2), then a name."""
    words = [secrets.choice(ADVERBS) for _ in range(length - 2)]
    if length >= 2:
        words.append(secrets.choice(ADJECTIVES))
    words.append(secrets.choice(NAMES))
    return separator.join(words)
