"""The configurations users copy (envoy/*.yaml) are valid for Envoy 1.40 with the built filter, and the
direct one works as shipped (only ports and file paths rewired)."""
import pathlib

import pytest

import client
import envoy as envoy_mod
from checks import assert_authenticated, assert_invalid_client

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
