"""Certificate-bound access tokens at the protected API (RFC 8705 §3): envoy/as-resources.yaml, jwt_authn
verifies the AS's JWT, the filter's `resources` requires its `cnf."x5t#S256"` to be the thumbprint of the
certificate on this connection. Tokens are real (node-oidc-provider via openid-client); API calls are curl."""
import base64
import json

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_invalid_token, www_authenticate_params

JWT_AUTHN = "envoy.filters.http.jwt_authn"


@pytest.fixture(scope="module")
def stack(as_deployment):
    return as_deployment(name="as-resources")


def token(stack, cert, client_id):
    r = client.openid_client("client-credentials", issuer=stack.issuer, cert=cert, client_id=client_id)
    assert r["ok"], r
    return r["token_response"]["access_token"]


@pytest.fixture(scope="module")
def bound_token(stack):
    """An access token of bank-dn, bound to dn-client's certificate."""
    return token(stack, "dn-client", "bank-dn")


def call_api(port, access_token, cert, path="/api/accounts"):
    headers = [("authorization", f"Bearer {access_token}")] if access_token else []
    return client.curl(port, path, cert=cert, headers=headers)


def test_bound_token_with_its_certificate_reaches_the_api(stack, bound_token):
    r = call_api(stack.port, bound_token, "dn-client")
    assert r.status == 200, r
    (seen,) = stack.api.find(r.test_id)
    assert seen.path == "/api/accounts"
    assert seen.header("authorization") == f"Bearer {bound_token}"  # jwt_authn forward: true


def test_bound_token_with_another_valid_certificate_is_invalid_token(stack, bound_token):
    # other-client's certificate is issued by the same trusted CA: valid, just not the one the token is bound to
    assert_invalid_token(call_api(stack.port, bound_token, "other-client"), stack.api, "bound to another certificate")


def test_bound_token_with_a_self_signed_certificate_is_invalid_token(stack, bound_token):
    assert_invalid_token(call_api(stack.port, bound_token, "self-signed-1"), stack.api, "bound to another certificate")


def test_bound_token_without_a_certificate_is_invalid_token(stack, bound_token):
    assert_invalid_token(call_api(stack.port, bound_token, None), stack.api, "no client certificate")


def test_self_signed_client_token_works_only_with_its_certificate(stack):
    t = token(stack, "self-signed-1", "self-signed")
    assert call_api(stack.port, t, "self-signed-1").status == 200
    assert_invalid_token(call_api(stack.port, t, "self-signed-2"), stack.api, "bound to another certificate")


def test_unbound_token_is_refused_when_binding_is_required(stack):
    t = token(stack, "san-dns-client", "unbound-dns")
    assert "cnf" not in _claims(t)
    assert_invalid_token(call_api(stack.port, t, "san-dns-client"), stack.api, "not certificate-bound")


def test_forged_token_with_matching_cnf_but_bad_signature_is_refused_by_jwt_authn(stack, bound_token):
    """Same header, a payload claiming the caller's own thumbprint (other-client), the original signature:
    jwt_authn refuses it before the filter ever sees it."""
    header, _, signature = bound_token.split(".")
    claims = _claims(bound_token)
    claims["cnf"] = {"x5t#S256": pki.x5t_s256("other-client")}
    claims["sub"] = claims["client_id"] = "mallory"
    forged = ".".join([header, _b64url(json.dumps(claims).encode()), signature])
    r = call_api(stack.port, forged, "other-client")
    assert r.status == 401, r
    challenge = www_authenticate_params(r.header("www-authenticate") or "")
    assert challenge.get("error") == "invalid_token", r.headers
    assert "jwt verification fails" in r.text.lower(), r.text  # jwt_authn's answer, not the filter's
    assert stack.api.find(r.test_id) == []


def test_api_without_a_token_is_refused_by_jwt_authn(stack):
    r = call_api(stack.port, None, "dn-client")
    assert r.status == 401 and "jwt is missing" in r.text.lower(), r
    assert stack.api.find(r.test_id) == []


def test_other_paths_need_no_token(stack):
    r = client.curl(stack.port, "/.well-known/openid-configuration", cert=None)
    assert r.status == 200 and r.json()["issuer"] == stack.issuer, r


def test_resource_fails_closed_when_jwt_authn_is_removed_from_the_chain(as_deployment):
    """The same configuration without jwt_authn: even a genuine token bound to the presented certificate is
    refused, because no verified payload is in the dynamic metadata (the filter never decodes the
    Authorization header itself)."""
    d = as_deployment(without_http_filters=(JWT_AUTHN,), name="as-no-jwt-authn")
    # a genuine token from THIS deployment's AS (the signing key is per AS process)
    t = token(d, "dn-client", "bank-dn")
    assert_invalid_token(call_api(d.port, t, "dn-client"), d.api, "no verified access token")


def test_unbound_token_is_accepted_where_binding_is_not_required(as_deployment):
    d = as_deployment({"resources": [{"prefix": "/api/", "require_binding": False}]}, name="as-binding-optional")
    unbound = token(d, "san-dns-client", "unbound-dns")
    assert call_api(d.port, unbound, "san-dns-client").status == 200
    # a bound token is still checked against the certificate
    bound = token(d, "dn-client", "bank-dn")
    assert call_api(d.port, bound, "dn-client").status == 200
    assert_invalid_token(call_api(d.port, bound, "other-client"), d.api, "bound to another certificate")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
