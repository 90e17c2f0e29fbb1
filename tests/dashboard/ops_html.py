"""Reading the overview, attention and workflow pages in tests: the links (with their
attributes and text) inside an element found by id, as a browser would see them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset({"br", "input", "meta", "link", "img", "hr", "col", "source", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def walk(self) -> list[Node]:
        found = [self]
        for child in self.children:
            if isinstance(child, Node):
                found.extend(child.walk())
        return found

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}  # class_, data_x
        return [n for n in self.walk()
                if (tag is None or n.tag == tag)
                and all(n.attrs.get(k) == v for k, v in wanted.items())]  # fmt: skip

    def by_id(self, element_id: str) -> Node:
        (found,) = [n for n in self.walk() if n.attrs.get("id") == element_id]
        return found

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for place in range(len(self.stack) - 1, 0, -1):
            if self.stack[place].tag == tag:
                del self.stack[place:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def script_json(text: str, element_id: str) -> object:
    """The JSON a page embeds in ``<script type="application/json" id=...>``."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>',
                      text, re.S)  # fmt: skip
    assert found, f"no JSON {element_id} in the page"
    return json.loads(found.group(1))
