"""Parse YAML into nodes that remember their line, so every error can point at it.

PyYAML's `SafeLoader` composes a node graph with marks; we walk that graph ourselves instead of
constructing plain Python objects, so validators can report `file:line` for any field. Only the
safe tags are resolved (SafeLoader's resolver); merge keys and deep alias expansion are refused
because they make the line of a value ambiguous (and aliases can blow up in size).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from instpy.runtime.errors import ConfigError

# Bounds a hostile or broken file (alias bombs, enormous documents) before validation starts.
MAX_NODES = 100_000

@dataclass(frozen=True)
class Node:
    """One YAML value with its position.

    `value` is a `dict[str, Node]` for mappings (keys are the key's source text), a
    `list[Node]` for sequences, else the scalar resolved by SafeLoader.
    """

    value: object
    line: int
    path: str
    file: str
    key_line: int = 0  # line of the mapping key holding this value (0 at the top)

    def error(self, problem: str, fix: str, field: str | None = None) -> ConfigError:
        """A ConfigError located at this node."""
        return ConfigError(self.file, self.line, field or self.path or "<document>", problem, fix)

    def key_error(self, problem: str, fix: str) -> ConfigError:
        """A ConfigError about the key that holds this node (an unknown key, say)."""
        return ConfigError(self.file, self.key_line or self.line, self.path or "<document>",
                           problem, fix)


def parse_yaml(text: str, file: str) -> Node | None:
    """Parse `text` into a Node tree; None for an empty document."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(file, line, "<yaml>", f"YAML syntax error: {problem}",
                              "correct the YAML syntax at that line (indentation, quotes, "
                              "colons)") from None
        except yaml.YAMLError as exc:
            raise ConfigError(file, 1, "<yaml>", f"YAML error: {exc}",
                              "save the file as plain UTF-8 YAML") from None
        if root is None:
            return None
        return _Walker(loader, file).walk(root, "")
    finally:
        loader.dispose()


class _Walker:
    """Converts composed yaml nodes to `Node`s; keeps a count to bound the work."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.count = 0

    def walk(self, node: yaml.Node, path: str, key_line: int = 0) -> Node:
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_NODES:
            raise ConfigError(self.file, line, path or "<document>",
                              f"the document has more than {MAX_NODES} values",
                              "split it or remove repeated aliases")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(self.file, key_node.start_mark.line + 1, path or "<document>",
                                      "a mapping key must be a plain value",
                                      "use a string key such as `resource:`")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError(self.file, key_node.start_mark.line + 1, path or "<document>",
                                      "YAML merge keys (<<) are not supported",
                                      "write the keys out in full")
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in out:
                    raise ConfigError(self.file, key_node.start_mark.line + 1, child,
                                      "duplicate key (YAML would silently keep only the last)",
                                      "remove one of the two entries")
                out[key] = self.walk(value_node, child, key_node.start_mark.line + 1)
            return Node(out, line, path, self.file, key_line)
        if isinstance(node, yaml.SequenceNode):
            items = [self.walk(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return Node(items, line, path, self.file, key_line)
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ConfigError(self.file, line, path or "<document>", f"unreadable value: {exc}",
                              "quote the value as a string") from None
        if not isinstance(value, (str, int, float, bool, type(None))):
            # Timestamps and binary are valid safe YAML but mean nothing to governance.
            value = str(node.value)
        return Node(value, line, path, self.file, key_line)
