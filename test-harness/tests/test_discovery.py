"""The filter's `discovery`: the AS's metadata documents (RFC 8414 / OpenID Discovery) leave Envoy with the
mTLS methods, bound tokens and `mtls_endpoint_aliases` (RFC 8705 §2.3, §3.3, §5), a correct
content-length, every other field untouched, and still satisfy a real client (openid-client) discovery."""
import json
import urllib.request

import pytest

from oauth_mtls_harness import client, servers
from oauth_mtls_harness import envoy as envoy_mod

METADATA_PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
ADDED_METHODS = {"tls_client_auth", "self_signed_tls_client_auth"}
AMENDED = {"token_endpoint_auth_methods_supported", "tls_client_certificate_bound_access_tokens",
           "mtls_endpoint_aliases"}


@pytest.fixture(scope="module")
def stack(as_deployment):
    return as_deployment(name="as-discovery")


def direct(stack, path):
    """The document as the AS itself serves it (not through Envoy), for the same public host."""
    req = urllib.request.Request(f"http://127.0.0.1:{stack.oidc.port}{path}",
                                 headers={"host": f"localhost:{stack.port}", "x-forwarded-proto": "https"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def assert_content_length_matches(r):
    cl = r.header("content-length")
    assert cl is not None and int(cl) == len(r.body), f"content-length {cl} for a {len(r.body)}-byte body"


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_real_as_metadata_carries_the_mtls_fields(stack, path):
    r = client.curl(stack.port, path, cert=None)
    assert r.status == 200, r
    assert_content_length_matches(r)
    doc = r.json()
    aliases = stack.shipped_plugin()["discovery"]["mtls_endpoint_aliases"]
    expected_aliases = {k: v.replace("localhost:8443", f"localhost:{stack.port}") for k, v in aliases.items()}
    assert doc["mtls_endpoint_aliases"] == expected_aliases
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    methods = doc["token_endpoint_auth_methods_supported"]
    assert set(methods) >= ADDED_METHODS and len(methods) == len(set(methods)), methods
    original = direct(stack, path)
    assert "mtls_endpoint_aliases" not in original, "the AS itself advertises aliases: the test proves nothing"
    assert set(original["token_endpoint_auth_methods_supported"]) <= set(methods)
    assert {k: v for k, v in doc.items() if k not in AMENDED} == \
        {k: v for k, v in original.items() if k not in AMENDED}, "fields the filter must not touch changed"


def test_metadata_over_http2_is_amended_too(stack):
    r = client.curl(stack.port, METADATA_PATHS[0], cert=None, http2=True)
    assert r.status == 200 and "mtls_endpoint_aliases" in r.json(), r


def test_openid_client_discovery_parses_the_amended_metadata(stack):
    r = client.openid_client("discover", issuer=stack.issuer, cert="dn-client")
    assert r["ok"], r
    md = r["server_metadata"]
    assert md["issuer"] == stack.issuer
    assert md["mtls_endpoint_aliases"]["token_endpoint"] == f"{stack.issuer}/token"
    assert set(md["token_endpoint_auth_methods_supported"]) >= ADDED_METHODS


def test_openid_client_sends_its_token_request_to_the_mtls_alias(stack):
    r = client.openid_client("client-credentials", issuer=stack.issuer, cert="dn-client", client_id="bank-dn")
    assert r["ok"], r
    assert r["token_endpoint_used"] == f"{stack.issuer}/token"


# ---------------------------------------------------------------- a minimal AS document (fields absent)

MINIMAL = {
    "issuer": "https://as.example",
    "token_endpoint": "https://as.example/token",
    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    "grant_types_supported": ["client_credentials"],
    "x_vendor": {"nested": [1, 2, {"k": "ü"}]},
}
ALIASES = {"token_endpoint": "https://mtls.as.example/token"}


@pytest.fixture(scope="module")
def minimal_envoy(pki_dir, registry, jwks_server):
    """envoy/direct-mtls.yaml whose AS is a document server with a minimal metadata document."""
    envoy_mod.require_wasm()
    docs = servers.DocumentServer()
    for path in METADATA_PATHS:
        docs.set(path, MINIMAL)
    docs.set("/.well-known/other", MINIMAL)
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: docs.port, 9081: registry.port, 9082: jwks_server.port}
    cfg = envoy_mod.render("direct-mtls.yaml", ports, {"discovery": {"mtls_endpoint_aliases": ALIASES}})
    e = envoy_mod.Envoy(cfg, "discovery-minimal", port, admin).start()
    yield e
    e.stop()
    docs.stop()


@pytest.mark.parametrize("path", METADATA_PATHS)
def test_missing_fields_are_added_and_the_rest_is_untouched(minimal_envoy, path):
    r = client.curl(minimal_envoy.port, path, cert=None)
    assert r.status == 200, r
    assert_content_length_matches(r)
    doc = r.json()
    assert doc["token_endpoint_auth_methods_supported"][:1] == ["client_secret_basic"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic"} | ADDED_METHODS
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["mtls_endpoint_aliases"] == ALIASES
    assert {k: v for k, v in doc.items() if k not in AMENDED} == \
        {k: v for k, v in MINIMAL.items() if k not in AMENDED}


def test_other_documents_are_not_amended(minimal_envoy):
    r = client.curl(minimal_envoy.port, "/.well-known/other", cert=None)
    assert r.status == 200 and r.json() == MINIMAL, r
