"""A YAML file changed in place: only what changed is rewritten, so the user's comments, order and layout stay.

PyYAML reads and writes data, not text, so writing a hand-edited clusters.yaml back whole drops every comment in
it. Here the old text is composed into PyYAML's nodes, which carry their place in the text, and each changed
value, removed key or added entry becomes one small edit of that text. The result is used only when PyYAML
reads it back as exactly the data wanted; otherwise (aliases, flow style, unusual layouts) None, and the caller
writes the data whole.
"""
from __future__ import annotations

from typing import Any

from .fileio import dump_yaml, load_yaml

Edit = tuple[int, int, str]   # replace text[start:end] with the string


class _Unsure(Exception):
    """A change this module does not make by editing; the file is then written whole."""


def edited_yaml(text: str, new: Any) -> str | None:
    """`text` changed so that it reads as `new`, or None where that cannot be done by editing it."""
    import yaml
    try:
        old = load_yaml(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return None
        edits: list[Edit] = []
        _edit(text, root, old, new, edits)
    except (_Unsure, yaml.YAMLError):
        return None
    result = text
    for start, end, replacement in sorted(edits, reverse=True):
        result = result[:start] + replacement + result[end:]
    try:
        return result if load_yaml(result) == new else None
    except yaml.YAMLError:
        return None


def _edit(text: str, node: Any, old: Any, new: Any, edits: list[Edit]) -> None:
    import yaml
    if old == new:
        return
    block = getattr(node, "flow_style", None) is not True   # None: a list written without indent
    if isinstance(node, yaml.MappingNode) and block and isinstance(old, dict) and isinstance(new, dict):
        _edit_mapping(text, node, old, new, edits)
    elif isinstance(node, yaml.SequenceNode) and block and _identities(old) and _identities(new):
        _edit_list(text, node, old, new, edits)
    else:
        raise _Unsure


def _edit_mapping(text: str, node: Any, old: dict, new: dict, edits: list[Edit]) -> None:
    import yaml
    pairs = [(key.value, key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
    if len(pairs) != len(node.value) or any(key not in old for key, _, _ in pairs):
        raise _Unsure   # merge keys, complex keys
    for name, key, value in pairs:
        if name not in new:
            start = _line_start(text, key.start_mark.index)
            if text[start:key.start_mark.index].strip():
                raise _Unsure   # the key shares its line with a list's dash
            edits.append((start, _line_end(text, _end(value)), ""))
        elif old[name] != new[name]:
            made = len(edits)
            try:
                _edit(text, value, old[name], new[name], edits)
            except _Unsure:   # the whole value written again, after the key, keeping a comment at the line's end
                del edits[made:]
                edits.append((key.start_mark.index, _end(value),
                              _indented(dump_yaml({name: new[name]}).rstrip("\n"), key.start_mark.column)))
    added = {key: value for key, value in new.items() if key not in old}
    if added:
        if not pairs:
            raise _Unsure
        column = pairs[0][1].start_mark.column
        where = _line_end(text, _end(pairs[-1][2]))
        edits.append((where, where, _new_lines(dump_yaml(added), column, text, where)))


def _edit_list(text: str, node: Any, old: list, new: list, edits: list[Edit]) -> None:
    """A list whose entries are told apart (the clusters by their 'name', plain values by themselves): entries kept,
    changed, removed, or added at its end, in the order `new` has them."""
    if len(node.value) != len(old) or not node.value:
        raise _Unsure
    new_ids = [_identity(item) for item in new]
    kept = [_identity(item) for item in old if _identity(item) in new_ids]
    if new_ids[:len(kept)] != kept:
        raise _Unsure   # a new order
    by_id = {_identity(item): item for item in new}
    for item_node, item in zip(node.value, old):
        dash = text.rindex("-", 0, item_node.start_mark.index)
        if _identity(item) not in by_id:
            if text[_line_start(text, dash):dash].strip():
                raise _Unsure
            edits.append((_comments_above(text, _line_start(text, dash)), _line_end(text, _end(item_node)), ""))
        else:
            _edit(text, item_node, item, by_id[_identity(item)], edits)
    added = new[len(kept):]
    if added:
        dash = text.rindex("-", 0, node.value[0].start_mark.index)
        column = dash - _line_start(text, dash)
        if text[_line_start(text, dash):dash].strip():
            raise _Unsure
        where = _line_end(text, _end(node.value[-1]))
        edits.append((where, where, _new_lines(dump_yaml(added), column, text, where)))


def _comments_above(text: str, start: int) -> int:
    """Where the comment lines right above the line at `start` begin (no blank line between): they speak of the
    entry below them, and go with it (left, they would label the next one)."""
    while start > 0:
        above = _line_start(text, start - 1)
        if not text[above:start].lstrip().startswith("#"):
            break
        start = above
    return start


def _identity(item: Any) -> Any:
    return ("name", item["name"]) if isinstance(item, dict) else ("value", item)


def _identities(value: Any) -> bool:
    """Whether each entry of a list can be told apart: mappings by a 'name', plain values by themselves."""
    if not isinstance(value, list):
        return False
    if not all(isinstance(item, (str, int, float, bool))
               or (isinstance(item, dict) and isinstance(item.get("name"), str)) for item in value):
        return False
    return len({_identity(item) for item in value}) == len(value)


def _end(node: Any) -> int:
    """Where a node's own text ends: a block collection's end mark lies past the comments after it."""
    import yaml
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", None):
        return node.end_mark.index
    children = [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max((_end(child) for child in children), default=node.start_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """Just past the newline of the line holding `index` (the text's end where it has none)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _indented(block: str, column: int) -> str:
    """Lines written at `column`, the first one already standing there."""
    return ("\n" + " " * column).join(block.split("\n"))


def _new_lines(block: str, column: int, text: str, where: int) -> str:
    """Whole lines inserted at `where` (a line's start), at `column`."""
    lead = "" if where == 0 or text[where - 1] == "\n" else "\n"
    return lead + "".join(" " * column + line + "\n" for line in block.rstrip("\n").split("\n"))
