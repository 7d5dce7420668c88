"""Registrations pulled from the registry cluster: additions and removals take effect without a restart;
outages and garbage keep the last good copy; a copy older than max_stale_seconds fails closed."""
import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client
from oauth_mtls_harness.envoy import poll

PATH = "/registry/main.json"
STALE_PATH = "/registry/stale.json"
NEVER_PATH = "/registry/never.json"

REG_DN = tls_client("reg-dn", subject_dn=pki.DN_CLIENT_RFC4514)
REG_URI = tls_client("reg-uri", san_uri="spiffe://example.org/client")
# the registry's copy of inline-client names another subject: the inline registration must win
REG_INLINE_SHADOW = tls_client("inline-client", subject_dn="CN=other-client,O=Example Bank,C=GB")


def plugin(path, max_stale=300, unknown="reject"):
    return {
        "unknown_client": unknown,
        "clients": [tls_client("inline-client", subject_dn=pki.DN_CLIENT_RFC4514)],
        "registry": {"cluster": "registry", "authority": "registry.test", "path": path, "refresh_seconds": 1,
                     "timeout_ms": 500, "max_stale_seconds": max_stale},
    }


def status_of(envoy, cert, client_id):
    return client.token_request(envoy.port, cert, client_id).status


def wait_status(envoy, cert, client_id, status, what):
    poll(lambda: status_of(envoy, cert, client_id) == status, timeout=10, what=what)


def wait_refreshes(envoy, *counters, n=2):
    """Wait until the sum of `counters` grew by n (refreshes happen every ~1 s)."""
    def total():
        return sum(envoy.stat(c) for c in counters)
    base = total()
    poll(lambda: total() >= base + n, timeout=10, what=f"{n} more of {counters}")


@pytest.fixture(scope="module")
def envoy(envoy_with, registry):
    registry.set(PATH, [REG_DN, REG_URI, REG_INLINE_SHADOW])
    e = envoy_with(plugin(PATH), name="registry")
    wait_status(e, "dn-client", "reg-dn", 200, "first registry load")
    return e


@pytest.fixture
def good_copy(envoy, registry):
    """Each test starts from the good document, loaded (whatever the previous test left behind)."""
    registry.set(PATH, [REG_DN, REG_URI, REG_INLINE_SHADOW])
    wait_status(envoy, "dn-client", "reg-dn", 200, "good registry copy loaded")
    yield
    registry.set(PATH, [REG_DN, REG_URI, REG_INLINE_SHADOW])


def test_registry_client_authenticates(envoy, upstream, good_copy):
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")
    assert_authenticated(client.token_request(envoy.port, "san-uri-client", "reg-uri"), upstream, "reg-uri",
                         "san-uri-client")


def test_registry_client_with_wrong_certificate_is_rejected(envoy, upstream, good_copy):
    assert_invalid_client(client.token_request(envoy.port, "other-client", "reg-dn"), upstream, "subject")


def test_registry_is_fetched_with_configured_authority_and_path(envoy, registry, good_copy):
    fetches = registry.fetches_of(PATH)
    assert fetches, "the registry was never fetched"
    assert fetches[-1].headers.get("host") == ["registry.test"], fetches[-1].headers


def test_registry_stats_report_refreshes_and_client_count(envoy, good_copy):
    wait_refreshes(envoy, "oauth_mtls.registry.refresh_ok", "oauth_mtls.registry.not_modified")
    poll(lambda: envoy.stat("oauth_mtls.registry.clients") == 3, what="gauge oauth_mtls.registry.clients == 3")


def test_inline_registration_takes_precedence_over_registry(envoy, upstream, good_copy):
    assert_authenticated(client.token_request(envoy.port, "dn-client", "inline-client"), upstream,
                         "inline-client", "dn-client")
    assert_invalid_client(client.token_request(envoy.port, "other-client", "inline-client"), upstream, "subject")


