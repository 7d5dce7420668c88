"""Multi-tenant authorization servers in real Envoy: `{tenant}` endpoint templates, registrations scoped by
(tenant, client_id), a registry per tenant. The same client_id in two tenants is two clients; a certificate
authenticates only in its own tenant; a path that names no single tenant never reaches the AS annotated."""
import json

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client
from oauth_mtls_harness.envoy import poll

TEMPLATE = "/t/{tenant}/token"
ACME, GLOBEX, SHARED = "/registry/acme.json", "/registry/globex.json", "/registry/shared.json"

# `payments` in both tenants: acme's is dn-client by DN, globex's is san-uri-client by URI SAN.
ACME_PAYMENTS = tls_client("payments", subject_dn=pki.DN_CLIENT_RFC4514)
GLOBEX_PAYMENTS = tls_client("payments", san_uri="spiffe://example.org/client")
LEGACY = tls_client("legacy", subject_dn=pki.DN_CLIENT_RFC4514)


def registry_of(path, tenant=None, max_stale=300):
    r = {"cluster": "registry", "authority": "registry.test", "path": path, "refresh_seconds": 1,
         "timeout_ms": 500, "max_stale_seconds": max_stale}
    if tenant:
        r["tenant"] = tenant
    return r


def plugin(**extra):
    p = {"unknown_client": "reject", "endpoints": ["/token", TEMPLATE], "clients": [LEGACY],
         "registries": [registry_of(ACME, "acme"), registry_of(GLOBEX, "globex", max_stale=2)]}
    p.update(extra)
    return p


def token(envoy, cert, client_id, path):
    return client.token_request(envoy.port, cert, client_id, path=path)


def wait_status(envoy, cert, client_id, path, status, what):
    poll(lambda: token(envoy, cert, client_id, path).status == status, timeout=15, what=what)


@pytest.fixture(scope="module")
def envoy(envoy_with, registry):
    registry.set(ACME, [ACME_PAYMENTS])
    registry.set(GLOBEX, [GLOBEX_PAYMENTS])
    e = envoy_with(plugin(), name="tenants")
    wait_status(e, "dn-client", "payments", "/t/acme/token", 200, "acme's registry loaded")
    wait_status(e, "san-uri-client", "payments", "/t/globex/token", 200, "globex's registry loaded")
    return e


@pytest.fixture
def both_registries(envoy, registry):
    registry.set(ACME, [ACME_PAYMENTS])
    registry.set(GLOBEX, [GLOBEX_PAYMENTS])
    wait_status(envoy, "san-uri-client", "payments", "/t/globex/token", 200, "globex's registry serving")
    yield
    registry.set(ACME, [ACME_PAYMENTS])
    registry.set(GLOBEX, [GLOBEX_PAYMENTS])


def test_each_certificate_authenticates_in_its_own_tenant(envoy, upstream, both_registries):
    assert_authenticated(token(envoy, "dn-client", "payments", "/t/acme/token"), upstream, "payments", "dn-client")
    assert_authenticated(token(envoy, "san-uri-client", "payments", "/t/globex/token"), upstream, "payments",
                         "san-uri-client")


def test_each_certificate_is_refused_in_the_other_tenant(envoy, upstream, both_registries):
    # The same client_id, another tenant: another client, whose registration names another certificate.
    assert_invalid_client(token(envoy, "dn-client", "payments", "/t/globex/token"), upstream)
    assert_invalid_client(token(envoy, "san-uri-client", "payments", "/t/acme/token"), upstream)


def test_a_tenant_with_no_registrations_knows_no_client(envoy, upstream, both_registries):
    assert_invalid_client(token(envoy, "dn-client", "payments", "/t/initech/token"), upstream, "unknown client")


def test_tenants_compare_exactly(envoy, upstream, both_registries):
    assert_invalid_client(token(envoy, "dn-client", "payments", "/t/ACME/token"), upstream, "unknown client")
    assert_invalid_client(token(envoy, "dn-client", "payments", "/t/Acme/token"), upstream, "unknown client")


def test_literal_and_templated_endpoints_side_by_side(envoy, upstream, both_registries):
    # A registration without a tenant serves the literal endpoint only; a tenant's, its tenant only.
    assert_authenticated(token(envoy, "dn-client", "legacy", "/token"), upstream, "legacy", "dn-client")
    assert_invalid_client(token(envoy, "dn-client", "legacy", "/t/acme/token"), upstream, "unknown client")
    assert_invalid_client(token(envoy, "dn-client", "payments", "/token"), upstream, "unknown client")


