"""A real multi-tenant AS behind one filter instance: node-oidc-provider (test-harness/as/server.mjs) twice, one
process per tenant, each mounted under its tenant's prefix with its own issuer (https://localhost:<port>/t/acme,
.../t/globex), its own client store and its own registry endpoint. Envoy (envoy/as-resources.yaml, rewired: one
route and one AS cluster per tenant) runs ONE filter whose endpoints are the AS's client-authenticating endpoints
under `/t/{tenant}/` and whose `registries` are the two registry endpoints, each with its `tenant`.

In each tenant a client registers itself as `payments` through dynamic client registration (RFC 7591, through
Envoy), acme's with dn-client's certificate, globex's with other-client's: one client id, two tenants, two
certificates. openid-client (test-harness/as/client.mjs) then shows that each gets its certificate-bound token in
its own tenant, and that at every client-authenticating endpoint (token, introspection, revocation, PAR) each
certificate is refused in the other tenant with 401 invalid_client before the AS: the AS logs every request it
gets, and the refused ones are not in its log. Last, one tenant's AS (and so its registry endpoint) goes down:
the other tenant's registry keeps refreshing and its clients keep being served."""
from __future__ import annotations

import json

import pytest

from conftest import AS_INITIAL_ACCESS_TOKEN, AS_REDIRECT_URI
from oauth_mtls_harness import client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.envoy import poll

TENANTS = ("acme", "globex")
OTHER = {"acme": "globex", "globex": "acme"}
CLIENT_ID = "payments"
# Each tenant's `payments` authenticates with its own certificate (both issued by the trusted CA 1).
CERT = {"acme": "dn-client", "globex": "other-client"}
SUBJECT_DN = {"dn-client": pki.DN_CLIENT_RFC4514, "other-client": "CN=other-client,O=Example Bank,C=GB"}
# node-oidc-provider's client-authenticating endpoints, under each tenant's prefix.
ENDPOINTS = ["/t/{tenant}/token", "/t/{tenant}/token/introspection", "/t/{tenant}/token/revocation",
             "/t/{tenant}/request"]
JWT_AUTHN = "envoy.filters.http.jwt_authn"


def registries(max_stale_seconds: int) -> list[dict]:
    """One registry per tenant: its AS's registry endpoint, every item it serves of that tenant."""
    return [{"cluster": f"as_registry_{t}", "authority": f"as-registry-{t}.local", "path": "/registry/clients",
             "refresh_seconds": 1, "timeout_ms": 2000, "max_stale_seconds": max_stale_seconds, "tenant": t}
            for t in TENANTS]


def payments_metadata(cert: str) -> dict:
    """RFC 7591 metadata of a `payments` client: tls_client_auth by the subject DN of `cert`, certificate-bound
    tokens; client credentials, and the authorization code flow (for pushed authorization requests)."""
    return {"client_id": CLIENT_ID, "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": SUBJECT_DN[cert], "tls_client_certificate_bound_access_tokens": True,
            "grant_types": ["client_credentials", "authorization_code"], "response_types": ["code"],
            "redirect_uris": [AS_REDIRECT_URI]}


class MultiTenantAs:
    """One Envoy with one filter in front of one node-oidc-provider per tenant."""

    def __init__(self, envoy: envoy_mod.Envoy, ases: dict[str, servers.OidcProvider]):
        self.envoy, self.ases = envoy, ases

    def issuer(self, tenant: str) -> str:
        return f"https://localhost:{self.envoy.port}/t/{tenant}"

    def registry_stat(self, tenant: str, stat: str) -> float:
        return self.envoy.stat(f"oauth_mtls.registries.{TENANTS.index(tenant)}.{stat}")

    def stop(self) -> None:
        self.envoy.stop()
        for a in self.ases.values():
            a.stop()


