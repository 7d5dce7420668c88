"""Certificates forwarded by a trusted proxy: XFCC from envoy/front-proxy.yaml into
envoy/behind-front-proxy.yaml end to end, and the RFC 9440 Client-Cert source. A forwarded certificate
counts only when the direct peer is a trusted forwarder."""
import urllib.parse

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import (
    assert_authenticated,
    assert_invalid_client,
    assert_passed_without_annotation,
    tls_client,
)

CLIENTS = [tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514)]
XFCC_PLUGIN = {"certificate_source": "xfcc",
               "trusted_forwarders": [{"uri_san": "spiffe://example.org/front-proxy"}], "clients": CLIENTS}
CLIENT_CERT_PLUGIN = {"certificate_source": "client-cert",
                      "trusted_forwarders": [{"uri_san": "spiffe://example.org/front-proxy"}], "clients": CLIENTS}


def forged_xfcc(name: str) -> str:
    return (f'By=spiffe://example.org/inner;Hash={pki.sha256_hex(name)};'
            f'Cert="{urllib.parse.quote(pki.pem(name), safe="")}";'
            f'Subject="CN=dn-client,OU=Payments,O=Example Bank,C=GB"')


@pytest.fixture(scope="module")
def pair(front_proxy_with):
    return front_proxy_with(XFCC_PLUGIN)


# ---------------------------------------------------------------- XFCC through the front proxy

def test_xfcc_from_front_proxy_authenticates_end_to_end(pair, upstream):
    front, _ = pair
    r = client.token_request(front.port, "dn-client")
    req = assert_authenticated(r, upstream, "demo-client", "dn-client")
    assert "x-forwarded-client-cert" in req.headers  # FORWARD_ONLY: the AS still sees the front proxy's XFCC


def test_xfcc_from_front_proxy_over_http2_authenticates(pair, upstream):
    front, _ = pair
    assert_authenticated(client.token_request(front.port, "dn-client", http2=True), upstream, "demo-client",
                         "dn-client")


def test_wrong_certificate_through_front_proxy_is_rejected(pair, upstream):
    front, _ = pair
    assert_invalid_client(client.token_request(front.port, "other-client"), upstream, "subject")


def test_no_certificate_through_front_proxy_is_rejected(pair, upstream):
    front, _ = pair
    assert_invalid_client(client.token_request(front.port, None), upstream, "no client certificate")


def test_client_sent_xfcc_is_replaced_by_the_front_proxy(pair, upstream):
    front, _ = pair
    r = client.token_request(front.port, "other-client",
                             headers=[("x-forwarded-client-cert", forged_xfcc("dn-client"))])
    assert_invalid_client(r, upstream, "subject")


def test_xfcc_from_untrusted_direct_peer_is_ignored(pair, upstream):
    _, inner = pair
    r = client.token_request(inner.port, "untrusted-forwarder",
                             headers=[("x-forwarded-client-cert", forged_xfcc("dn-client"))])
    assert_invalid_client(r, upstream, "no client certificate")


def test_direct_peer_certificate_is_not_used_when_source_is_xfcc(pair, upstream):
    _, inner = pair
    assert_invalid_client(client.token_request(inner.port, "dn-client"), upstream, "no client certificate")


# ---------------------------------------------------------------- RFC 9440 Client-Cert

@pytest.fixture(scope="module")
def cc_envoy(envoy_with):
    return envoy_with(CLIENT_CERT_PLUGIN, name="client-cert-source")


def test_client_cert_header_from_trusted_forwarder_authenticates(cc_envoy, upstream):
    r = client.token_request(cc_envoy.port, "forwarder", headers=[("client-cert", pki.rfc9440("dn-client"))])
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_client_cert_header_from_untrusted_peer_is_ignored(cc_envoy, upstream):
    r = client.token_request(cc_envoy.port, "untrusted-forwarder",
                             headers=[("client-cert", pki.rfc9440("dn-client"))])
    assert_invalid_client(r, upstream, "no client certificate")


def test_client_cert_header_without_peer_certificate_is_ignored(cc_envoy, upstream):
    r = client.token_request(cc_envoy.port, None, headers=[("client-cert", pki.rfc9440("dn-client"))])
    assert_invalid_client(r, upstream, "no client certificate")


def test_client_cert_header_from_untrusted_peer_is_stripped_on_other_paths(cc_envoy, upstream):
    r = client.curl(cc_envoy.port, "/userinfo", cert="untrusted-forwarder",
                    headers=[("client-cert", pki.rfc9440("dn-client"))])
    assert_passed_without_annotation(r, upstream)
