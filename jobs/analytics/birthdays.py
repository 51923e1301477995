"""Birthday segments from a per-customer birth date: this month, and within the next few days (today included)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.analytics.features import AsOf, as_of_day


def days_to_birthday(birth: pd.Series, as_of: AsOf) -> pd.Series:
    """Days from the as_of day to each customer's next birthday (0 = today); NaN without a birth date.

    A 29 February birthday falls on 28 February in other years (the last day of February either way)."""
    today = as_of_day(as_of)
    born = pd.to_datetime(birth, errors="coerce")
    known = born.notna().to_numpy()
    out = np.full(len(born), np.nan)
    if not known.any():
        return pd.Series(out, index=birth.index)
    month = born.dt.month.to_numpy()[known].astype(np.int64)
    day = born.dt.day.to_numpy()[known].astype(np.int64)

    def anniversary(year: int) -> np.ndarray:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        d = np.where((month == 2) & (day == 29) & (not leap), 28, day)
        text = np.char.add(np.char.add(f"{year:04d}-", np.char.zfill(month.astype(str), 2)),
                           np.char.add("-", np.char.zfill(d.astype(str), 2)))
        return text.astype("datetime64[D]")

    this_year = anniversary(today.year)
    next_year = anniversary(today.year + 1)
    day0 = np.datetime64(today.date(), "D")
    upcoming = np.where(this_year >= day0, this_year, next_year)
    out[known] = (upcoming - day0).astype(np.int64)
    return pd.Series(out, index=birth.index)


def birthday_segments(birth: pd.Series, as_of: AsOf, soon_days: int) -> dict[str, pd.Series]:
    """birthday_this_month and birthday_soon membership (False without a birth date)."""
    today = as_of_day(as_of)
    born = pd.to_datetime(birth, errors="coerce")
    this_month = pd.Series((born.dt.month == today.month).fillna(False).to_numpy(dtype=bool), index=birth.index)
    days = days_to_birthday(birth, as_of)
    soon = pd.Series(((days >= 0) & (days <= soon_days)).to_numpy(dtype=bool), index=birth.index)
    return {"birthday_this_month": this_month, "birthday_soon": soon}


def has_birth_dates(customers: pd.DataFrame) -> bool:
    """Whether any customer carries a birth date (the birthday segments are off otherwise)."""
    return "birth_date" in customers.columns and bool(pd.to_datetime(customers["birth_date"], errors="coerce")
                                                      .notna().any())
