"""The dashboard's partners section: OCPI roaming partners, their handshake, what they get,
and the pushes waiting for them (docs/operations.md, "Dashboard"; docs/ocpi.md).

Read-only: a visitor with the `read` scope (every role) sees it; partners are managed
through the API (`PUT /api/v1/partners/{id}`, docs/api.md "Partners").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from csms.api.context import ApiContext
from csms.api.dashboard_render import Renderer, to_login
from csms.api.partners import PartnerOut, partner_out
from csms.store import partners

PAGE = 100
BACKLOG_SHOWN = 20  # pushes listed per partner page, waiting and refused each


def add_partner_pages(router: APIRouter, ctx: ApiContext, render: Renderer) -> None:
    """`/partners` (the list) and `/partners/{id}` (one partner)."""
    ocpi_on = ctx.partners is not None

    @router.get("/partners", response_class=HTMLResponse)
    async def partners_page(request: Request, offset: Annotated[int, Query(ge=0)] = 0) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)

        async def query(session: Any) -> tuple[list[PartnerOut], int]:
            rows, total = await partners.list_partners(session, limit=PAGE, offset=offset)
            return [await partner_out(session, row) for row in rows], total

        shown, total = await ctx.read(query)
        return render.page(
            request,
            visitor,
            "partners.html",
            partners=shown,
            total=total,
            offset=offset,
            page=PAGE,
            ocpi_on=ocpi_on,
        )

    @router.get("/partners/{partner_id}", response_class=HTMLResponse)
    async def partner_page(request: Request, partner_id: str) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)

        async def query(session: Any) -> dict[str, Any] | None:
            row = await partners.get_partner(session, partner_id)
            if row is None:
                return None
            return {
                "partner": await partner_out(session, row),
                "waiting": await partners.pushes_of(
                    session, partner_id, refused=False, limit=BACKLOG_SHOWN
                ),
                "refused": await partners.pushes_of(
                    session, partner_id, refused=True, limit=BACKLOG_SHOWN
                ),
            }

        view = await ctx.read(query)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "partner not found")
        return render.page(
            request, visitor, "partner.html", ocpi_on=ocpi_on, shown=BACKLOG_SHOWN, **view
        )
