"""self_signed_tls_client_auth (RFC 8705 §2.2): the presented certificate must be x5c[0] of a JWK in the
client's `jwks` or `jwks_uri`; jwks_uri keys rotate without a restart."""
import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, self_signed_client, tls_client
from oauth_mtls_harness.envoy import poll

ROTATING = "/rotation/keys.json"
PLUGIN = {
    "jwks_cluster": "jwks",
    "jwks_min_refresh_seconds": 1,
    "jwks_timeout_ms": 2000,
    "clients": [
        self_signed_client("ss-inline", jwks=pki.jwks("self-signed-1")),
        self_signed_client("ss-both", jwks=pki.jwks("self-signed-1", "self-signed-2")),
        self_signed_client("ss-rotating", jwks_uri="http://jwks.test" + ROTATING),
        tls_client("dn-client-id", subject_dn=pki.DN_CLIENT_RFC4514),
    ],
}


@pytest.fixture(scope="module")
def envoy(envoy_with, jwks_server):
    jwks_server.set(ROTATING, pki.jwks("self-signed-1"))
    return envoy_with(PLUGIN, name="self-signed")


def request(envoy, cert, client_id):
    return client.token_request(envoy.port, cert, client_id)


def test_registered_self_signed_certificate_is_accepted(envoy, upstream):
    assert_authenticated(request(envoy, "self-signed-1", "ss-inline"), upstream, "ss-inline", "self-signed-1",
                         method="self_signed_tls_client_auth")


def test_any_certificate_of_the_jwk_set_is_accepted(envoy, upstream):
    assert_authenticated(request(envoy, "self-signed-2", "ss-both"), upstream, "ss-both", "self-signed-2",
                         method="self_signed_tls_client_auth")


def test_other_self_signed_certificate_is_rejected_naming_the_jwk_set(envoy, upstream):
    assert_invalid_client(request(envoy, "self-signed-2", "ss-inline"), upstream, "JWK")


def test_ca_issued_certificate_not_in_the_jwk_set_is_rejected(envoy, upstream):
    assert_invalid_client(request(envoy, "dn-client", "ss-inline"), upstream, "JWK")


def test_self_signed_client_without_certificate_is_rejected(envoy, upstream):
    assert_invalid_client(request(envoy, None, "ss-inline"), upstream, "no client certificate")


def test_self_signed_certificate_cannot_authenticate_a_tls_client_auth_client(envoy, upstream):
    assert_invalid_client(request(envoy, "self-signed-1", "dn-client-id"), upstream, "not validated")


def test_jwks_uri_keys_rotate_without_restart(envoy, upstream, jwks_server):
    jwks_server.set(ROTATING, pki.jwks("self-signed-1"))
    r = poll(lambda: (lambda r: r if r.status == 200 else None)(request(envoy, "self-signed-1", "ss-rotating")),
             what="self-signed-1 accepted through jwks_uri")
    assert_authenticated(r, upstream, "ss-rotating", "self-signed-1", method="self_signed_tls_client_auth")
    fetches = jwks_server.fetches_of(ROTATING)
    assert fetches and fetches[0].headers.get("host") == ["jwks.test"], "jwks_uri fetched with the wrong authority"

    jwks_server.set(ROTATING, pki.jwks("self-signed-2"))
    r = poll(lambda: (lambda r: r if r.status == 200 else None)(request(envoy, "self-signed-2", "ss-rotating")),
             what="self-signed-2 accepted after the key rotation")
    assert_authenticated(r, upstream, "ss-rotating", "self-signed-2", method="self_signed_tls_client_auth")
    r = poll(lambda: (lambda r: r if r.status == 401 else None)(request(envoy, "self-signed-1", "ss-rotating")),
             what="self-signed-1 rejected after it left the JWK Set")
    assert_invalid_client(r, upstream, "JWK")
