"""Faults around the filter (issue 5): the registry down at start, slow, failing, truncated or huge after a
good load; one registry fetch in flight at a time across Envoy's workers; jwks_uri down or returning
garbage. Each Envoy here has its own registry / JWKS servers (fetches are counted per server).

Covered elsewhere: registry 503, unreachable, timeout and garbage after a good load, staleness after
max_stale_seconds and recovery, never loaded (test_registry.py); jwks_uri rotation (test_self_signed.py)."""
import json
import time

import pytest

from oauth_mtls_harness import client, pki, servers
from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, self_signed_client, tls_client
from oauth_mtls_harness.envoy import poll

PATH = "/clients"
REG_DN = tls_client("reg-dn", subject_dn=pki.DN_CLIENT_RFC4514)
INLINE = tls_client("inline-client", subject_dn=pki.DN_CLIENT_RFC4514)


def registry_plugin(**registry):
    return {"unknown_client": "reject", "clients": [INLINE],
            "registry": {"cluster": "registry", "authority": "registry.test", "path": PATH, "refresh_seconds": 1,
                         "timeout_ms": 500, "max_stale_seconds": 300, **registry}}


def start_envoy(plugin: dict, name: str, upstream, registry_port: int, jwks_port: int) -> envoy_mod.Envoy:
    envoy_mod.require_wasm()
    port, admin = envoy_mod.free_port(), envoy_mod.free_port()
    ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: registry_port, 9082: jwks_port}
    return envoy_mod.Envoy(envoy_mod.render("direct-mtls.yaml", ports, plugin), name, port, admin).start()


def status_of(e, cert, client_id):
    return client.token_request(e.port, cert, client_id).status


def wait_status(e, cert, client_id, status, what, timeout=15):
    poll(lambda: status_of(e, cert, client_id) == status, timeout=timeout, what=what)


def wait_fetches(server, n, path=PATH, timeout=15):
    base = server.fetch_count(path)
    poll(lambda: server.fetch_count(path) >= base + n, timeout=timeout, what=f"{n} more fetches of {path}")


# ---------------------------------------------------------------- registry down at start

