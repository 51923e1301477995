"""The program_arm table's owner: a customer's arm in a program is stored once and never changed."""
from __future__ import annotations

from datetime import timezone

import pandas as pd

from connector.db import ProgramArmRow


async def save_arms(shop_id: int, drawn: pd.DataFrame) -> int:
    """Store newly drawn arms (program, customer_id, control, entered_at as naive UTC); an arm stored already wins."""
    rows = [ProgramArmRow(shop_id=shop_id, program=str(p), customer_id=str(c), control=bool(k),
                          entered_at=pd.Timestamp(at).to_pydatetime().replace(tzinfo=timezone.utc))
            for p, c, k, at in zip(drawn["program"], drawn["customer_id"], drawn["control"], drawn["entered_at"])]
    await ProgramArmRow.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
    return len(rows)


async def arms(shop_id: int, program: str) -> list[tuple[str, bool]]:
    """(customer id, control) of every customer who entered a program."""
    found = await ProgramArmRow.filter(shop_id=shop_id, program=program).values_list("customer_id", "control")
    return [(str(c), bool(k)) for c, k in found]
