"""What operators see of the filter in a real Envoy: every decision in Envoy's own access log (the filter state
wasm.oauth_mtls and the local reply's details), its log lines with Envoy's prefix once, its stats under the
plugin's name and under the Prometheus names docs/operations.md lists, and readiness_path through a registry
outage and its recovery."""
import json
import re
import uuid

import pytest

from oauth_mtls_harness import client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client
from oauth_mtls_harness.envoy import poll

OPERATIONS = envoy_mod.REPO / "docs" / "operations.md"
READY = "/oauth-mtls/ready"  # the shipped configurations' readiness_path


def access_log(e: envoy_mod.Envoy) -> list[dict]:
    """The JSON access-log lines Envoy wrote to stdout so far."""
    lines = e.out_path.read_text(errors="replace").splitlines() if e.out_path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def logged(e: envoy_mod.Envoy, after: int, match) -> dict:
    """The first access-log line after the first `after` lines for which match(line) holds (waits for it)."""
    return poll(lambda: next((x for x in access_log(e)[after:] if match(x)), None), timeout=10,
                what="the request's access-log line")


def decision(line: dict) -> dict:
    """The filter's decision in an access-log line: %FILTER_STATE(wasm.oauth_mtls:PLAIN)%, a JSON object as text."""
    assert isinstance(line["oauth_mtls"], str), line
    return json.loads(line["oauth_mtls"])


@pytest.fixture(scope="module")
def shipped(envoy_with):
    """envoy/direct-mtls.yaml as shipped (unknown_client: pass, demo-client by subject DN), once its readiness path
    says the registry has loaded (before that a client the registry may hold is refused, not passed)."""
    e = envoy_with(None, name="observability")
    poll(lambda: client.curl(e.port, READY).status == 200, what="the shipped filter ready")
    return e


def test_an_authenticated_request_is_in_the_access_log_with_its_client_method_and_thumbprints(shipped, upstream):
    before = len(access_log(shipped))
    assert_authenticated(client.token_request(shipped.port, "dn-client", "demo-client"), upstream, "demo-client",
                         "dn-client")
    line = logged(shipped, before, lambda x: x["status"] == 200 and x["client_id"] == "demo-client")
    assert decision(line) == {"verdict": "authenticated", "client_id": "demo-client", "auth_method": "tls_client_auth",
                              "x5t_s256": pki.x5t_s256("dn-client"), "sha256": pki.sha256_hex("dn-client")}
    assert line["peer_sha256"] == pki.sha256_hex("dn-client")


def test_a_passed_request_is_in_the_access_log_with_why_it_passed(shipped, upstream):
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    before = len(access_log(shipped))
    resp = client.token_request(shipped.port, "dn-client", stranger)
    assert resp.status == 200 and upstream.find(resp.test_id)
    line = logged(shipped, before, lambda x: stranger in (x["oauth_mtls"] or ""))
    assert decision(line)["verdict"] == "passed" and decision(line)["reason"] == "unknown_client", line
    assert line["client_id"] is None, "a passed request carries no x-mtls-client-id"


def test_a_refused_request_is_in_the_access_log_with_its_reason_path_and_request_id(shipped, upstream):
    before = len(access_log(shipped))
    assert_invalid_client(client.token_request(shipped.port, "other-client", "demo-client"), upstream, "subject")
    line = logged(shipped, before, lambda x: x["status"] == 401 and x["path"] == "/token")
    assert line["details"] == "oauth_mtls.rejected.subject_mismatch", line
    assert decision(line) == {"verdict": "rejected", "reason": "subject_mismatch", "client_id": "demo-client",
                              "x5t_s256": pki.x5t_s256("other-client"), "sha256": pki.sha256_hex("other-client")}
    # The filter's own line names the same request: path, Envoy's request id, the thumbprint in hex.
    request_id = line["request_id"]
    poll(lambda: f"request_id={request_id}" in shipped.log_text(), what="the rejection's log line")
    (own,) = [ln for ln in shipped.log_text().splitlines() if f"request_id={request_id}" in ln]
    assert "reason=subject_mismatch" in own and "path=/token" in own, own
    assert f"sha256={pki.sha256_hex('other-client')}" in own, own


def test_a_request_the_filter_does_not_act_on_has_no_decision(shipped, upstream):
    before = len(access_log(shipped))
    resp = client.curl(shipped.port, "/userinfo", cert="dn-client")
    assert resp.status == 200
    line = logged(shipped, before, lambda x: x["path"] == "/userinfo")
    assert line["oauth_mtls"] is None, line