def test_client_added_to_registry_is_accepted_without_restart(envoy, registry, upstream, good_copy):
    assert_invalid_client(client.token_request(envoy.port, "dn-client", "added-later"), upstream, "unknown client")
    registry.set(PATH, [REG_DN, REG_URI, tls_client("added-later", subject_dn=pki.DN_CLIENT_RFC4514)])
    wait_status(envoy, "dn-client", "added-later", 200, "added-later accepted")


def test_client_removed_from_registry_becomes_unknown(envoy, registry, upstream, good_copy):
    registry.set(PATH, [REG_URI])
    wait_status(envoy, "dn-client", "reg-dn", 401, "reg-dn gone")
    assert_invalid_client(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "unknown client")


def test_registry_document_may_be_a_clients_object(envoy, registry, upstream, good_copy):
    registry.set(PATH, {"clients": [REG_DN, tls_client("object-form", subject_dn=pki.DN_CLIENT_RFC4514)]})
    wait_status(envoy, "dn-client", "object-form", 200, "client from {clients: [...]} accepted")


def test_registry_outage_keeps_last_good_copy(envoy, registry, upstream, good_copy):
    registry.update(PATH, status=503)
    wait_refreshes(envoy, "oauth_mtls.registry.refresh_failed")
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")


def test_registry_unreachable_keeps_last_good_copy(envoy, registry, upstream, good_copy):
    registry.update(PATH, drop=True)
    wait_refreshes(envoy, "oauth_mtls.registry.refresh_failed")
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")


def test_registry_timeout_keeps_last_good_copy(envoy, registry, upstream, good_copy):
    registry.update(PATH, delay=1.5)
    wait_refreshes(envoy, "oauth_mtls.registry.refresh_failed")
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")


@pytest.mark.parametrize("garbage", [b"not json{", b'{"clients": 7}', b'"a string"'],
                         ids=["not-json", "clients-not-array", "json-string"])
def test_registry_garbage_keeps_last_good_copy(envoy, registry, upstream, good_copy, garbage):
    registry.set(PATH, garbage)
    wait_refreshes(envoy, "oauth_mtls.registry.refresh_failed")
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")


def test_registry_not_modified_keeps_last_copy(envoy, registry, upstream, good_copy):
    """The registry server answers If-None-Match with 304. The README does not promise conditional requests,
    so this only checks that IF the filter makes them, a 304 keeps the clients."""
    if not any("if-none-match" in f.headers for f in registry.fetches_of(PATH)):
        pytest.skip("the filter sends no If-None-Match: nothing to check (explicit skip, not a failure)")
    base = registry.fetch_count(PATH, status=304)
    poll(lambda: registry.fetch_count(PATH, status=304) >= base + 2, timeout=10, what="two more 304 answers")
    assert_authenticated(client.token_request(envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")


# ---------------------------------------------------------------- staleness

def test_registry_copy_older_than_max_stale_seconds_fails_closed(envoy_with, registry, upstream):
    registry.set(STALE_PATH, [REG_DN])
    e = envoy_with(plugin(STALE_PATH, max_stale=3, unknown="pass"), name="registry-stale")
    wait_status(e, "dn-client", "reg-dn", 200, "first registry load")
    registry.update(STALE_PATH, status=503)
    wait_status(e, "dn-client", "reg-dn", 401, "registry clients rejected once stale")
    assert_invalid_client(client.token_request(e.port, "dn-client", "reg-dn"), upstream, "registry")
    # inline clients do not depend on the registry
    assert_authenticated(client.token_request(e.port, "dn-client", "inline-client"), upstream, "inline-client",
                         "dn-client")
    registry.update(STALE_PATH, status=200)
    wait_status(e, "dn-client", "reg-dn", 200, "registry clients accepted again after recovery")


def test_registry_never_loaded_fails_closed(envoy_with, registry, upstream):
    registry.set(NEVER_PATH, b"", status=503)
    e = envoy_with(plugin(NEVER_PATH, unknown="pass"), name="registry-never")
    assert_invalid_client(client.token_request(e.port, "dn-client", "reg-dn"), upstream, "registry")
