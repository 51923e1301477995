"""Write-back plan types: what to change on each customer or product, and what the platform accepted."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metafield:
    """A typed value in our namespace; `value` is already the platform's string form (lists JSON-encoded)."""

    key: str
    type: str  # single_line_text_field | number_integer | number_decimal | date | json | list.product_reference | ...
    value: str


@dataclass(frozen=True)
class OwnerChange:
    """The difference between what we want on one owner and what we last wrote there."""

    owner_kind: str  # "customer" | "product"
    owner_id: str  # platform id
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    set_metafields: tuple[Metafield, ...] = ()
    delete_metafields: tuple[str, ...] = ()  # keys

    @property
    def empty(self) -> bool:
        return not (self.add_tags or self.remove_tags or self.set_metafields or self.delete_metafields)


@dataclass(frozen=True)
class WritePlan:
    """Every change for one shop in one run; an empty plan makes no API call."""

    changes: tuple[OwnerChange, ...] = ()

    def __len__(self) -> int:
        return len(self.changes)


@dataclass
class WriteResult:
    """What the platform accepted (exactly what gets recorded as written) and what failed."""

    accepted: list[OwnerChange] = field(default_factory=list)
    failed: list[tuple[OwnerChange, str]] = field(default_factory=list)
    skipped: list[tuple[OwnerChange, str]] = field(default_factory=list)  # not writable there (WooCommerce guests)
    calls: int = 0
    cost: float = 0.0
