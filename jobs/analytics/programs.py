"""Control groups for programs: a stable, random share of a segment held out, decided by a hash per customer.

A customer's arm is drawn once, from sha256(shop, program, customer), and kept from then on (the caller stores it):
changing the hold-out share later only affects customers who enter the program after the change, so nobody ever
flips between arms.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


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
