"""The settings page: a shop's overrides of app.toml, validated, saved, then the recompute and write-back they need."""
from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connector import queue, shop_settings, shops
from connector.config import Settings
from connector.home import data, tokens
from connector.home.auth import Refused, Session, authenticate, home_key
from connector.home.definitions import SEGMENTS
from connector.home.render import headers, page, refused, url
from connector.services import Services


def csrf_ok(request: Request, session: Session, given: str) -> bool:
    """The form's token must be this session's, and a browser-sent Origin must be our own."""
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    return tokens.check_csrf(home_key(request.app.state.services.settings), session.claims, given)


def form_values(settings: Settings, overrides: dict[str, Any]) -> dict[str, Any]:
    """What the form shows: the shop's effective settings."""
    effective = shop_settings.apply(settings, overrides)
    custom = [dataclasses.asdict(c) for c in effective.analytics.custom if not c.name.startswith("vip_")]
    return {
        "tag_prefix": effective.writeback.tag_prefix, "writeback_enabled": effective.writeback.enabled,
        "segments": shop_settings.segment_params(effective), "custom": custom,
        "custom_rows": len(custom) + shop_settings.CUSTOM_ROWS_SPARE,
        "tiers": shop_settings.tiers_of(effective.analytics.custom), "tier_rows": shop_settings.TIER_ROWS,
        "pins": ", ".join(effective.recommendations.pinned_products),
        "exclusions": ", ".join(effective.recommendations.excluded_products),
    }


def _kinds(request: Request, session: Session) -> tuple[str, ...]:
    services: Services = request.app.state.services
    try:
        return tuple(services.adapter(session.shop.platform).sync_kinds)
    except KeyError:
        return ()


async def settings_get(request: Request, session: Session) -> Response:
    settings: Settings = request.app.state.services.settings
    overrides = await shop_settings.load(session.shop_id)
    return page(request, session, "settings.html", "settings", values=form_values(settings, overrides), errors={},
                overridden=sorted(k for k in overrides if k != shop_settings.RETIRED), definitions=SEGMENTS, saved=request.query_params.get("saved"),
                progress=await data.progress(session.shop, _kinds(request, session)))


def _refill(form: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """The submitted values, shown again next to their errors (nothing typed is lost)."""
    values = dict(values, tag_prefix=form.get("tag_prefix", ""), writeback_enabled=form.get("writeback_enabled") == "on",
                  pins=form.get("pins", ""), exclusions=form.get("exclusions", ""))
    rows = int(form.get("custom_rows", "0") or 0)
    values["custom"] = [{"name": form.get(f"custom.{i}.name", ""), "rule": form.get(f"custom.{i}.rule", ""),
                         "enabled": form.get(f"custom.{i}.enabled") == "on"} for i in range(rows)]
    values["custom_rows"] = rows
    values["tiers"] = [{"name": form.get(f"tier.{i}.name", ""), "min_spent": form.get(f"tier.{i}.min_spent", "")}
                       for i in range(shop_settings.TIER_ROWS)]
    segs = {}
    for slug, params in values["segments"].items():
        segs[slug] = {k: (form.get(f"seg.{slug}.{k}") == "on") if isinstance(v, bool) else form.get(f"seg.{slug}.{k}", v)
                      for k, v in params.items()}
    values["segments"] = segs
    return values


async def settings_post(request: Request) -> Response:
    """Validate; on errors show them by their fields (a rule's bad token with its column); else save and recompute."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        session = await authenticate(request, form)
    except Refused as exc:
        return refused(exc)
    if not csrf_ok(request, session, form.get("csrf", "")):
        return refused(Refused(403, "the form expired or came from another site; reload the page"))
    services: Services = request.app.state.services
    overrides, errors = shop_settings.parse_form(form, services.settings)
    if errors:
        values = _refill(form, form_values(services.settings, await shop_settings.load(session.shop_id)))
        return page(request, session, "settings.html", "settings", status=400, values=values, errors=errors,
                    overridden=[], definitions=SEGMENTS, saved=None,
                    progress=await data.progress(session.shop, _kinds(request, session)))
    await shop_settings.save(services.settings, session.shop_id, overrides)
    # Marked dirty first: a recompute already running (with the old settings) then runs once more after it.
    await shops.set_cursor(session.shop_id, "dirty_at", shops.utcnow().isoformat())
    await services.enqueue(queue.RECOMPUTE_SHOP, session.shop_id, job_id=queue.recompute_id(session.shop_id))
    return RedirectResponse(url(session, "/app/settings", saved="1"), status_code=303, headers=headers(session))
