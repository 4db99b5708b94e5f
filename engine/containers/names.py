"""Container names: Docker's rule for what is allowed, and a generator for the rest.

Generated names are `<adjective>_<surname>`: the adjectives and the people (engineers
and scientists whose work made computing, networking and operating systems) are our
own lists.
"""

from __future__ import annotations

import random
import re

from engine.errors import InvalidParameter

# Docker's rule needs two characters at least; like Podman we also accept one (`--name x`).
_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

ADJECTIVES = (
    "agile", "amber", "ardent", "balmy", "bold", "brave", "brisk", "calm", "candid", "cheery",
    "clever", "cosmic", "crisp", "dapper", "daring", "deft", "eager", "earnest", "fervent",
    "fluent", "frank", "gallant", "gentle", "glad", "golden", "hardy", "hearty", "humble",
    "jolly", "keen", "kind", "lively", "lucid", "mellow", "merry", "mighty", "nimble", "noble",
    "patient", "placid", "plucky", "polite", "proud", "quiet", "quirky", "rapid", "ready",
    "robust", "rosy", "serene", "sharp", "shiny", "silent", "snug", "solid", "spry", "steady",
    "stoic", "sturdy", "sunny", "swift", "tender", "tidy", "trusty", "upbeat", "valiant",
    "vivid", "warm", "wise", "witty", "zany", "zealous",
)

PEOPLE = (
    "allen", "amdahl", "babbage", "backus", "baran", "bartik", "bell", "berners_lee", "borg",
    "cerf", "clark", "codd", "conway", "corbato", "dijkstra", "easley", "engelbart", "estrin",
    "floyd", "goldberg", "hamming", "hamilton", "hoare", "hopper", "huffman", "kahn", "kay",
    "kernighan", "knuth", "lamport", "lampson", "liskov", "lovelace", "mccarthy", "metcalfe",
    "milner", "minsky", "moore", "naur", "neumann", "noyce", "perlman", "pike", "postel",
    "ritchie", "rivest", "saltzer", "shamir", "shannon", "shaw", "sutherland", "tanenbaum",
    "thompson", "torvalds", "turing", "wheeler", "wilkes", "wirth", "wozniak", "zuse",
)


def validate(name: str) -> str:
    """The name without a leading slash, or InvalidParameter with Docker's message."""
    if not _VALID.match(name):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


def generate(taken: set[str] | frozenset[str] | dict[str, str]) -> str:
    """A fresh random name not in `taken`."""
    rng = random.SystemRandom()
    for attempt in range(1000):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(PEOPLE)}"
        if attempt > 10:
            name += str(rng.randint(0, 99))
        if name not in taken:
            return name
    raise RuntimeError("could not find a free container name")