@pytest.mark.parametrize("path", [
    "/t//token",                  # empty tenant (Envoy merges the slashes: /t/token)
    "/t/./token",                 # dot segments (Envoy resolves them)
    "/t/../token",
    "/t/%2e%2e/token",
    "/t/%2E/token",
    "/t/acme%2Fglobex/token",     # an encoded slash (the shipped listener refuses it)
    "/t/acme%2fx/token",
    "/t/acme;x=1/token",          # a parameter in the tenant segment
    "/t/acme/extra/token",        # extra segments
    "/t/%61cme/token",            # percent-encoded letters: decoded once, the tenant is acme
    "/T/acme/TOKEN",              # case of the literal segments (the AS may route it)
])
def test_a_path_never_reaches_the_as_annotated_for_another_tenant(envoy, upstream, both_registries, path):
    """globex's certificate at any spelling of a path: authenticated only as globex's client, never acme's."""
    r = token(envoy, "san-uri-client", "payments", path)
    seen = upstream.find(r.test_id)
    if r.status == 200:
        (req,) = seen
        # Either annotated in acme by mistake (a failure), or passed unannotated as no endpoint at all.
        assert "x-mtls-client-id" not in req.headers, f"{path} reached the AS annotated: {req.headers}"
    else:
        assert 400 <= r.status < 500, r
        assert seen == [], f"{path}: a refused request reached the AS"


def test_a_tenant_segment_that_names_no_tenant_is_refused_by_the_filter(envoy, upstream, both_registries):
    r = token(envoy, "dn-client", "payments", "/t/acme;x=1/token")
    assert r.status == 400, r
    assert json.loads(r.body)["error"] == "invalid_request"
    assert upstream.find(r.test_id) == []


def test_a_percent_encoded_tenant_is_decoded_once(envoy, upstream, both_registries):
    assert_authenticated(token(envoy, "dn-client", "payments", "/t/%61cme/token"), upstream, "payments", "dn-client")


def test_one_tenants_registry_failing_never_affects_another(envoy, registry, upstream, both_registries):
    registry.set(GLOBEX, b"down", status=503)
    # globex's copy goes stale after max_stale_seconds (2 s): its clients are refused as unavailable...
    wait_status(envoy, "san-uri-client", "payments", "/t/globex/token", 401, "globex's registry stale")
    assert_invalid_client(token(envoy, "san-uri-client", "payments", "/t/globex/token"), upstream, "registry")
    # ...while acme's keeps serving.
    assert_authenticated(token(envoy, "dn-client", "payments", "/t/acme/token"), upstream, "payments", "dn-client")
    assert envoy.stat("oauth_mtls.registries.1.refresh_failed") > 0
    assert envoy.stat("oauth_mtls.registries.0.clients") == 1


def test_each_registry_has_its_own_stats(envoy, both_registries):
    poll(lambda: envoy.stat("oauth_mtls.registries.0.clients") == 1, what="acme's gauge")
    poll(lambda: envoy.stat("oauth_mtls.registries.1.clients") == 1, what="globex's gauge")
    assert envoy.stat("oauth_mtls.registries.0.refresh_ok") + envoy.stat("oauth_mtls.registries.0.not_modified") > 0


# ------------------------------------------------------------------- one registry whose items name tenants

@pytest.fixture(scope="module")
def shared_envoy(envoy_with, registry):
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "acme"}])
    p = {"unknown_client": "reject", "endpoints": [TEMPLATE], "registry": registry_of(SHARED)}
    e = envoy_with(p, name="tenants-shared")
    wait_status(e, "dn-client", "payments", "/t/acme/token", 200, "shared registry loaded")
    return e


def test_registrations_move_between_tenants_on_refresh(shared_envoy, registry, upstream):
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "acme"}])
    wait_status(shared_envoy, "dn-client", "payments", "/t/acme/token", 200, "payments in acme")
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "globex"}])
    wait_status(shared_envoy, "dn-client", "payments", "/t/globex/token", 200, "payments moved to globex")
    assert_invalid_client(token(shared_envoy, "dn-client", "payments", "/t/acme/token"), upstream, "unknown client")
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "acme"}])


def test_the_same_client_id_twice_in_one_tenant_loads_neither(shared_envoy, registry, upstream):
    other = tls_client("payments", subject_dn="CN=other-client,O=Example Bank,C=GB")
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "acme"}, {**other, "tenant": "acme"},
                          {**ACME_PAYMENTS, "tenant": "globex"}])
    wait_status(shared_envoy, "dn-client", "payments", "/t/acme/token", 401, "the ambiguous id withdrawn")
    assert_invalid_client(token(shared_envoy, "dn-client", "payments", "/t/acme/token"), upstream, "unknown client")
    assert_authenticated(token(shared_envoy, "dn-client", "payments", "/t/globex/token"), upstream, "payments",
                         "dn-client")
    registry.set(SHARED, [{**ACME_PAYMENTS, "tenant": "acme"}])


# ----------------------------------------------------------------------------------------- discovery

def test_discovery_per_tenant(envoy_with, upstream):
    p = {"endpoints": [TEMPLATE], "discovery": {
        "paths": ["/t/{tenant}/.well-known/openid-configuration"],
        "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.example.com/t/{tenant}/token"}}}
    e = envoy_with(p, name="tenants-discovery")
    for tenant in ("acme", "globex"):
        r = client.curl(e.port, f"/t/{tenant}/.well-known/openid-configuration", cert=None)
        assert r.status == 200, r
        doc = json.loads(r.body)
        assert doc["mtls_endpoint_aliases"]["token_endpoint"] == f"https://mtls.example.com/t/{tenant}/token"
        assert "tls_client_auth" in doc["token_endpoint_auth_methods_supported"]
