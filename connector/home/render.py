"""Templates, the page frame (App Bridge for Shopify shops) and the security headers of every app home answer."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from connector.config import Settings
from connector.home.auth import Refused, Session
from connector.home.definitions import fmt

ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
ENV.filters["fmt"] = fmt
ENV.globals["p"] = ENV.get_template("polaris.html").module  # the Polaris web component macros
NAV = (("overview", "/app", "Overview"), ("charts", "/app/charts", "Charts"), ("segments", "/app/segments", "Segments"),
       ("customers", "/app/customers", "Customers"), ("recommendations", "/app/recommendations", "Recommendations"),
       ("proof", "/app/proof", "Proof"), ("settings", "/app/settings", "Settings"))


def headers(session: Session | None, settings: Settings | None = None) -> dict[str, str]:
    """No caching and no referrer (links carry a token: it never leaves our origin); framing only by the shop's own admin."""
    ancestors = "'none'"
    if session is not None and session.shop.platform == "shopify":
        ancestors = f"https://{session.shop.domain} https://admin.shopify.com"
        if settings is not None and settings.development:  # the local sandbox admin frames the app too
            parts = urlsplit(settings.shopify.admin_url.replace("{shop}", session.shop.domain))
            ancestors += f" {parts.scheme}://{parts.netloc}"
    return {"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": f"frame-ancestors {ancestors}"}


def url(session: Session, path: str, **params: Any) -> str:
    """A link inside the app home that keeps the session (its token) and the given query parameters."""
    query = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode({**query, 't': session.token})}"


def page(request: Request, session: Session, template: str, active: str, status: int = 200,
         **context: Any) -> HTMLResponse:
    """A full page: the frame, the navigation, then the template's content."""
    settings: Settings = request.app.state.services.settings
    html = ENV.get_template(template).render(
        session=session, shop=session.shop, settings=settings, active=active,
        embedded=session.shop.platform == "shopify" and settings.embedded,
        nav=[(key, url(session, path), label) for key, path, label in NAV],
        url=lambda path, **params: url(session, path, **params), **context)
    return HTMLResponse(html, status_code=status, headers=headers(session, settings))


def refused(exc: Refused) -> HTMLResponse:
    """The page a refused request gets: why, and nothing of any shop."""
    html = ENV.get_template("refused.html").render(status=exc.status, reason=exc.reason)
    return HTMLResponse(html, status_code=exc.status, headers=headers(None))
