"""`/console`: the browser console's files under a strict CSP, its configuration, dev sign-in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response

from gateway.console.assets import ASSETS
from gateway.console.schemas import ConsoleConfig, DevSignInBody, DevToken
from gateway.console.service import console_config, dev_sign_in, issuer_origin
from gateway.dependencies import GatewayDep
from gateway.errors import NotFound, PermissionDenied, error_responses
from gateway.settings import Settings

router = APIRouter(prefix="/console", tags=["console"])
ASSET_PATH = r"^[a-z0-9_/-]{1,100}\.(html|js|css|svg)$"


def content_security_policy(settings: Settings) -> str:
    """No inline script or style, nothing from a third party: the page talks to this gateway (and,
    in prod, the identity provider's token endpoint) only."""
    connect = " ".join(filter(None, ["'self'", issuer_origin(settings)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:; connect-src {connect}; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'; object-src 'none'"
    )


def _asset_response(name: str, settings: Settings) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no console file {name}")
    content, media_type = ASSETS[name]
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return Response(content, media_type=media_type, headers=headers)


@router.get("", include_in_schema=False)
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/", include_in_schema=False)
def console_index(gateway: GatewayDep) -> Response:
    return _asset_response("index.html", gateway.settings)


@router.get("/config.json", response_model=ConsoleConfig, response_model_exclude_none=True)
def config(gateway: GatewayDep) -> dict[str, Any]:
    """How the console signs in here, and whether the detector is open to anonymous callers."""
    return console_config(gateway.settings)


@router.post("/dev-token", response_model=DevToken, responses=error_responses(PermissionDenied))
def dev_token(body: DevSignInBody, gateway: GatewayDep) -> dict[str, Any]:
    """Dev mode only: a short-lived dev token for the roles asked for (refused in prod)."""
    return dev_sign_in(
        gateway.settings,
        subject=body.subject,
        roles=body.roles,
        tenant=body.tenant,
        display_name=body.display_name,
    )


# Under a prefix of their own, so no asset path can shadow the routes above (or their Allow).
@router.get("/assets/{name:path}", include_in_schema=False)
def console_asset(name: Annotated[str, Path(pattern=ASSET_PATH)], gateway: GatewayDep) -> Response:
    return _asset_response(name, gateway.settings)
