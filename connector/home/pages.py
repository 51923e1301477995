"""The app home's routes: overview (sync + KPIs), charts, segments, customers, recommendations, progress JSON."""
from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from connector import queue, shop_settings
from connector.analytics_settings import SLUG
from connector.home import data, svg
from connector.home.auth import Refused, Session, authenticate
from connector.home.definitions import KPIS, SEGMENTS
from connector.home.render import headers, page, refused, url
from connector.home.settings_page import csrf_ok, settings_get, settings_post
from connector.services import Services

View = Callable[[Request, Session], Awaitable[Response]]


def guarded(view: View) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate first (GET: token or platform session); a refusal shows why and nothing of any shop."""

    @wraps(view)
    async def handler(request: Request) -> Response:
        try:
            session = await authenticate(request)
        except Refused as exc:
            if request.url.path.endswith((".json", "/progress")):
                return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=headers(None))
            return refused(exc)
        return await view(request, session)

    return handler


def _kinds(request: Request, session: Session) -> tuple[str, ...]:
    services: Services = request.app.state.services
    try:
        return tuple(services.adapter(session.shop.platform).sync_kinds)
    except KeyError:
        return ()


@guarded
async def overview(request: Request, session: Session) -> Response:
    shop_id = session.shop_id
    kpis, computed_at = await data.document(shop_id, "kpis")
    model, _ = await data.document(shop_id, "model")
    values = kpis.get("kpis") or {}
    rows = [{"key": key, "label": label, "value": values.get(key), "kind": kind, "definition": definition}
            for key, label, kind, definition in KPIS]
    return page(request, session, "overview.html", "overview", progress=await data.progress(session.shop,
                                                                                             _kinds(request, session)),
                kpis=rows, period=values.get("period_days"), model=model, computed_at=computed_at,
                failed=await data.failed_events(shop_id), currency=session.shop.currency)


@guarded
async def progress(request: Request, session: Session) -> Response:
    return JSONResponse(await data.progress(session.shop, _kinds(request, session)), headers=headers(session))


async def replay(request: Request) -> Response:
    """POST: the shop's failed deliveries back to pending, each queued again."""
    form = dict(await request.form())
    try:
        session = await authenticate(request, {k: str(v) for k, v in form.items()})
    except Refused as exc:
        return refused(exc)
    if not csrf_ok(request, session, str(form.get("csrf", ""))):
        return refused(Refused(403, "the form expired or came from another site; reload the page"))
    services: Services = request.app.state.services
    rows = await data.replay_failed(session.shop_id)
    for inbox_id, attempts in rows:
        await services.enqueue(queue.APPLY_EVENT, inbox_id, job_id=queue.apply_id(inbox_id, attempts, "replay"))
    return RedirectResponse(url(session, "/app", replayed=len(rows)), status_code=303, headers=headers(session))


@guarded
async def charts(request: Request, session: Session) -> Response:
    kpis, computed_at = await data.document(session.shop_id, "kpis")
    chart = kpis.get("charts") or {}
    repeat = chart.get("repeat_rate") or []
    clv = chart.get("clv") or {}
    rfm = chart.get("rfm") or {}
    cohorts = sorted((kpis.get("cohorts") or {}).items())[-18:]  # the latest cohorts fit on a page
    currency = session.shop.currency or ""
    drawn = {
        "repeat": svg.line_chart("Repeat purchase rate over time", [p["month"] for p in repeat],
                                 [p["rate"] for p in repeat], "Month (at its end)",
                                 "Customers with 2+ orders (%)", "repeat-rate"),
        "cohorts": svg.heatmap("Monthly cohort retention", cohorts, "Months since first order",
                               "Cohort (month of first order)", "cohort-heatmap"),
        "clv": svg.histogram("Predicted CLV distribution", clv.get("edges") or [0.0], clv.get("counts") or [],
                             f"Predicted CLV ({currency})" if currency else "Predicted CLV", "Customers",
                             "clv-distribution"),
        "rfm": svg.rfm_grid("RFM grid: customers per recency × frequency cell", rfm.get("cells") or [], "rfm-grid"),
    }
    return page(request, session, "charts.html", "charts", drawn=drawn, groups=rfm.get("groups") or {},
                repeat=repeat, computed_at=computed_at)


@guarded
async def proof(request: Request, session: Session) -> Response:
    accuracy, _ = await data.document(session.shop_id, "accuracy")
    kpis, computed_at = await data.document(session.shop_id, "kpis")
    latest, history = accuracy.get("latest"), accuracy.get("history") or []
    drawn: dict[str, str] = {}
    if latest:
        deciles = latest.get("deciles") or []
        drawn["calibration"] = svg.paired_bars(
            "Repeat purchases by decile of prediction: predicted vs actual", [str(d["decile"]) for d in deciles],
            [d["predicted"] for d in deciles], [d["actual"] for d in deciles], ("predicted", "actual"),
            "Decile of predicted purchases (1 = fewest)", "Repeat purchases in the window", "calibration")
        drawn["trend"] = svg.paired_bars(
            "Each check: predicted vs actual repeat purchases", [h["end"] for h in history[-12:]],
            [h["predicted_purchases"] for h in history[-12:]], [h["actual_purchases"] for h in history[-12:]],
            ("predicted", "actual"), "End of the check window", "Repeat purchases", "accuracy-trend")
    return page(request, session, "proof.html", "proof", latest=latest, history=history, drawn=drawn,
                programs=kpis.get("programs") or {}, computed_at=computed_at)


