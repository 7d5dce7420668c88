"""The configurations users copy (envoy/*.yaml) are valid for Envoy 1.40 with the built filter, and the
direct one works as shipped (only ports and file paths rewired)."""
import pathlib

import pytest

from oauth_mtls_harness import client
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client

YAMLS = sorted(p.name for p in envoy_mod.ENVOY_DIR.glob("*.yaml"))


def test_envoy_directory_has_the_documented_deployments():
    assert {"direct-mtls.yaml", "front-proxy.yaml", "behind-front-proxy.yaml", "as-resources.yaml"} <= set(YAMLS)


@pytest.mark.parametrize("name", YAMLS)
def test_envoy_validate_accepts(name, pki_dir):
    try:
        envoy_mod.require_wasm()
    except envoy_mod.WasmMissing as e:
        pytest.fail(str(e), pytrace=False)
    proc = envoy_mod.validate(pathlib.Path(envoy_mod.ENVOY_DIR / name))
    assert proc.returncode == 0 and " OK" in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_shipped_direct_config_authenticates_its_demo_client(envoy_with, upstream):
    e = envoy_with(None, name="shipped-direct")
    assert_authenticated(client.token_request(e.port, "dn-client", "demo-client"), upstream, "demo-client",
                         "dn-client")
    assert_authenticated(client.token_request(e.port, "san-dns-client", "demo-dns-client"), upstream,
                         "demo-dns-client", "san-dns-client")
    assert_invalid_client(client.token_request(e.port, "other-client", "demo-client"), upstream, "subject")


FILTER_MAX_BODY = 1048576  # the largest max_body_bytes the filter accepts
WITH_FILTER = [n for n in YAMLS if envoy_mod.wasm_filters(envoy_mod.load(n))]


def test_the_filter_ships_in_the_documented_deployments():
    assert {"direct-mtls.yaml", "behind-front-proxy.yaml", "as-resources.yaml"} <= set(WITH_FILTER)


@pytest.mark.parametrize("name", WITH_FILTER)
def test_a_failed_vm_is_reloaded_with_an_explicit_backoff_never_bypassed(name):
    """FAIL_RELOAD still refuses every request while no VM runs (test_failure_policy.py); never FAIL_OPEN."""
    for f in envoy_mod.wasm_filters(envoy_mod.load(name)):
        cfg = f["typed_config"]["config"]
        assert cfg["failure_policy"] == "FAIL_RELOAD" and "fail_open" not in cfg
        assert cfg["reload_config"]["backoff"]["base_interval"] == "1s"


@pytest.mark.parametrize("name", WITH_FILTER)
def test_envoy_buffers_more_than_the_filters_largest_body_on_the_way_in_and_to_the_as(name):
    """So that a body over max_body_bytes gets the filter's JSON 413, not Envoy's (test_envoy_limits.py)."""
    cfg = envoy_mod.load(name)
    for listener in cfg["static_resources"]["listeners"]:
        assert listener["per_connection_buffer_limit_bytes"] > FILTER_MAX_BODY, listener["name"]
    (cluster,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "authorization_server"]
    assert cluster["per_connection_buffer_limit_bytes"] > FILTER_MAX_BODY


@pytest.mark.parametrize("name", YAMLS)
def test_every_connection_manager_refuses_header_names_with_underscores(name):
    """x_mtls_client_id reads as x-mtls-client-id to CGI/WSGI/Rack/PHP servers (test_envoy_limits.py)."""
    hcms = [f["typed_config"] for listener in envoy_mod.load(name)["static_resources"]["listeners"]
            for chain in listener["filter_chains"] for f in chain["filters"]
            if f["name"] == "envoy.filters.network.http_connection_manager"]
    assert hcms
    for hcm in hcms:
        assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