def test_the_filters_log_lines_carry_envoys_prefix_once(shipped):
    text = shipped.log_text()
    assert "oauth-mtls-filter" not in text, "the filter adds no prefix of its own"
    configured = [ln for ln in text.splitlines() if "configured:" in ln and "[wasm]" in ln]
    assert configured, "the filter logs its configuration"
    # Envoy's prefix: `wasm log <root id> <vm id>:` for the plugin's root context.
    assert all(re.search(r"wasm log oauth_mtls oauth_mtls: configured: ", ln) for ln in configured), configured


# ---------------------------------------------------------------- stats

def documented_prometheus_names() -> dict[str, str]:
    """The Prometheus names docs/operations.md lists (its ```text block after `### Prometheus`), name -> kind."""
    text = OPERATIONS.read_text()
    block = text.split("### Prometheus", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    return dict(line.split() for line in block.strip().splitlines())


def prometheus_types(e: envoy_mod.Envoy) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", e.admin("/stats/prometheus"), re.M)}


def test_every_documented_prometheus_name_is_what_envoy_exports_and_nothing_else(shipped):
    documented = documented_prometheus_names()
    exported = {name: kind for name, kind in prometheus_types(shipped).items() if name.startswith("oauth_mtls_")}
    assert exported == documented


def test_stats_are_named_after_the_plugin(upstream):
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    cfg = envoy_mod.render("direct-mtls.yaml", {8443: port, 9901: admin, 9080: upstream.port,
                                                9081: envoy_mod.free_port(), 9082: envoy_mod.free_port()})
    (wasm,) = envoy_mod.wasm_filters(cfg)
    wasm["typed_config"]["config"]["name"] = "oauth_mtls_realma"
    e = envoy_mod.Envoy(cfg, "stats-realma", port, admin).start()
    try:
        assert_invalid_client(client.token_request(port, "other-client", "demo-client"), upstream, "subject")
        poll(lambda: e.stats().get("wasmcustom.oauth_mtls_realma.rejected.subject_mismatch") == 1,
             what="the rejection counted under the plugin's name")
        assert not [k for k in e.stats() if k.startswith("wasmcustom.oauth_mtls.")]
        assert "oauth_mtls_realma_rejected_subject_mismatch" in prometheus_types(e)
    finally:
        e.stop()


# ---------------------------------------------------------------- readiness

def readiness_plugin() -> dict:
    return {"readiness_path": READY, "unknown_client": "reject",
            "clients": [tls_client("inline-client", subject_dn=pki.DN_CLIENT_RFC4514)],
            "registry": {"cluster": "registry", "authority": "registry.test", "path": "/clients",
                         "refresh_seconds": 1, "timeout_ms": 500, "max_stale_seconds": 3}}


def probe(e: envoy_mod.Envoy) -> tuple[int, dict]:
    """The readiness probe as kubelet or a load balancer sends it: GET, no client certificate."""
    resp = client.curl(e.port, READY)
    return resp.status, resp.json()


def test_readiness_follows_the_registry_through_an_outage_and_its_recovery(upstream):
    registry = servers.DocumentServer()
    registry.set("/clients", b"", status=503)
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    cfg = envoy_mod.render("direct-mtls.yaml", {8443: port, 9901: admin, 9080: upstream.port,
                                                9081: registry.port, 9082: envoy_mod.free_port()}, readiness_plugin())
    e = envoy_mod.Envoy(cfg, "readiness", port, admin).start()
    try:
        assert probe(e) == (503, {"status": "not_ready", "reason": "registry_not_loaded"})
        registry.set("/clients", [tls_client("reg-dn", subject_dn=pki.DN_CLIENT_RFC4514)])
        poll(lambda: probe(e)[0] == 200, what="ready once the registry loaded")
        assert probe(e) == (200, {"status": "ready"})
        registry.update("/clients", status=503)
        poll(lambda: probe(e) == (503, {"status": "not_ready", "reason": "registry_stale"}), timeout=15,
             what="not ready once the copy is older than max_stale_seconds")
        registry.update("/clients", status=200)
        poll(lambda: probe(e)[0] == 200, timeout=15, what="ready again after the registry recovered")
    finally:
        e.stop()
        registry.stop()


def test_the_readiness_path_is_answered_by_the_filter_and_reveals_only_readiness(shipped, upstream):
    before = len(access_log(shipped))
    resp = client.curl(shipped.port, READY)
    assert resp.status in (200, 503) and set(resp.json()) <= {"status", "reason"}, resp
    assert resp.header("content-type") == "application/json" and resp.header("cache-control") == "no-store"
    assert not upstream.find(resp.test_id), "the probe never reaches the AS"
    line = logged(shipped, before, lambda x: x["path"] == READY)
    assert line["details"] in ("oauth_mtls.ready", "oauth_mtls.not_ready"), line
