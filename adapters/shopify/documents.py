"""The GraphQL documents in ./graphql, loaded once by name, and aliased batches built from them."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from graphql import parse, print_ast
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    NameNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
    visit,
    Visitor,
)

DIRECTORY = Path(__file__).resolve().parent / "graphql"
FRAGMENTS = "fragments"  # graphql/fragments.graphql: selections shared by documents, not a document itself


@cache
def load(name: str) -> str:
    """The text of graphql/<name>.graphql, with the fields of each shared fragment written in place of its spread."""
    text = (DIRECTORY / f"{name}.graphql").read_text(encoding="utf-8")
    inline = _Inline()
    document = visit(parse(text), inline)
    return print_ast(document) if inline.changed else text


def names() -> list[str]:
    """Every document shipped with the adapter."""
    return sorted(p.stem for p in DIRECTORY.glob("*.graphql") if p.stem != FRAGMENTS)


@cache
def _fragments() -> dict[str, FragmentDefinitionNode]:
    document = parse((DIRECTORY / f"{FRAGMENTS}.graphql").read_text(encoding="utf-8"))
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _Inline(Visitor):
    """Replace each `...Name` spread by the fields of fragment Name: Shopify's bulk query checks (connections,
    nesting, `id` under a nested connection's parent) then see plain fields, as in a document written out."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = False

    def leave_selection_set(self, node: SelectionSetNode, *_args: object) -> SelectionSetNode | None:
        if not any(isinstance(s, FragmentSpreadNode) for s in node.selections):
            return None
        selections: list[SelectionNode] = []
        for selection in node.selections:
            if isinstance(selection, FragmentSpreadNode):
                selections.extend(_fragments()[selection.name.value].selection_set.selections)
            else:
                selections.append(selection)
        self.changed = True
        return SelectionSetNode(selections=tuple(selections))


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
