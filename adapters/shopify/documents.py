"""The GraphQL documents in ./graphql, loaded once by name, and aliased batches built from them."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import parse, print_ast
from graphql.language import (
    DocumentNode,
    FieldNode,
    NameNode,
    OperationDefinitionNode,
    VariableDefinitionNode,
    VariableNode,
    visit,
    Visitor,
)

DIRECTORY = Path(__file__).resolve().parent / "graphql"


@cache
def load(name: str) -> str:
    """The text of graphql/<name>.graphql."""
    return (DIRECTORY / f"{name}.graphql").read_text(encoding="utf-8")


def names() -> list[str]:
    """Every document shipped with the adapter."""
    return sorted(p.stem for p in DIRECTORY.glob("*.graphql"))


class _Suffix(Visitor):
    """Rename every variable `$x` to `$x_<n>` inside one copied operation."""

    def __init__(self, suffix: str) -> None:
        super().__init__()
        self.suffix = suffix

    def enter_variable(self, node: VariableNode, *_args: object) -> VariableNode:
        return VariableNode(name=NameNode(value=f"{node.name.value}_{self.suffix}"))


@cache
def _operation(name: str) -> OperationDefinitionNode:
    document = parse(load(name))
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return operation


def batch(parts: list[tuple[str, str]], operation_name: str = "Batch") -> str:
    """One mutation running several shipped single-field mutations under aliases.

    `parts` is [(document name, alias)], e.g. [("tags_add", "a0"), ("metafields_set", "m0")]; the variables of
    each part are renamed `<var>_<alias>` so the caller sends them side by side in one request.
    """
    definitions: list[VariableDefinitionNode] = []
    selections: list[FieldNode] = []
    for name, alias in parts:
        renamed = visit(_operation(name), _Suffix(alias))
        definitions.extend(renamed.variable_definitions or ())
        for field in renamed.selection_set.selections:
            selections.append(
                FieldNode(
                    alias=NameNode(value=alias),
                    name=field.name,
                    arguments=field.arguments,
                    directives=field.directives,
                    selection_set=field.selection_set,
                )
            )
    first = _operation(parts[0][0])
    operation = OperationDefinitionNode(
        operation=first.operation,
        name=NameNode(value=operation_name),
        variable_definitions=tuple(definitions),
        directives=(),
        selection_set=type(first.selection_set)(selections=tuple(selections)),
    )
    return print_ast(DocumentNode(definitions=(operation,)))
