"""The listing stage's pure helpers."""

from __future__ import annotations

from xnatsync.pull.listing import alternate


def test_alternate_takes_turns_then_the_rest_of_the_longer() -> None:
    assert alternate(["e1", "e2", "e3"], ["s1"]) == ["e1", "s1", "e2", "e3"]
    assert alternate(["e1"], ["s1", "s2", "s3"]) == ["e1", "s1", "s2", "s3"]
    assert alternate([], ["s1", "s2"]) == ["s1", "s2"]
    assert alternate(["e1", "e2"], []) == ["e1", "e2"]