def _thresholds(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in params.items() if k != "enabled") or "—"


@guarded
async def segments(request: Request, session: Session) -> Response:
    settings = await shop_settings.effective(request.app.state.services.settings, session.shop_id)
    kpis, computed_at = await data.document(session.shop_id, "kpis")
    sizes: dict[str, int] = kpis.get("segments") or {}
    prefix = settings.writeback.tag_prefix
    rows = [{"slug": slug, "enabled": params.get("enabled", True), "thresholds": _thresholds(params),
             "definition": SEGMENTS.get(slug, ""), "size": sizes.get(slug), "tag": prefix + slug}
            for slug, params in shop_settings.segment_params(settings).items() if slug != "rfm_groups"]
    rows += [{"slug": seg.name, "enabled": seg.enabled, "thresholds": seg.rule, "definition": "Custom rule",
              "size": sizes.get(seg.name), "tag": prefix + seg.name} for seg in settings.analytics.custom]
    groups = [{"slug": slug, "size": size, "tag": prefix + slug} for slug, size in sorted(sizes.items())
              if slug.startswith("rfm_")]
    return page(request, session, "segments.html", "segments", rows=rows, groups=groups, computed_at=computed_at,
                rfm_enabled=settings.analytics.segments.rfm_groups.enabled)


@guarded
async def segment(request: Request, session: Session) -> Response:
    slug = request.path_params["slug"]
    if not SLUG.fullmatch(slug):
        return page(request, session, "missing.html", "segments", status=404, what=f"segment {slug!r}")
    after = request.query_params.get("after")
    members = await data.segment_members(session.shop_id, slug, after)
    kpis, _ = await data.document(session.shop_id, "kpis")
    return page(request, session, "segment.html", "segments", slug=slug, members=members, after=after,
                size=(kpis.get("segments") or {}).get(slug), next_after=members[-1]["customer_id"]
                if len(members) == data.PAGE else None)


@guarded
async def segment_csv(request: Request, session: Session) -> Response:
    slug = request.path_params["slug"]
    if not SLUG.fullmatch(slug):
        return JSONResponse({"error": "unknown segment"}, status_code=404)
    columns = ["customer_id", "email", "name", "orders", "spent", "clv", "p_alive", "rfm"]

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        async for chunk in data.segment_export(session.shop_id, slug):
            for member in chunk:
                writer.writerow(["" if member[c] is None else member[c] for c in columns])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()

    return StreamingResponse(rows(), media_type="text/csv", headers={
        **headers(session), "Content-Disposition": f'attachment; filename="{slug}.csv"'})


@guarded
async def customers(request: Request, session: Session) -> Response:
    query = request.query_params.get("q", "")
    found = await data.find_customer(session.shop_id, query) if query else None
    view = await data.customer_view(session.shop_id, found) if found else None
    return page(request, session, "customers.html", "customers", query=query, view=view,
                status=404 if query and not found else 200, currency=session.shop.currency)


@guarded
async def recommendations(request: Request, session: Session) -> Response:
    kpis, computed_at = await data.document(session.shop_id, "kpis")
    top = kpis.get("recommended") or []
    known = await data.products(session.shop_id, [t["product_id"] for t in top])
    return page(request, session, "recommendations.html", "recommendations", computed_at=computed_at,
                examples=await data.recommendation_examples(session.shop_id),
                top=[{**t, "product": known.get(t["product_id"])} for t in top])


def routes() -> list[BaseRoute]:
    """The app home, for every platform (how a request authenticates is the only difference)."""
    return [
        Route("/app", overview, methods=["GET"], name="home"),
        Route("/app/progress", progress, methods=["GET"], name="home_progress"),
        Route("/app/events/replay", replay, methods=["POST"], name="home_replay"),
        Route("/app/charts", charts, methods=["GET"], name="home_charts"),
        Route("/app/segments", segments, methods=["GET"], name="home_segments"),
        Route("/app/segments/{slug}", segment, methods=["GET"], name="home_segment"),
        Route("/app/segments/{slug}/export.csv", segment_csv, methods=["GET"], name="home_segment_csv"),
        Route("/app/customers", customers, methods=["GET"], name="home_customers"),
        Route("/app/recommendations", recommendations, methods=["GET"], name="home_recommendations"),
        Route("/app/proof", proof, methods=["GET"], name="home_proof"),
        Route("/app/settings", guarded(settings_get), methods=["GET"], name="home_settings"),
        Route("/app/settings", settings_post, methods=["POST"], name="home_settings_save"),
    ]
