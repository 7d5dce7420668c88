"""The filter in front of a real AS (node-oidc-provider, test-harness/as/server.mjs) with a real client
(openid-client v6 over mTLS, test-harness/as/client.mjs): envoy/as-resources.yaml as shipped, only ports
rewired (plus a 1 s registry refresh where a test needs one). The AS trusts the filter's verdict
(x-mtls-client-id) and binds its tokens to the certificate; the filter learns the AS's clients from the
AS's registry endpoint."""
import json
import pathlib
import subprocess
from urllib.parse import urlsplit

import pytest

from conftest import AS_INITIAL_ACCESS_TOKEN
from oauth_mtls_harness import client, pki
from oauth_mtls_harness.envoy import poll

FAST_REGISTRY = {"registry": {"cluster": "as_registry", "authority": "as-registry.local",
                              "path": "/registry/clients", "refresh_seconds": 1, "timeout_ms": 2000,
                              "max_stale_seconds": 300}}


@pytest.fixture(scope="module")
def stack(as_deployment):
    return as_deployment(FAST_REGISTRY, name="as")


def client_credentials(stack, cert, client_id, **kw):
    return client.openid_client("client-credentials", issuer=stack.issuer, cert=cert, client_id=client_id, **kw)


def token_request_seen_by_as(stack, result):
    """The one POST /token of this client run, as the AS logged it."""
    seen = stack.oidc.requests(result["test_id"], path="/token")
    assert len(seen) == 1, f"the AS logged {len(seen)} token requests for this client: {seen}"
    return seen[0]


@pytest.mark.parametrize("cert,client_id,method", [
    ("dn-client", "bank-dn", "tls_client_auth"),
    ("self-signed-1", "self-signed", "self_signed_tls_client_auth"),
], ids=["tls_client_auth-subject-dn", "self_signed_tls_client_auth"])
def test_client_obtains_token_bound_to_its_certificate(stack, cert, client_id, method):
    r = client_credentials(stack, cert, client_id)
    assert r["ok"], r
    claims = r["access_token_claims"]
    assert claims["client_id"] == client_id and claims["iss"] == stack.issuer, claims
    assert claims["aud"] == stack.api_resource, claims
    seen = token_request_seen_by_as(stack, r)
    assert seen.get("x-mtls-client-id") == client_id, seen
    assert seen.get("x-mtls-auth-method") == method, seen
    # cnf."x5t#S256" (RFC 8705 §3.1) = what the filter told the AS = the harness's own computation
    assert claims["cnf"]["x5t#S256"] == seen.get("x-mtls-x5t-s256") == pki.x5t_s256(cert), (claims, seen)


def test_wrong_certificate_is_rejected_by_the_filter_and_never_reaches_the_as(stack):
    r = client_credentials(stack, "other-client", "bank-dn")
    assert not r["ok"], r
    assert r["error"].get("status") == 401 and r["error"].get("error") == "invalid_client", r
    assert "subject" in r["error"]["error_description"], r
    # the client did reach the AS for discovery, but the token request never got there
    assert stack.oidc.requests(r["test_id"], path="/.well-known/openid-configuration"), "discovery not logged"
    assert stack.oidc.requests(r["test_id"], path="/token") == [], "the AS saw the rejected token request"


def test_self_signed_client_with_another_self_signed_certificate_never_reaches_the_as(stack):
    r = client_credentials(stack, "self-signed-2", "self-signed")
    assert not r["ok"] and r["error"].get("error") == "invalid_client", r
    assert stack.oidc.requests(r["test_id"], path="/token") == [], "the AS saw the rejected token request"


def test_registry_endpoint_lists_the_as_registrations_as_rfc7591_metadata(stack):
    doc = {c["client_id"]: c for c in stack.oidc.registry_document()}
    assert doc["bank-dn"] == {"client_id": "bank-dn", "token_endpoint_auth_method": "tls_client_auth",
                              "tls_client_auth_subject_dn": pki.DN_CLIENT_RFC4514,
                              "tls_client_certificate_bound_access_tokens": True}
    assert doc["self-signed"]["jwks"]["keys"][0]["x5c"] == pki.jwk_with_x5c("self-signed-1")["x5c"]
    assert doc["public-app"]["token_endpoint_auth_method"] == "none"


