"""Control groups for programs: a stable, random share of a segment held out, decided by a hash per customer.

A customer's arm is drawn once, from sha256(shop, program, customer), and kept from then on (the caller stores it):
changing the hold-out share later only affects customers who enter the program after the change, so nobody ever
flips between arms.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from connector.analytics_settings import Program, control_segment


def draw(shop: str, program: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed for one customer in one program of one shop."""
    digest = hashlib.sha256(f"{shop}\x1f{program}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_control(shop: str, program: str, customer_id: str, share: float) -> bool:
    """Whether a customer entering the program now is held out (draw below the hold-out share)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"hold-out share must be in [0, 1), got {share}")
    return draw(shop, program, customer_id) < share


def assign(shop: str, program: str, members: pd.Index, known: pd.Series, share: float) -> pd.Series:
    """Arm of every current member (True = control): the stored arm for known customers, a fresh draw for new ones."""
    members = pd.Index(members.astype(str))
    stored = known.astype(bool).reindex(members)
    drawn = [in_control(shop, program, c, share) if pd.isna(s) else bool(s) for c, s in zip(members, stored)]
    return pd.Series(np.array(drawn, dtype=bool), index=members)


def apply_programs(segments: pd.DataFrame, arms: pd.DataFrame, programs: Sequence[Program], shop: str,
                   as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move each program's control arm to `<segment>_control`; return the segments and the arms drawn now.

    `arms` holds the stored arms (program, customer_id, control, entered_at). A member without one is drawn now and
    enters as of `as_of`; a stored arm is kept even when the customer left the segment and came back.
    """
    out = segments.copy()
    fresh: list[pd.DataFrame] = []
    ids = out.index.astype(str)
    for program in programs:
        if program.segment not in out.columns:
            continue  # the segment is off: nobody is in the program, nobody in its control arm
        members = pd.Index(ids[out[program.segment].to_numpy(dtype=bool)])
        stored = arms.loc[arms["program"] == program.segment] if len(arms) else arms
        known = pd.Series(stored["control"].to_numpy(dtype=bool), index=stored["customer_id"].astype(str)) \
            if len(stored) else pd.Series(dtype=bool)
        arm = assign(shop, program.segment, members, known, program.holdout)
        new = members.difference(known.index)
        if len(new):
            fresh.append(pd.DataFrame({"program": program.segment, "customer_id": new.to_numpy(),
                                       "control": arm.reindex(new).to_numpy(dtype=bool), "entered_at": as_of}))
        held = ids.isin(arm.index[arm.to_numpy()])
        out[program.segment] = out[program.segment].to_numpy(dtype=bool) & ~held
        out[control_segment(program.segment)] = held
    drawn = pd.concat(fresh, ignore_index=True) if fresh else pd.DataFrame(
        {"program": pd.Series(dtype=object), "customer_id": pd.Series(dtype=object), "control": pd.Series(dtype=bool),
         "entered_at": pd.Series(dtype="datetime64[ns]")})
    return out, drawn