def test_registry_down_at_start_inline_clients_work_registry_clients_fail_then_recover(upstream):
    down_port = envoy_mod.free_port()   # nothing listens there yet: connection refused
    e = start_envoy(registry_plugin(), "registry-down-at-start", upstream, down_port, envoy_mod.free_port())
    reg = None
    try:
        assert_authenticated(client.token_request(e.port, "dn-client", "inline-client"), upstream, "inline-client",
                             "dn-client")
        doc = assert_invalid_client(client.token_request(e.port, "dn-client", "reg-dn"), upstream, "registry")
        assert "unknown client" not in doc["error_description"].lower(), doc
        reg = servers.DocumentServer(port=down_port)
        reg.set(PATH, [REG_DN])
        wait_status(e, "dn-client", "reg-dn", 200, "registry client accepted once the registry is up")
        assert_authenticated(client.token_request(e.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")
        assert e.alive()
    finally:
        e.stop()
        if reg:
            reg.stop()


# ---------------------------------------------------------------- registry faults after a good load

@pytest.fixture(scope="module")
def reg_server():
    s = servers.DocumentServer()
    s.set(PATH, [REG_DN])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def reg_envoy(reg_server, upstream):
    e = start_envoy(registry_plugin(), "registry-faults", upstream, reg_server.port, envoy_mod.free_port())
    wait_status(e, "dn-client", "reg-dn", 200, "first registry load")
    yield e
    e.stop()


@pytest.fixture
def good_copy(reg_envoy, reg_server):
    reg_server.set(PATH, [REG_DN])
    wait_status(reg_envoy, "dn-client", "reg-dn", 200, "good registry copy loaded")
    yield
    reg_server.set(PATH, [REG_DN])


def still_serves_last_good_copy(e, upstream):
    assert_authenticated(client.token_request(e.port, "dn-client", "reg-dn"), upstream, "reg-dn", "dn-client")
    assert_invalid_client(client.token_request(e.port, "dn-client", "added-by-bad-copy"), upstream,
                          "unknown client")


def bad_copy_with(*clients) -> bytes:
    return json.dumps([REG_DN, tls_client("added-by-bad-copy", subject_dn=pki.DN_CLIENT_RFC4514), *clients]).encode()


def test_registry_500_after_a_good_load_keeps_the_last_good_copy(reg_envoy, reg_server, upstream, good_copy):
    reg_server.set(PATH, bad_copy_with(), status=500)
    before = reg_envoy.stat("oauth_mtls.registry.refresh_failed")
    wait_fetches(reg_server, 3)
    assert reg_envoy.stat("oauth_mtls.registry.refresh_failed") >= before + 2
    still_serves_last_good_copy(reg_envoy, upstream)


def test_registry_truncated_json_after_a_good_load_keeps_the_last_good_copy(reg_envoy, reg_server, upstream,
                                                                            good_copy):
    body = bad_copy_with()
    reg_server.set(PATH, body[: len(body) * 2 // 3])
    before = reg_envoy.stat("oauth_mtls.registry.refresh_failed")
    wait_fetches(reg_server, 3)
    assert reg_envoy.stat("oauth_mtls.registry.refresh_failed") >= before + 2
    still_serves_last_good_copy(reg_envoy, upstream)


def test_registry_empty_200_body_after_a_good_load_keeps_the_last_good_copy(reg_envoy, reg_server, upstream,
                                                                            good_copy):
    reg_server.set(PATH, b"")
    wait_fetches(reg_server, 3)
    assert_authenticated(client.token_request(reg_envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn",
                         "dn-client")


def test_registry_slow_beyond_timeout_keeps_the_last_good_copy_and_new_clients_wait(reg_envoy, reg_server,
                                                                                   upstream, good_copy):
    reg_server.set(PATH, bad_copy_with(), delay=1.2)
    before = reg_envoy.stat("oauth_mtls.registry.refresh_failed")
    poll(lambda: reg_envoy.stat("oauth_mtls.registry.refresh_failed") >= before + 2, timeout=15,
         what="two timed-out refreshes")
    still_serves_last_good_copy(reg_envoy, upstream)


def test_one_registry_fetch_in_flight_at_a_time_across_workers(reg_envoy, reg_server, good_copy):
    """Envoy runs 2 workers (--concurrency 2) plus the main thread; a lease in shared data lets one of them
    fetch. Each answer takes 0.4 s (under timeout_ms 500): a second concurrent fetch would be seen."""
    reg_server.set(PATH, [REG_DN], delay=0.4, etag=False)
    time.sleep(1.5)
    reg_server.reset_in_flight()
    base, t0 = reg_server.fetch_count(PATH), time.monotonic()
    time.sleep(10)
    fetches, elapsed = reg_server.fetch_count(PATH) - base, time.monotonic() - t0
    assert reg_server.max_in_flight == 1, f"{reg_server.max_in_flight} registry fetches were in flight at once"
    # refresh_seconds 1, jittered ±10 %: at most about one fetch a second in all, not one per worker. (The
    # next refresh is scheduled after the answer, on the filter's 1 s tick, so a 0.4 s answer gives one
    # fetch every ~2 s: the lower bound only checks that refreshes go on.)
    print(f"registry fetches with a 0.4 s answer: {fetches} in {elapsed:.1f}s")
    assert elapsed / 2.5 <= fetches <= elapsed / 0.9 + 2, f"{fetches} fetches in {elapsed:.1f}s"


def test_failing_registry_is_retried_by_one_worker_at_a_time_without_a_herd(reg_envoy, reg_server, upstream,
                                                                           good_copy):
    reg_server.set(PATH, b"", status=500, delay=0.3)
    time.sleep(1.5)
    reg_server.reset_in_flight()
    base, t0 = reg_server.fetch_count(PATH), time.monotonic()
    time.sleep(8)
    fetches, elapsed = reg_server.fetch_count(PATH) - base, time.monotonic() - t0
    assert reg_server.max_in_flight == 1, f"{reg_server.max_in_flight} registry fetches were in flight at once"
    assert fetches <= elapsed / 0.9 + 2, f"{fetches} fetches in {elapsed:.1f}s while failing"
    assert_authenticated(client.token_request(reg_envoy.port, "dn-client", "reg-dn"), upstream, "reg-dn",
                         "dn-client")


# ---------------------------------------------------------------- documents over the size limits

def huge_registration(client_id: str) -> dict:
    reg = tls_client(client_id, subject_dn=pki.DN_CLIENT_RFC4514)
    reg["padding"] = "x" * (50 * 1024 * 1024)   # ignored metadata: the document stays valid JSON
    return reg


def test_registry_document_of_50_mb_after_a_good_load_is_not_loaded_and_the_last_good_copy_serves(upstream):
    """Over registry.max_bytes (16 MiB by default) and over Envoy's async-client body buffer: a valid JSON
    document, so loading it would show (huge-client accepted); the filter must survive the refused fetch."""
    reg = servers.DocumentServer()
    reg.set(PATH, [REG_DN])
    e = start_envoy(registry_plugin(), "registry-50mb", upstream, reg.port, envoy_mod.free_port())
    try:
        wait_status(e, "dn-client", "reg-dn", 200, "first registry load")
        reg.set(PATH, bad_copy_with(huge_registration("huge-client")))
        rss_before = e.rss_kib()
        wait_fetches(reg, 3, timeout=30)
        time.sleep(1)
        still_serves_last_good_copy(e, upstream)
        assert_invalid_client(client.token_request(e.port, "dn-client", "huge-client"), upstream, "unknown client")
        assert e.stat("oauth_mtls.registry.refresh_failed") >= 2
        assert "panicked" not in e.log_text(), "the filter's VM crashed on the oversized registry answer"
        print(f"Envoy RSS before/after three 50 MB registry answers: {rss_before} / {e.rss_kib()} KiB")
        # and it recovers when the registry does
        reg.set(PATH, [REG_DN, tls_client("after-huge", subject_dn=pki.DN_CLIENT_RFC4514)])
        wait_status(e, "dn-client", "after-huge", 200, "registry loaded again after the oversized answers")
    finally:
        e.stop()
        reg.stop()


def test_jwks_uri_document_of_50_mb_keeps_the_last_good_set(upstream):
    keys = servers.DocumentServer()
    keys.set(KEYS, pki.jwks("self-signed-1"))
    e = start_envoy(JWKS_PLUGIN, "jwks-50mb", upstream, envoy_mod.free_port(), keys.port)
    try:
        accepted(e, upstream, "self-signed-1")
        doc = pki.jwks("self-signed-2")
        doc["padding"] = "x" * (50 * 1024 * 1024)
        keys.set(KEYS, doc)
        for _ in range(3):
            assert_invalid_client(ss(e, "self-signed-2"), upstream)
            time.sleep(1.1)
        assert "panicked" not in e.log_text(), "the filter's VM crashed on the oversized JWK Set"
        assert_authenticated(ss(e, "self-signed-1"), upstream, "ss-uri", "self-signed-1",
                             method="self_signed_tls_client_auth")
    finally:
        e.stop()
        keys.stop()


# ---------------------------------------------------------------- jwks_uri faults

KEYS = "/keys.json"
NEVER = "/never.json"
JWKS_PLUGIN = {
    "jwks_cluster": "jwks", "jwks_min_refresh_seconds": 1, "jwks_timeout_ms": 500,
    "clients": [self_signed_client("ss-uri", jwks_uri="http://jwks.test" + KEYS),
                self_signed_client("ss-never", jwks_uri="http://jwks.test" + NEVER)],
}


@pytest.fixture(scope="module")
def jwks_srv():
    s = servers.DocumentServer()
    s.set(KEYS, pki.jwks("self-signed-1"))
    s.set(NEVER, b"", status=503)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def jwks_envoy(jwks_srv, upstream):
    e = start_envoy(JWKS_PLUGIN, "jwks-faults", upstream, envoy_mod.free_port(), jwks_srv.port)
    yield e
    e.stop()


def ss(e, cert, client_id="ss-uri"):
    return client.token_request(e.port, cert, client_id)


def accepted(e, upstream, cert):
    r = poll(lambda: (lambda r: r if r.status == 200 else None)(ss(e, cert)), timeout=10,
             what=f"{cert} accepted through jwks_uri")
    assert_authenticated(r, upstream, "ss-uri", cert, method="self_signed_tls_client_auth")


@pytest.mark.parametrize("fault", [dict(status=503), dict(body=b"<html>not a jwk set"), dict(drop=True),
                                   dict(body=b'{"keys": [{"kty": "RSA"}]}'), dict(delay=1.0)],
                         ids=["503", "garbage", "connection-dropped", "keys-without-x5c", "slow"])
def test_jwks_uri_failing_keeps_the_last_good_set_and_rotation_works_after(jwks_envoy, jwks_srv, upstream, fault):
    jwks_srv.set(KEYS, pki.jwks("self-signed-1"))
    accepted(jwks_envoy, upstream, "self-signed-1")
    body = fault.pop("body", json.dumps(pki.jwks("self-signed-2")).encode())
    jwks_srv.set(KEYS, body, **fault)
    failed = jwks_envoy.stat("oauth_mtls.jwks.fetch_failed")
    fetches = jwks_srv.fetch_count(KEYS)
    # a certificate outside the cached set makes the filter refetch (at most every second): the fetch fails
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert_invalid_client(ss(jwks_envoy, "self-signed-2"), upstream)
        time.sleep(0.3)
    assert jwks_srv.fetch_count(KEYS) > fetches, "the filter did not refetch the jwks_uri on a miss"
    assert jwks_srv.fetch_count(KEYS) - fetches <= 4 / 1 + 2, "refetched more often than jwks_min_refresh_seconds"
    poll(lambda: jwks_envoy.stat("oauth_mtls.jwks.fetch_failed") > failed, what="jwks fetch_failed counted")
    # the last good set still serves
    assert_authenticated(ss(jwks_envoy, "self-signed-1"), upstream, "ss-uri", "self-signed-1",
                         method="self_signed_tls_client_auth")
    # rotation once the jwks_uri is healthy again
    jwks_srv.set(KEYS, pki.jwks("self-signed-2"))
    accepted(jwks_envoy, upstream, "self-signed-2")


def test_jwks_uri_never_loaded_is_invalid_client(jwks_envoy, upstream):
    before = jwks_envoy.stat("oauth_mtls.rejected.jwks_unavailable")
    assert_invalid_client(ss(jwks_envoy, "self-signed-1", "ss-never"), upstream)
    assert jwks_envoy.stat("oauth_mtls.rejected.jwks_unavailable") == before + 1