def test_client_registered_through_dcr_is_authenticated_after_a_registry_refresh(stack):
    metadata = {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example.com",
                "tls_client_certificate_bound_access_tokens": True, "grant_types": ["client_credentials"],
                "response_types": [], "redirect_uris": []}
    reg = client.openid_client("register", issuer=stack.issuer, cert="san-dns-client",
                               initial_access_token=AS_INITIAL_ACCESS_TOKEN, metadata=json.dumps(metadata))
    assert reg["ok"], reg
    client_id = reg["client_metadata"]["client_id"]
    assert any(c["client_id"] == client_id for c in stack.oidc.registry_document())

    # no restart: within a few refreshes the filter knows the new client and authenticates it
    def attempt():
        r = client_credentials(stack, "san-dns-client", client_id)
        return r if r["ok"] else None
    r = poll(attempt, timeout=15, interval=0.5, what=f"DCR client {client_id} authenticated by the filter")
    seen = token_request_seen_by_as(stack, r)
    assert seen.get("x-mtls-client-id") == client_id and seen.get("x-mtls-auth-method") == "tls_client_auth"
    assert r["access_token_claims"]["cnf"]["x5t#S256"] == pki.x5t_s256("san-dns-client")
    # ... and refuses it with another certificate, before the AS
    bad = client_credentials(stack, "dn-client", client_id)
    assert not bad["ok"] and bad["error"].get("error") == "invalid_client", bad
    assert stack.oidc.requests(bad["test_id"], path="/token") == []


def test_dcr_without_the_initial_access_token_is_refused(stack):
    reg = client.openid_client("register", issuer=stack.issuer, cert="dn-client",
                               metadata=json.dumps({"token_endpoint_auth_method": "tls_client_auth",
                                                    "tls_client_auth_subject_dn": pki.DN_CLIENT_RFC4514}))
    assert not reg["ok"] and reg["error"].get("status") == 401, reg


def test_refresh_token_used_with_a_different_certificate_is_refused_by_the_as(stack):
    """A public client (authorization code + PKCE, oidc-provider's development login and consent) gets a
    refresh token bound to its certificate (RFC 8705 §4: for public clients the refresh token is bound
    too). Presented over a connection with another (valid, CA-issued) certificate it is `invalid_grant`;
    with the original certificate it still works."""
    r = client.openid_client("code-and-refresh", issuer=stack.issuer, cert="self-signed-2",
                             refresh_cert="other-client", client_id="public-app")
    assert r["ok"], r
    code = r["code"]
    assert code["ok"] and code["token_response"].get("refresh_token"), code
    assert code["access_token_claims"]["cnf"]["x5t#S256"] == pki.x5t_s256("self-signed-2")
    other = r["refresh_with_other_certificate"]
    assert not other["ok"] and other["error"].get("error") == "invalid_grant", other
    assert any("failed x5t#S256 verification" in e for e in stack.oidc.events()), stack.oidc.events()
    same = r["refresh_with_same_certificate"]
    assert same["ok"], same
    assert same["access_token_claims"]["cnf"]["x5t#S256"] == pki.x5t_s256("self-signed-2")
    # the filter passed the public client's token requests unannotated (method `none`): the AS took the
    # certificate from Envoy's x-forwarded-client-cert, not from a filter verdict
    for seen in stack.oidc.requests(r["test_id"], path="/token"):
        assert seen.get("x-mtls-client-id") is None, seen


# Every member of a metadata document (RFC 8414, OpenID Discovery, RFC 9126, RFC 8628, CIBA) naming an endpoint at which
# a client authenticates.
CLIENT_AUTHENTICATING = ("token_endpoint", "introspection_endpoint", "revocation_endpoint",
                         "pushed_authorization_request_endpoint", "device_authorization_endpoint",
                         "backchannel_authentication_endpoint")


def test_the_oidc_provider_preset_covers_every_client_authenticating_endpoint_the_as_lists(stack, tmp_path):
    """The running node-oidc-provider's own discovery document against what `"preset": "oidc-provider"` expands to
    (`oauth-mtls lint --explain`): each client-authenticating endpoint it lists is one the preset enforces."""
    r = client.curl(stack.port, "/.well-known/openid-configuration")
    assert r.status == 200, r
    listed = {k: urlsplit(v).path for k, v in json.loads(r.body).items() if k in CLIENT_AUTHENTICATING}
    assert {"token_endpoint", "introspection_endpoint", "revocation_endpoint"} <= set(listed), listed
    config = tmp_path / "preset.json"
    config.write_text(json.dumps({"preset": "oidc-provider"}))
    cli = pathlib.Path(__file__).resolve().parents[2] / "target" / "release" / "oauth-mtls"
    out = subprocess.run([str(cli), "lint", str(config), "--explain", "--json"], capture_output=True, text=True,
                         timeout=60)
    expansion = {row["key"]: row["value"] for row in json.loads(out.stdout)["expands_to"]}
    missing = {k: p for k, p in listed.items() if p not in expansion["endpoints"]}
    assert not missing, f"the AS lists client-authenticating endpoints the preset does not enforce: {missing}"
