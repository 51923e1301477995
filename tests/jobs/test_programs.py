"""Control groups and lift, on simulated programs with a known effect."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.analytics.lift import mean_difference, program_lift, rate_difference, sample_size
from jobs.analytics.programs import assign, draw, in_control
from tests.support.btyd import START, program_outcomes

AS_OF = START + pd.Timedelta(days=200)


def test_the_hold_out_is_stable_and_near_its_share() -> None:
    ids = [str(i) for i in range(20000)]
    held = [in_control("shop.myshopify.com", "vip", c, 0.10) for c in ids]
    assert 0.09 < np.mean(held) < 0.11
    assert held == [in_control("shop.myshopify.com", "vip", c, 0.10) for c in ids]  # same answer every recompute
    # Another program or another shop draws independently.
    other = [in_control("shop.myshopify.com", "winback", c, 0.10) for c in ids]
    assert np.mean(np.array(held) & np.array(other)) < 0.02
    assert draw("a.myshopify.com", "vip", "1") != draw("b.myshopify.com", "vip", "1")


def test_no_customer_flips_arms_when_the_share_changes() -> None:
    first = assign("s", "vip", pd.Index([str(i) for i in range(1000)]), pd.Series(dtype=bool), 0.10)
    later_members = pd.Index([str(i) for i in range(500, 1500)])
    second = assign("s", "vip", later_members, first, 0.50)
    kept = later_members[:500]
    assert (second[kept] == first[kept]).all()  # stored arms win over the new share
    newcomers = second[later_members[500:]]
    assert 0.4 < newcomers.mean() < 0.6  # new members drawn at the new share


def test_a_bad_share_is_refused() -> None:
    with pytest.raises(ValueError):
        in_control("s", "vip", "1", 1.0)


def test_a_known_effect_is_detected_within_its_interval() -> None:
    arms, orders = program_outcomes(20000, base_rate=0.20, effect=0.05, control_share=0.10, seed=11)
    lift = program_lift(arms, orders, AS_OF, 0.10)
    d = lift.repeat_rate
    assert d.low <= 0.05 <= d.high and d.low > 0  # covers the truth, excludes zero
    assert lift.control_customers + lift.program_customers == 20000
    assert 1800 < lift.control_customers < 2200
    assert lift.orders_per_customer.low <= 0.05 <= lift.orders_per_customer.high
    assert lift.revenue_per_customer.difference == pytest.approx(50 * lift.orders_per_customer.difference)
    assert lift.needed_for_5_points is not None and lift.needed_for_5_points < 20000


def test_with_no_effect_the_interval_covers_zero_at_the_stated_rate() -> None:
    covered = 0
    trials = 400
    for seed in range(trials):
        arms, orders = program_outcomes(600, base_rate=0.3, effect=0.0, control_share=0.2, seed=seed)
        control = arms["control"].to_numpy()
        bought = arms["customer_id"].isin(orders.loc[orders["amount"] == 50.0, "customer_id"]).to_numpy()
        d = rate_difference(int(bought[~control].sum()), int((~control).sum()), int(bought[control].sum()),
                            int(control.sum()))
        covered += d.low <= 0 <= d.high
    # 95% stated; with 400 trials the observed rate lies within about 2.2 points of it 95% of the time.
    assert 0.925 <= covered / trials <= 0.975


def test_bootstrap_interval_of_a_mean_difference() -> None:
    rng = np.random.default_rng(0)
    d = mean_difference(rng.normal(11, 2, 3000), rng.normal(10, 2, 800))
    assert d.low < 1.0 < d.high and d.high - d.low < 0.5
    assert d.method == "bootstrap"


def test_sample_size_matches_the_textbook_figure() -> None:
    # Equal arms, 20% vs 25%, alpha 5% two-sided, power 80%: 1,094 per arm (Fleiss, without continuity correction).
    assert sample_size(0.20, 0.05, control_share=0.5) == 2 * 1094
    # A 10% control arm needs more customers in total than equal arms.
    assert sample_size(0.20, 0.05, control_share=0.10) > 2 * 1094
    with pytest.raises(ValueError):
        sample_size(0.2, 0.0)


def test_an_arm_that_enters_after_as_of_is_not_in_the_lift_yet() -> None:
    arms, orders = program_outcomes(2000, base_rate=0.20, effect=0.05, control_share=0.10, seed=3)
    before = program_lift(arms, orders, AS_OF, 0.10)
    # A run dated later drew arms for newcomers; as of today they have had no time in the program.
    later = pd.DataFrame({"customer_id": [f"late{i}" for i in range(500)], "control": [i % 2 == 0 for i in range(500)],
                          "entered_at": AS_OF + pd.Timedelta(days=45)})
    lift = program_lift(pd.concat([arms, later], ignore_index=True), orders, AS_OF, 0.10)
    assert (lift.program_customers, lift.control_customers) == (before.program_customers, before.control_customers)
    assert lift.repeat_rate.difference == before.repeat_rate.difference
