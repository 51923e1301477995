"""BG/NBD and Gamma-Gamma maximum-likelihood fits with analytic gradients, CLV, P(alive), next order date.

Time is in weeks and same-day orders are one transaction (the CDNOW / BTYD convention, see features.py).
Fits maximise the closed-form log-likelihoods of Fader, Hardie & Lee (2005) and Fader & Hardie (2013)
with L-BFGS-B on log-parameters, over the unique (x, t_x, T) triples weighted by their counts.

Expected next order date: the time t after as_of at which a customer who is still alive is expected to
have made one purchase, E[Y(t) | alive, x, T] = 1 (t_x drops out once alive is given). It is empty when
that never happens within five years. In the heuristic fallback it is last order + the customer's mean gap.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.features import AsOf, stable_order

if TYPE_CHECKING:
    from jobs.analytics.fit import StoredModel

WEEKS_PER_MONTH = 365.25 / 12 / 7
MAX_NEXT_ORDER_WEEKS = 5 * 365.25 / 7
BOUNDS = (1e-6, 1e6)
SANE = (1e-5, 1e5)  # a parameter this close to the optimiser's bounds means the fit ran away
Groups = tuple[list[np.ndarray], np.ndarray, np.ndarray]  # compress(x, T) (unique rows, counts, inverse) to share


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    converged: bool = True


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    converged: bool = True


def compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique rows of the given columns, their counts, and the inverse index back to the input rows."""
    n = len(columns[0])
    if n == 0:
        return [c[:0] for c in columns], np.zeros(0), np.zeros(0, dtype=np.int64)
    order = stable_order(*columns)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for column in columns:
        sorted_column = column[order]
        change[1:] |= sorted_column[1:] != sorted_column[:-1]
    group = np.cumsum(change) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    firsts = order[change]
    return [c[firsts] for c in columns], np.bincount(group).astype(float), inverse


def _wsum(weights: np.ndarray, values: np.ndarray) -> float:
    # Not np.dot: BLAS threads spin-wait on a busy 2-core box and made this 100x slower.
    return float((weights * values).sum())


def _per_x(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct transaction counts and the index into them; special functions of x run once per count."""
    if len(x) and x.min() >= 0 and x.max() < 1e6 and np.all(x == np.floor(x)):
        index = x.astype(np.int64)
        return np.arange(index.max() + 1, dtype=float), index
    return np.asarray(x, float), np.arange(len(x))


def bgnbd_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted BG/NBD log-likelihood and its gradient with respect to (log r, log alpha, log a, log b)."""
    r, alpha, a, b = np.exp(log_params)
    grid, at = _per_x(x)
    repeat = x > 0
    a12 = (gammaln(r + grid) - gammaln(r) + r * np.log(alpha) + betaln(a, b + grid) - betaln(a, b))[at]
    log_alpha_T, log_alpha_tx = np.log(alpha + T), np.log(alpha + t_x)
    a3 = -(r + x) * log_alpha_T
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, (np.log(a) - np.log(b + grid - 1))[at] - (r + x) * log_alpha_tx, -np.inf)
    lse = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - lse), np.exp(a4 - lse)
    ll = _wsum(weights, a12 + lse)
    d_r = ((digamma(r + grid) - digamma(r) + np.log(alpha))[at] - w3 * log_alpha_T - w4 * log_alpha_tx)
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_a = (digamma(a + b) - digamma(a + b + grid))[at] + w4 / a
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_b = np.where(grid > 0, 1.0 / (b + grid - 1), 0.0)
    d_b = ((digamma(a + b) + digamma(b + grid) - digamma(b) - digamma(a + b + grid))[at] - w4 * inv_b[at])
    grad = np.array([_wsum(weights, d) for d in (d_r, d_alpha, d_a, d_b)]) * np.array([r, alpha, a, b])
    return ll, grad