def envoy_config(ports: dict[int, int], as_ports: dict[str, tuple[int, int]], plugin_changes: dict) -> dict:
    """envoy/as-resources.yaml with one route, one AS cluster and one registry cluster per tenant (the shipped
    ones copied and renamed), the filter's plugin JSON updated with `plugin_changes`; without the protected API
    (jwt_authn, its route and cluster), which is not what this file tests."""
    cfg = envoy_mod.render("as-resources.yaml", ports, without_http_filters=(JWT_AUTHN,))
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    out = []
    for tenant, (as_port, registry_port) in as_ports.items():
        for shipped, name, port in (("authorization_server", f"as_{tenant}", as_port),
                                    ("as_registry", f"as_registry_{tenant}", registry_port)):
            c = json.loads(json.dumps(clusters[shipped]))
            c["name"] = c["load_assignment"]["cluster_name"] = name
            (endpoint,) = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
            endpoint["endpoint"]["address"]["socket_address"]["port_value"] = port
            out.append(c)
    cfg["static_resources"]["clusters"] = out
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    vhost["routes"] = [{"match": {"prefix": f"/t/{t}/"}, "route": {"cluster": f"as_{t}"}} for t in TENANTS]
    plugin = envoy_mod.plugin_json(cfg)
    for key in ("registry", "resources", "jwt_payload_metadata", "discovery"):
        plugin.pop(key)
    plugin.update(plugin_changes)
    (wasm,) = envoy_mod.wasm_filters(cfg)
    wasm["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin, indent=1)
    return cfg


def register_payments(stack: MultiTenantAs, tenant: str) -> None:
    """`payments` registers itself in `tenant` by dynamic client registration through Envoy, with its own
    certificate's subject DN; then the filter loads it from that tenant's registry."""
    cert = CERT[tenant]
    reg = client.openid_client("register", issuer=stack.issuer(tenant), cert=cert,
                               initial_access_token=AS_INITIAL_ACCESS_TOKEN,
                               metadata=json.dumps(payments_metadata(cert)))
    assert reg["ok"], reg
    assert reg["client_metadata"]["client_id"] == CLIENT_ID, reg
    poll(lambda: stack.registry_stat(tenant, "clients") >= 1, timeout=20,
         what=f"the filter loaded {tenant}'s payments from {tenant}'s registry")


def deploy(name: str, max_stale_seconds: int = 300) -> MultiTenantAs:
    envoy_mod.require_wasm()
    servers.require_node_modules()
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    as_ports = {t: (envoy_mod.free_port(), envoy_mod.free_port()) for t in TENANTS}
    # the template's single AS, registry and API ports must map somewhere: acme's, and a port nobody uses
    ports = {8443: port, 9901: admin, 9080: as_ports["acme"][0], 9081: as_ports["acme"][1],
             9090: envoy_mod.free_port()}
    cfg = envoy_config(ports, as_ports, {"endpoints": ENDPOINTS, "registries": registries(max_stale_seconds)})
    env = envoy_mod.Envoy(cfg, name, port, admin)
    ases = {t: servers.OidcProvider(f"https://localhost:{port}/t/{t}", as_port, registry_port, [], env.dir / t,
                                    initial_access_token=AS_INITIAL_ACCESS_TOKEN, name=f"{name}-{t}")
            for t, (as_port, registry_port) in as_ports.items()}
    stack = MultiTenantAs(env, ases)
    try:
        for a in ases.values():
            a.start()
        env.start()
        for t in TENANTS:
            poll(lambda t=t: stack.registry_stat(t, "refresh_ok") >= 1, timeout=20,
                 what=f"the filter fetched {t}'s registry")
            register_payments(stack, t)
    except Exception:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def stack():
    s = deploy("multi-tenant-as")
    yield s
    s.stop()


def client_credentials(stack: MultiTenantAs, tenant: str, cert: str, resource: str | None = None) -> dict:
    return client.openid_client("client-credentials", issuer=stack.issuer(tenant), cert=cert, client_id=CLIENT_ID,
                                resource=resource)


def opaque_token(stack: MultiTenantAs, tenant: str) -> str:
    """An opaque access token of `tenant`'s payments (server.mjs's <issuer>/opaque-api/ resource): the AS can
    introspect and revoke it, which oidc-provider does not do for JWTs."""
    r = client_credentials(stack, tenant, CERT[tenant], resource=f"{stack.issuer(tenant)}/opaque-api/")
    assert r["ok"] and r["access_token_claims"] is None, r
    return r["token_response"]["access_token"]


def seen_by(stack: MultiTenantAs, tenant: str, result: dict, path: str | None = None) -> list[servers.AsRequest]:
    """What `tenant`'s AS logged of the requests of this client run (optionally: at this path)."""
    return stack.ases[tenant].requests(result["test_id"], path=path)


def assert_refused_before_the_as(stack: MultiTenantAs, tenant: str, result: dict, path: str) -> None:
    assert not result["ok"], result
    assert result["error"].get("status") == 401 and result["error"].get("error") == "invalid_client", result
    assert seen_by(stack, tenant, result, path) == [], f"{tenant}'s AS saw the refused request at {path}"
    assert seen_by(stack, OTHER[tenant], result) == [], f"{OTHER[tenant]}'s AS saw a request to {tenant}"


# ---------------------------------------------------------------- the premise: one client id, two registrations

def test_each_tenant_registered_its_own_payments_with_its_own_certificate(stack):
    docs = {t: {c["client_id"]: c for c in stack.ases[t].registry_document()} for t in TENANTS}
    for t in TENANTS:
        assert docs[t][CLIENT_ID]["tls_client_auth_subject_dn"] == SUBJECT_DN[CERT[t]], docs[t]
    assert docs["acme"][CLIENT_ID] != docs["globex"][CLIENT_ID]
    for t in TENANTS:  # each registry's copy is its tenant's only: one registration each, none refused
        assert stack.registry_stat(t, "clients") == 1 and stack.registry_stat(t, "refused") == 0


# ---------------------------------------------------------------- token endpoint

@pytest.mark.parametrize("tenant", TENANTS)
def test_payments_gets_a_token_bound_to_its_certificate_in_its_own_tenant(stack, tenant):
    cert = CERT[tenant]
    r = client_credentials(stack, tenant, cert)
    assert r["ok"], r
    assert r["token_endpoint_used"] == f"{stack.issuer(tenant)}/token", r
    claims = r["access_token_claims"]
    assert claims["iss"] == stack.issuer(tenant) and claims["client_id"] == CLIENT_ID, claims
    (seen,) = seen_by(stack, tenant, r, f"/t/{tenant}/token")
    assert seen.get("x-mtls-client-id") == CLIENT_ID and seen.get("x-mtls-auth-method") == "tls_client_auth", seen
    assert claims["cnf"]["x5t#S256"] == seen.get("x-mtls-x5t-s256") == pki.x5t_s256(cert), (claims, seen)
    assert seen_by(stack, OTHER[tenant], r) == []


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_other_tenants_payments_certificate_is_refused_before_the_as(stack, tenant):
    r = client_credentials(stack, tenant, CERT[OTHER[tenant]])
    assert "subject" in r.get("error", {}).get("error_description", ""), r
    assert_refused_before_the_as(stack, tenant, r, f"/t/{tenant}/token")
    # the client did reach the AS, for discovery: only its token request was kept from it
    assert seen_by(stack, tenant, r, f"/t/{tenant}/.well-known/openid-configuration"), "discovery not logged"


# ---------------------------------------------------------------- the other client-authenticating endpoints

def refused_in_the_other_tenant_served_in_its_own(stack: MultiTenantAs, tenant: str, command: str, path: str,
                                                   **options: str) -> dict:
    """client.mjs `command` at `tenant`'s `path` as `payments`, first with the other tenant's certificate: refused
    before the AS; then with its own: the AS got it with the filter's verdict. Returns the second run's result."""
    refused = client.openid_client(command, issuer=stack.issuer(tenant), cert=CERT[OTHER[tenant]],
                                   client_id=CLIENT_ID, **options)
    assert_refused_before_the_as(stack, tenant, refused, path)
    r = client.openid_client(command, issuer=stack.issuer(tenant), cert=CERT[tenant], client_id=CLIENT_ID, **options)
    assert r["ok"], r
    (seen,) = seen_by(stack, tenant, r, path)
    assert seen.get("x-mtls-client-id") == CLIENT_ID and seen.get("x-mtls-auth-method") == "tls_client_auth", seen
    return r


@pytest.mark.parametrize("tenant", TENANTS)
def test_introspection_in_its_own_tenant_only(stack, tenant):
    r = refused_in_the_other_tenant_served_in_its_own(stack, tenant, "introspect", f"/t/{tenant}/token/introspection",
                                                      token=opaque_token(stack, tenant))
    info = r["introspection"]
    assert info["active"] and info["client_id"] == CLIENT_ID and info["iss"] == stack.issuer(tenant), info
    assert info["cnf"]["x5t#S256"] == pki.x5t_s256(CERT[tenant]), info


@pytest.mark.parametrize("tenant", TENANTS)
def test_revocation_in_its_own_tenant_only(stack, tenant):
    token = opaque_token(stack, tenant)
    refused_in_the_other_tenant_served_in_its_own(stack, tenant, "revoke", f"/t/{tenant}/token/revocation",
                                                  token=token)
    after = client.openid_client("introspect", issuer=stack.issuer(tenant), cert=CERT[tenant], client_id=CLIENT_ID,
                                 token=token)
    assert after["ok"] and after["introspection"]["active"] is False, after


@pytest.mark.parametrize("tenant", TENANTS)
def test_pushed_authorization_request_in_its_own_tenant_only(stack, tenant):
    r = refused_in_the_other_tenant_served_in_its_own(stack, tenant, "par", f"/t/{tenant}/request",
                                                      redirect_uri=AS_REDIRECT_URI)
    assert r["authorization_url"].startswith(f"{stack.issuer(tenant)}/auth?"), r
    assert r["request_uri"].startswith("urn:ietf:params:oauth:request_uri:"), r


# ---------------------------------------------------------------- one tenant's registry down

def test_one_tenants_registry_down_the_other_keeps_serving():
    """acme's AS, and with it acme's registry endpoint, goes down. The filter's copy of acme's registrations
    ages until it is stale (max_stale_seconds 5 here) and then serves none (fail closed); globex's registry
    keeps refreshing all along: its payments keeps getting tokens, and a client registered in globex after
    acme went down is authenticated too."""
    stack = deploy("multi-tenant-as-registry-down", max_stale_seconds=5)
    try:
        stack.ases["acme"].stop()
        failed, ok = stack.registry_stat("acme", "refresh_failed"), stack.registry_stat("globex", "refresh_ok")
        poll(lambda: stack.registry_stat("acme", "refresh_failed") >= failed + 3, timeout=20,
             what="three failed refreshes of acme's registry")
        assert stack.registry_stat("globex", "refresh_ok") >= ok + 2, "globex's registry stopped refreshing"
        assert stack.registry_stat("globex", "refresh_failed") == 0

        # acme's copy is now stale: its own certificate is refused by the filter (the AS is down anyway)
        poll(lambda: stack.registry_stat("acme", "age_seconds") > 5, timeout=20, what="acme's copy to go stale")
        acme = client.curl(stack.envoy.port, "/t/acme/token", cert=CERT["acme"],
                           headers=[("content-type", client.FORM)], data=client.token_body(CLIENT_ID))
        assert acme.status == 401 and acme.json()["error"] == "invalid_client", acme

        r = client_credentials(stack, "globex", CERT["globex"])
        assert r["ok"], r
        assert r["access_token_claims"]["cnf"]["x5t#S256"] == pki.x5t_s256(CERT["globex"])

        metadata = {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example.com",
                    "tls_client_certificate_bound_access_tokens": True, "grant_types": ["client_credentials"],
                    "response_types": [], "redirect_uris": []}
        reg = client.openid_client("register", issuer=stack.issuer("globex"), cert="san-dns-client",
                                   initial_access_token=AS_INITIAL_ACCESS_TOKEN, metadata=json.dumps(metadata))
        assert reg["ok"], reg
        new_id = reg["client_metadata"]["client_id"]

        def attempt():
            r = client.openid_client("client-credentials", issuer=stack.issuer("globex"), cert="san-dns-client",
                                     client_id=new_id)
            return r if r["ok"] else None
        r = poll(attempt, timeout=15, interval=0.5, what=f"globex's new client {new_id} authenticated")
        (seen,) = stack.ases["globex"].requests(r["test_id"], path="/t/globex/token")
        assert seen.get("x-mtls-client-id") == new_id, seen
    finally:
        stack.stop()
