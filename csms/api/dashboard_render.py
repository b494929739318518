"""What every dashboard page shares: the templates, the navigation, rendering a page for a
visitor, and the way to the login form.

A new section of the dashboard (partners, circuits) is a module with an
`add_*_pages(router, ctx, render)` function, its templates, and one `NavItem` in `NAV`;
csms/api/dashboard.py mounts it (docs/operations.md, "Dashboard").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from fastapi import Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from csms.api.dashboard_auth import DashboardAuth, Visitor

NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class NavItem:
    """A section in the header: its label, its page, and the paths that belong to it."""

    label: str
    path: str

    def current(self, path: str) -> bool:
        if self.path == "/":
            return path == "/" or path.startswith("/chargers")
        return path == self.path or path.startswith(f"{self.path}/")


NAV = (
    NavItem("Fleet", "/"),
    NavItem("Sessions", "/sessions"),
    NavItem("Circuits", "/circuits"),
    NavItem("Partners", "/partners"),
)


def ago(when: datetime | None) -> str:
    """A timestamp as the pages show it (UTC, to the second)."""
    if when is None:
        return "never"
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def amps(value: float) -> str:
    """A current as the pages show it: to the deci-amp, the balancer's step ("16", "7.5")."""
    return f"{value:.1f}".removesuffix(".0")


def templates_for(clock: Any) -> Jinja2Templates:
    """The dashboard's Jinja2 templates, with its filters and globals."""
    templates = Jinja2Templates(directory=str(files("csms.api") / "templates"))
    templates.env.filters["ago"] = ago
    templates.env.filters["amps"] = amps
    templates.env.globals["now"] = clock
    templates.env.globals["nav"] = NAV
    return templates


class Renderer:
    """Renders pages for a logged-in visitor, or sends a visitor to the login form."""

    def __init__(self, templates: Jinja2Templates, auth: DashboardAuth) -> None:
        self.templates = templates
        self.auth = auth

    async def visitor(self, request: Request) -> Visitor | None:
        return await self.auth.visitor(request)

    def page(self, request: Request, visitor: Visitor, name: str, **context: Any) -> Response:
        response = self.templates.TemplateResponse(
            request, name, {"visitor": visitor, **context}, headers=NO_STORE
        )
        if visitor.open:
            self.auth.keep_csrf_cookie(request, response, visitor.csrf_token)
        return response


def to_login(request: Request) -> RedirectResponse:
    """A redirect to the login form that comes back to this page."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status.HTTP_303_SEE_OTHER)