def gamma_gamma_log_likelihood(log_params: np.ndarray, x: np.ndarray, m: np.ndarray,
                               weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted Gamma-Gamma log-likelihood of mean spends m over x transactions, gradient on log params."""
    p, q, g = np.exp(log_params)
    grid, at = _per_x(x)
    px = p * x
    log_m, log_gmx = np.log(m), np.log(g + m * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        pg = p * grid
        by_x = gammaln(pg + q) - gammaln(pg) - gammaln(q) + pg * np.log(grid)
        psi_sum = digamma(pg + q)
        d_p_by_x = psi_sum - digamma(pg) + np.log(grid)  # undefined at x = 0, which is never indexed
    ll_i = by_x[at] + q * np.log(g) + (px - 1) * log_m - (px + q) * log_gmx
    d_p = x * (d_p_by_x[at] + log_m - log_gmx)
    d_q = (psi_sum - digamma(q))[at] + np.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    grad = np.array([_wsum(weights, d) for d in (d_p, d_q, d_g)]) * np.array([p, q, g])
    return _wsum(weights, ll_i), grad


def _maximise(loglik: Callable[[np.ndarray], tuple[float, np.ndarray]], starts: list[np.ndarray], total: float) -> tuple[np.ndarray, float, bool]:
    """Best L-BFGS-B optimum over the starting points (objective scaled per customer)."""
    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = loglik(theta)
        if not np.isfinite(ll):
            return 1e10, np.zeros_like(theta)
        return -ll / total, -grad / total

    bounds = [(np.log(BOUNDS[0]), np.log(BOUNDS[1]))] * len(starts[0])
    best: tuple[np.ndarray, float, bool] | None = None
    for start in starts:
        res = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
        # L-BFGS-B can stop on a line-search failure right at the optimum: accept a flat gradient.
        converged = bool(res.success or np.max(np.abs(res.jac)) < 1e-4)
        if np.isfinite(res.fun) and (best is None or -res.fun * total > best[1]):
            best = (res.x, -float(res.fun) * total, converged)
        # Further starts only guard against a bad first one; a sane converged fit is the optimum.
        if best is not None and best[2] and _sane(tuple(np.exp(best[0]))):
            break
    assert best is not None
    return best


def _sane(values: tuple[float, ...]) -> bool:
    return all(np.isfinite(v) and SANE[0] < v < SANE[1] for v in values)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    """Maximum-likelihood BG/NBD on compressed (x, t_x, T); converged=False if it failed or ran away."""
    (ux, ut, uT), weights, _ = compress(np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float))
    mean_rate = max(_wsum(weights, ux) / max(_wsum(weights, uT), 1e-9), 1e-3)
    starts = [np.log([1.0, 1.0 / mean_rate, 1.0, 3.0]), np.zeros(4), np.log([0.3, 0.3 / mean_rate, 0.8, 2.5])]
    theta, ll, converged = _maximise(lambda th: bgnbd_log_likelihood(th, ux, ut, uT, weights), starts,
                                     float(weights.sum()))
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BgNbdParams(r, alpha, a, b, ll, converged and _sane((r, alpha, a, b)))


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma on repeat customers (x > 0) with positive mean spend m."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    keep = (x > 0) & (m > 0)
    (ux, um), weights, _ = compress(x[keep], m[keep])
    mean_m = _wsum(weights, um) / max(float(weights.sum()), 1.0) if len(um) else 1.0
    starts = [np.log([2.0, 3.0, 2.0 * mean_m]), np.zeros(3), np.log([6.0, 4.0, 2.0 * mean_m])]
    theta, ll, converged = _maximise(lambda th: gamma_gamma_log_likelihood(th, ux, um, weights), starts,
                                     max(float(weights.sum()), 1.0))
    p, q, g = (float(v) for v in np.exp(theta))
    return GammaGammaParams(p, q, g, ll, converged and _sane((p, q, g)) and q > 1)


def _a_not_one(a: float) -> float:
    # (a + b - 1) / (a - 1) is 0/0 at a = 1; the limit is continuous, so step off it.
    return a + 1e-9 if abs(a - 1.0) < 1e-9 else a


def expected_purchases(params: BgNbdParams, t: np.ndarray | float) -> np.ndarray:
    """Unconditional E[X(t)] for a customer just acquired."""
    r, alpha, a, b = params.r, params.alpha, _a_not_one(params.a), params.b
    t = np.asarray(t, float)
    z = t / (alpha + t)
    return cast(np.ndarray, (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z)))


def purchase_pmf(params: BgNbdParams, t: float, n: int) -> float:
    """P(X(t) = n), Fader, Hardie & Lee (2005) eq. 8."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    q = alpha / (alpha + t)
    first = np.exp(betaln(a, b + n) - betaln(a, b) + gammaln(r + n) - gammaln(r) - gammaln(n + 1)
                   + r * np.log(q) + n * np.log1p(-q))
    if n == 0:
        return float(first)
    j = np.arange(n)
    partial = np.exp(gammaln(r + j) - gammaln(r) - gammaln(j + 1) + r * np.log(q) + j * np.log1p(-q)).sum()
    return float(first + np.exp(betaln(a + 1, b + n - 1) - betaln(a, b)) * (1 - partial))


def p_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T); 1 for customers without repeat purchases."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_odds = np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)


