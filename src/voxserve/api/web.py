"""The web page at ``/``: plain HTML, CSS and one JavaScript module served from the package (no CDN,
no build step). It uses only the documented API, with the key the user types kept in the browser's
session storage, so the page itself holds nothing and needs no key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PAGE = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def install_web(app: FastAPI) -> None:
    app.mount("/web", StaticFiles(directory=PAGE), name="web")
    app.include_router(router)
