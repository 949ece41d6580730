"""The console's server side without a browser: dev sign-in and its refusal in prod, the content
security policy, and the files it serves (all present, all small)."""

from __future__ import annotations

import re

import pytest

from gateway.auth import Role, TokenVerifier
from gateway.console.assets import ASSETS, MAX_TOTAL_BYTES, total_bytes
from gateway.console.routes import content_security_policy
from gateway.console.service import console_config, dev_sign_in
from gateway.errors import PermissionDenied
from gateway.settings import Settings
from tests.gateway.prod_setup import ISSUER, make_prod_setup


@pytest.fixture
def prod_settings(tmp_path) -> Settings:
    setup = make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    return setup.settings(console_oidc_client_id="clonegate-console")


def test_dev_sign_in_mints_a_token_the_gateway_accepts(tmp_path):
    settings = Settings(mode="dev", data_dir=tmp_path)
    minted = dev_sign_in(settings, subject="alice", roles=[Role.OWNER], tenant=None, display_name="Alice")
    principal = TokenVerifier(settings).verify(minted["access_token"])
    assert (principal.subject, principal.roles, principal.display_name) == ("alice", frozenset({Role.OWNER}), "Alice")


def test_dev_sign_in_is_refused_in_prod(prod_settings):
    with pytest.raises(PermissionDenied, match="refused in prod"):
        dev_sign_in(prod_settings, subject="mallory", roles=[Role.ADMIN], tenant=None, display_name=None)


def test_prod_signs_in_at_the_api_issuer_with_pkce_client(prod_settings):
    assert console_config(prod_settings) == {
        "mode": "prod",
        "detect_anonymous": False,
        "sign_in": "oidc",
        "oidc": {"issuer": ISSUER, "client_id": "clonegate-console", "scope": "openid profile"},
    }


def test_policy_forbids_inline_script_and_third_parties(tmp_path, prod_settings):
    dev = content_security_policy(Settings(mode="dev", data_dir=tmp_path))
    assert "script-src 'self';" in dev and "unsafe" not in dev and "connect-src 'self';" in dev
    assert "frame-ancestors 'none'" in dev and "default-src 'none'" in dev
    # prod: the page may also reach the identity provider's origin, nothing else
    assert f"connect-src 'self' {ISSUER};" in content_security_policy(prod_settings)


def test_assets_stay_within_the_page_weight_budget():
    assert total_bytes() <= MAX_TOTAL_BYTES, f"console assets weigh {total_bytes()} bytes"


def test_every_module_import_and_page_reference_resolves():
    """A missing or misnamed module would only show in a browser; catch it here."""
    for name, (content, _) in ASSETS.items():
        text = content.decode()
        if name.endswith(".js"):
            folder = name.rsplit("/", 1)[0] if "/" in name else ""
            for target in re.findall(r'from "(\.{1,2}/[^"]+)"', text):
                parts = [*folder.split("/"), *target.split("/")] if folder else target.split("/")
                resolved: list[str] = []
                for part in parts:
                    if part == "..":
                        resolved.pop()
                    elif part not in (".", ""):
                        resolved.append(part)
                assert "/".join(resolved) in ASSETS, f"{name} imports {target}"
        if name.endswith(".html"):
            for target in re.findall(r'(?:src|href)="/console/([^"]+)"', text):
                assert target.removeprefix("assets/") in ASSETS and target.startswith("assets/"), f"{name}: {target}"
            assert "<script>" not in text and " style=" not in text  # nothing the CSP would refuse
