"""The harness itself, against Envoy WITHOUT the filter (needs no wasm): the shipped listener/HCM settings
behave as the filter tests assume, and each client helper delivers the body intact. If these fail, the
filter tests' failures say nothing about the filter."""
import hashlib
import subprocess
import urllib.parse

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import FILTER_HEADERS
from oauth_mtls_harness.client import FORM, token_body


@pytest.fixture(scope="module")
def plain(envoy_with):
    return envoy_with(None, with_filter=False)


def test_x5t_s256_is_base64url_sha256_of_der_without_padding(pki_dir):
    fp = subprocess.run(["openssl", "x509", "-in", str(pki.cert_path("dn-client")), "-noout", "-fingerprint",
                         "-sha256"], capture_output=True, text=True, check=True).stdout
    hexdigest = fp.strip().split("=", 1)[1].replace(":", "").lower()
    assert hashlib.sha256(pki.der("dn-client")).hexdigest() == hexdigest
    assert "=" not in pki.x5t_s256("dn-client") and len(pki.x5t_s256("dn-client")) == 43


def test_pki_has_the_expected_chains(pki_dir):
    def verify(name, ca):
        return subprocess.run(["openssl", "verify", "-CAfile", str(pki_dir / ca), str(pki.cert_path(name))],
                              capture_output=True).returncode == 0
    assert verify("dn-client", "ca.pem") and verify("dn-client-ca2", "ca.pem")
    assert not verify("dn-client-rogue", "ca.pem") and not verify("self-signed-1", "ca.pem")
    assert verify("forwarder", "ca1.pem") and not verify("dn-client-ca2", "ca1.pem")


def test_request_without_certificate_reaches_upstream(plain, upstream):
    r = client.token_request(plain.port, None)
    assert r.status == 200 and len(upstream.find(r.test_id)) == 1


@pytest.mark.parametrize("cert", ["dn-client", "self-signed-1", "dn-client-rogue"])
def test_listener_accepts_trusted_self_signed_and_rogue_certificates(plain, upstream, cert):
    assert client.token_request(plain.port, cert).status == 200


def test_http2_is_negotiated(plain, upstream):
    r = client.token_request(plain.port, "dn-client", http2=True)
    assert r.status == 200


def test_client_sent_xfcc_is_sanitized(plain, upstream):
    r = client.curl(plain.port, "/x", cert="dn-client", headers=[("x-forwarded-client-cert", "Hash=00")])
    assert "x-forwarded-client-cert" not in upstream.find(r.test_id)[0].headers


def test_one_byte_chunks_arrive_intact(plain, upstream):
    body = token_body("demo-client").encode()
    r = client.http1_request(plain.port, "POST", "/token", [("content-type", FORM)], body, "dn-client", chunk_size=1)
    assert r.status == 200 and upstream.find(r.test_id)[0].body == body.decode()


def test_h2_data_frames_and_trailers_arrive_intact(plain, upstream):
    body = token_body("demo-client").encode()
    parts = [body[:5], body[5:17], body[17:]]
    r = client.h2_request(plain.port, "POST", "/token", [("content-type", FORM)], parts, "dn-client",
                          trailers=[("x-trailer", "t")])
    assert r.status == 200 and upstream.find(r.test_id)[0].body == body.decode()


def test_repeated_header_lines_arrive_repeated(plain, upstream):
    r = client.http1_request(plain.port, "GET", "/x", [("x-dup", "a"), ("x-dup", "b")], b"", None)
    assert upstream.find(r.test_id)[0].headers["x-dup"] in (["a", "b"], ["a,b"], ["a, b"])


@pytest.mark.parametrize("path", ["//token", "/%74oken", "/x/../token", "/./token"])
def test_paths_are_normalised_before_filters(plain, upstream, path):
    r = client.token_request(plain.port, "dn-client", path=path)
    assert r.status == 200 and upstream.find(r.test_id)[0].path == "/token"


def test_escaped_slash_is_rejected(plain, upstream):
    r = client.token_request(plain.port, "dn-client", path="/%2Ftoken")
    assert r.status == 400 and upstream.find(r.test_id) == []


def test_front_proxy_forwards_client_certificate_in_xfcc(front_proxy_with, upstream):
    front, inner = front_proxy_with(None, with_filter=False)
    r = client.token_request(front.port, "dn-client", headers=[("x-forwarded-client-cert", "Cert=forged")])
    assert r.status == 200, r
    (seen,) = upstream.find(r.test_id)
    (xfcc,) = seen.headers["x-forwarded-client-cert"]
    assert "forged" not in xfcc
    assert f"Hash={pki.sha256_hex('dn-client')}" in xfcc
    assert urllib.parse.quote(pki.pem("dn-client"), safe="")[:80] in xfcc or "Cert=" in xfcc
    assert 'Subject="CN=dn-client,OU=Payments,O=Example Bank,C=GB"' in xfcc
    assert not any(h in seen.headers for h in FILTER_HEADERS)


def test_front_proxy_refuses_untrusted_client_chains(front_proxy_with):
    front, _ = front_proxy_with(None, with_filter=False)
    with pytest.raises(client.CurlError):
        client.token_request(front.port, "dn-client-rogue")


def test_shipped_listener_does_not_resume_tls_sessions(plain, upstream):
    _, second, resumed = client.http1_twice_with_resumed_session(plain.port, "GET", "/x", [], b"", "dn-client")
    assert second.status == 200 and not resumed
