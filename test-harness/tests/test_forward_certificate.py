"""forward_certificate: the authenticated leaf goes to the AS in the configured header and format, and a
client-sent copy of that header never reaches the AS."""
import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_authenticated, assert_passed_without_annotation, tls_client

FORMATS = [("x-wso2-mtls-cert", "pem"), ("ssl-client-cert", "pem-urlencoded"), ("x-client-cert-der", "base64-der"),
           ("x-rfc9440-cert", "rfc9440")]


@pytest.fixture(scope="module", params=FORMATS, ids=[f for _, f in FORMATS])
def configured(request, envoy_with):
    header, fmt = request.param
    plugin = {"forward_certificate": {"header": header, "format": fmt},
              "clients": [tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514)]}
    return envoy_with(plugin, name=f"forward-{fmt}"), header, fmt


def test_leaf_is_forwarded_in_configured_header_and_format(configured, upstream):
    envoy, header, fmt = configured
    r = client.token_request(envoy.port, "dn-client", headers=[(header, "spoofed")])
    assert_authenticated(r, upstream, "demo-client", "dn-client", header=header, fmt=fmt)


def test_configured_header_sent_by_client_is_stripped_elsewhere(configured, upstream):
    envoy, header, _ = configured
    r = client.curl(envoy.port, "/userinfo", cert="dn-client", headers=[(header, pki.rfc9440("dn-client"))])
    assert_passed_without_annotation(r, upstream, extra_headers=(header,))