def expected_if_alive(params: BgNbdParams, t: np.ndarray | float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[Y(t) | alive at T, x]: expected purchases in (T, T + t] of a customer who is still active."""
    r, alpha, a, b = params.r, params.alpha, _a_not_one(params.a), params.b
    t, x, T = np.broadcast_arrays(*(np.asarray(v, float) for v in (t, x, T)))
    with np.errstate(all="ignore"):
        z = t / (alpha + T + t)
        value = ((a + b + x - 1) / (a - 1)
                 * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)))
        # Where the series fails numerically, the no-dropout Poisson-gamma mean is a safe upper bound.
        bound = (r + x) / (alpha + T) * t
        bad = ~np.isfinite(value) | (value < 0)
        return cast(np.ndarray, np.where(bad, bound, np.minimum(value, bound)))


def conditional_expected_purchases(params: BgNbdParams, t: float, x: np.ndarray, t_x: np.ndarray,
                                   T: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected repeat purchases in the next t weeks."""
    (ux, uT), _, inverse = compress(np.asarray(x, float), np.asarray(T, float))
    return cast(np.ndarray, p_alive(params, x, t_x, T) * expected_if_alive(params, t, ux, uT)[inverse])


def expected_spend(params: GammaGammaParams, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Gamma-Gamma E(M | x, m_x): the population mean pγ/(q-1) for customers without repeat purchases."""
    x, m = np.asarray(x, float), np.maximum(np.asarray(m, float), 0.0)
    p, q, g = params.p, params.q, params.gamma
    return np.where(x > 0, p * (g + m * x) / (p * x + q - 1), p * g / (q - 1))


def monthly_rate(annual_rate: float) -> float:
    """Monthly discount rate equivalent to an annual one."""
    monthly: float = (1.0 + annual_rate) ** (1.0 / 12.0) - 1.0  # typeshed: float ** float is Any
    return monthly


def clv_bgnbd(params: BgNbdParams, spend: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
              months: int, annual_rate: float, groups: Groups | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Discounted CLV over months and expected purchases over the horizon; hyp2f1 runs on unique (x, T) only."""
    (ux, uT), _, inverse = groups or compress(np.asarray(x, float), np.asarray(T, float))
    alive = p_alive(params, x, t_x, T)
    discount = 1.0 + monthly_rate(annual_rate)
    value = np.zeros(len(ux))
    previous = np.zeros(len(ux))
    for month in range(1, months + 1):
        current = expected_if_alive(params, month * WEEKS_PER_MONTH, ux, uT)
        value += np.maximum(current - previous, 0.0) / discount ** month
        previous = current
    return alive * value[inverse] * spend, alive * previous[inverse]


def next_order_weeks(params: BgNbdParams, x: np.ndarray, T: np.ndarray, iterations: int = 40, groups: Groups | None = None) -> np.ndarray:
    """Weeks t after T with E[Y(t) | alive] = 1, by bisection on unique (x, T); NaN beyond five years."""
    (ux, uT), _, inverse = groups or compress(np.asarray(x, float), np.asarray(T, float))
    low, high = np.zeros(len(ux)), np.full(len(ux), MAX_NEXT_ORDER_WEEKS)
    reachable = expected_if_alive(params, high, ux, uT) >= 1.0
    for _ in range(iterations):
        mid = (low + high) / 2
        above = expected_if_alive(params, mid, ux, uT) >= 1.0
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    return np.asarray(np.where(reachable, high, np.nan)[inverse])


def shop_gap(features: pd.DataFrame) -> float:
    """The shop's usual order gap in days: the median of the customers' positive gaps (90 without any)."""
    gaps = features["avg_days_between_orders"].to_numpy(dtype=float)
    positive = gaps[np.isfinite(gaps) & (gaps > 0)]
    return float(np.median(positive)) if len(positive) else 90.0


def heuristic_predictions(features: pd.DataFrame, months: int, annual_rate: float,
                          gap_days: float | None = None) -> pd.DataFrame:
    """Model-free fallback: an exponential decay of P(alive) in units of the customer's usual order gap
    (`gap_days`: the shop's, from a stored fit; else from these customers)."""
    gaps = features["avg_days_between_orders"].to_numpy(dtype=float)
    shop_gap_days = shop_gap(features) if gap_days is None else gap_days
    gap = np.maximum(np.where(np.isfinite(gaps) & (gaps > 0), gaps, shop_gap_days), 1.0)
    alive = np.exp(-features["days_since_last_order"].to_numpy(dtype=float).clip(min=0) / (2.0 * gap))
    spend = features["aov"].to_numpy(dtype=float).clip(min=0)
    month_days = 365.25 / 12
    discount = 1.0 + monthly_rate(annual_rate)
    factor = sum(1.0 / discount ** m for m in range(1, months + 1))
    purchases = alive * months * month_days / gap
    next_date = features["last_order_date"].dt.normalize() + pd.to_timedelta(np.round(gap), unit="D")
    return pd.DataFrame(
        {
            "p_alive": alive,
            "predicted_purchases": purchases,
            "predicted_aov": spend,
            "predicted_clv": alive * month_days / gap * spend * factor,
            "expected_next_order_date": next_date.to_numpy(),
        },
        index=features.index,
    )


@dataclass(frozen=True)
class Predictions:
    frame: pd.DataFrame  # p_alive, churn_risk, predicted_purchases, predicted_aov, predicted_clv, expected_next_order_date
    model: str
    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None


def _fit_problem(params: BgNbdParams | GammaGammaParams, name: str) -> str:
    values = ", ".join(f"{k}={v:.4g}" for k, v in vars(params).items() if k not in ("log_likelihood", "converged"))
    return f"{name} fit did not converge or gave absurd parameters ({values})"


def predict(features: pd.DataFrame, as_of: AsOf, settings: AnalyticsSettings,
            stored: "StoredModel | None" = None) -> Predictions:
    """Per-customer predictions from BG/NBD + Gamma-Gamma, or labelled heuristics when a fit is not trustworthy.
    With `stored`, the customers are scored with those models (nothing is fitted)."""
    today = pd.Timestamp(as_of).normalize()
    months, rate = settings.clv_horizon_months, settings.annual_discount_rate
    if stored is not None:
        if stored.model.startswith("heuristic") or stored.bgnbd is None:
            frame = heuristic_predictions(features, months, rate, stored.gap_days)
            return Predictions(_finish(frame), stored.model, stored.bgnbd, None)
        return _score(features, today, settings, stored.bgnbd, stored.gamma_gamma, stored.model)
    buyers = len(features)
    history = int((today - features["first_order_date"].min().normalize()).days) if buyers else 0
    bgnbd: BgNbdParams | None = None
    problem = ""
    if buyers < settings.min_buyers_for_fit:
        problem = f"too few buyers ({buyers} < {settings.min_buyers_for_fit})"
    elif history < settings.min_history_days:
        problem = f"too little history ({history} days < {settings.min_history_days})"
    else:
        bgnbd = fit_bgnbd(features["x"].to_numpy(), features["t_x"].to_numpy(), features["T"].to_numpy())
        if not bgnbd.converged:
            problem = _fit_problem(bgnbd, "BG/NBD")
    if problem:
        frame = heuristic_predictions(features, months, rate)
        return Predictions(_finish(frame), f"heuristic: {problem}", bgnbd, None)
    assert bgnbd is not None
    x, zbar = features["x"].to_numpy(dtype=float), features["zbar"].to_numpy(dtype=float)
    repeaters = int(((x > 0) & (zbar > 0)).sum())
    gamma_gamma: GammaGammaParams | None = None
    model = "bgnbd+gg"
    if repeaters < settings.min_repeat_buyers_for_spend_fit:
        model = f"bgnbd+heuristic spend: too few repeat buyers ({repeaters} < {settings.min_repeat_buyers_for_spend_fit})"
    else:
        gamma_gamma = fit_gamma_gamma(x, zbar)
        if not gamma_gamma.converged:
            model = f"bgnbd+heuristic spend: {_fit_problem(gamma_gamma, 'Gamma-Gamma')}"
    return _score(features, today, settings, bgnbd, gamma_gamma, model)


def _score(features: pd.DataFrame, today: pd.Timestamp, settings: AnalyticsSettings, bgnbd: BgNbdParams,
           gamma_gamma: GammaGammaParams | None, model: str) -> Predictions:
    """Every customer's predictions from fitted (or stored) models."""
    months, rate = settings.clv_horizon_months, settings.annual_discount_rate
    x, t_x, T = (features[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    zbar = features["zbar"].to_numpy(dtype=float)
    if gamma_gamma is not None and gamma_gamma.converged:
        spend = expected_spend(gamma_gamma, x, zbar)
    else:
        spend = features["aov"].to_numpy(dtype=float)
    groups = compress(x, T)  # one grouping of (x, T) for both
    clv, purchases = clv_bgnbd(bgnbd, spend, x, t_x, T, months, rate, groups)
    weeks = next_order_weeks(bgnbd, x, T, groups=groups)
    next_date = today + pd.to_timedelta(np.round(weeks * 7.0), unit="D")
    frame = pd.DataFrame(
        {
            "p_alive": p_alive(bgnbd, x, t_x, T),
            "predicted_purchases": purchases,
            "predicted_aov": spend,
            "predicted_clv": clv,
            "expected_next_order_date": np.asarray(next_date),
        },
        index=features.index,
    )
    return Predictions(_finish(frame), model, bgnbd, gamma_gamma)


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Never emit NaN, inf or negative values: clip probabilities and zero out broken money figures."""
    for column in ("predicted_purchases", "predicted_aov", "predicted_clv"):
        values = frame[column].to_numpy(dtype=float)
        frame[column] = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    alive = frame["p_alive"].to_numpy(dtype=float)
    frame["p_alive"] = np.clip(np.where(np.isfinite(alive), alive, 0.0), 0.0, 1.0)
    frame["churn_risk"] = 1.0 - frame["p_alive"]
    return frame[["p_alive", "churn_risk", "predicted_purchases", "predicted_aov", "predicted_clv",
                  "expected_next_order_date"]]
