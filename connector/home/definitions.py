"""What each KPI on the app home means, in the merchant's words (shown next to the number)."""
from __future__ import annotations

# (key in the KPI document, label, format, definition). Formats: count, money, percent.
KPIS: tuple[tuple[str, str, str, str], ...] = (
    ("customers", "Customers", "count", "Customers with at least one valid order (not cancelled, test or fully "
                                        "refunded) up to the analysis day."),
    ("orders", "Orders", "count", "Valid orders of those customers."),
    ("revenue", "Net revenue", "money", "What those orders brought in, after refunds."),
    ("repeat_purchase_rate", "Repeat purchase rate", "percent",
     "Share of customers with two or more valid orders."),
    ("retention_rate", "Retention", "percent",
     "Of the customers who ordered in the previous period (see period), the share who ordered again in the last."),
    ("churn_rate", "Churn", "percent", "1 − retention: previous-period customers who did not order in the last one."),
    ("average_order_value", "Average order value", "money", "Net revenue divided by the number of orders."),
    ("repeat_customer_revenue_share", "Revenue from repeat customers", "percent",
     "Share of net revenue spent by customers with two or more orders."),
    ("average_clv", "Average predicted CLV", "money",
     "Mean predicted net spend per customer over the CLV horizon, discounted."),
    ("median_clv", "Median predicted CLV", "money", "The middle customer's predicted CLV (half are above)."),
)

SEGMENTS: dict[str, str] = {
    "first_time": "Exactly one valid order.",
    "repeat": "At least min_orders valid orders.",
    "big_spender": "Top top_percent % by net amount spent.",
    "high_aov": "Top top_percent % by average order value.",
    "discount_shopper": "At least min_share of orders used a discount (and min_orders orders).",
    "full_price": "Never used a discount (min_orders orders or more).",
    "vip": "Top top_percent % by predicted CLV.",
    "at_risk": "Repeat customers (min_orders) whose probability of being active is at most max_p_alive.",
    "lapsed": "Repeat customers (min_orders) with no order for days days.",
    "cart_abandoner": "Left a checkout unfinished in the last days days.",
    "holiday_buyer": "Ordered in the holiday season.",
    "due_to_reorder": "Expected next order within days days, if still likely active (min_p_alive).",
    "rfm_groups": "One segment per RFM group (Champions, Loyal, At risk, …).",
}


def fmt(value: object, kind: str, currency: str | None = None) -> str:
    """A KPI for display; a missing value is a dash, never zero."""
    if value is None or not isinstance(value, (int, float)):
        return "—"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "money":
        return f"{value:,.2f}" + (f" {currency}" if currency else "")
    return f"{value:,.0f}"
