"""Reading a JSON object whose big array is turned into records one element at a time.

json.loads of a cached listing (7 MB for 500 environments) builds every package's dict before any of them
becomes a record: tens of MB that exist only to be thrown away, and the allocator keeps much of that peak
(more when a thread of its own does the reading). Here the array's elements are decoded as the converter
asks for them, so only one element's dicts exist at a time. The text is the same JSON as ever: this reads
any JSON object json.loads reads, in any key order and spacing, and refuses what it refuses.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator, Mapping

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    """Where the JSON whitespace from `at` on ends."""
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _expect(text: str, at: int, mark: str, what: str) -> None:
    if not text.startswith(mark, at):
        raise json.JSONDecodeError(f"Expecting {what}", text, at)


class _Elements(Iterator[Any]):
    """The elements of the array whose "[" is at text[at], each decoded when it is asked for; `end`: where
    the text goes on after the array, once every element has been asked for (finish)."""

    def __init__(self, text: str, at: int) -> None:
        self.text, self.at, self.first, self.end = text, _skip(text, at + 1), True, -1

    def __next__(self) -> Any:
        text = self.text
        if self.end >= 0:
            raise StopIteration
        if text.startswith("]", self.at):
            self.end = self.at + 1
            raise StopIteration
        if not self.first:
            _expect(text, self.at, ",", "',' delimiter")
            self.at = _skip(text, self.at + 1)
        self.first = False
        value, after = _DECODER.raw_decode(text, self.at)
        self.at = _skip(text, after)
        return value

    def finish(self) -> int:
        """Decode what the converter left, and say where the array ends."""
        for _ in self:
            pass
        return self.end


def load_object(text: str, pieces: Mapping[str, Callable[[Iterator[Any]], Any]]) -> dict[str, Any]:
    """The JSON object in `text`, as json.loads gives it, except that each member named in `pieces` whose
    value is an array holds what its callable makes of that array's elements, which it is given one at a
    time (an iterator). A member named in `pieces` that is not an array is an error. Raises ValueError
    (json.JSONDecodeError) for what is not a JSON object."""
    found: dict[str, Any] = {}
    at = _skip(text, 0)
    _expect(text, at, "{", "'{'")
    at = _skip(text, at + 1)
    while not text.startswith("}", at):
        if found:
            _expect(text, at, ",", "',' delimiter")
            at = _skip(text, at + 1)
        _expect(text, at, '"', "property name enclosed in double quotes")
        key, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        _expect(text, at, ":", "':' delimiter")
        at = _skip(text, at + 1)
        if key in pieces:
            _expect(text, at, "[", f"an array for {key!r}")
            elements = _Elements(text, at)
            found[key] = pieces[key](elements)
            at = elements.finish()
        else:
            found[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
    at = _skip(text, at + 1)
    if at != len(text):
        raise json.JSONDecodeError("Extra data", text, at)
    return found
