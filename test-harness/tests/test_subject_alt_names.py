"""tls_client_auth by subjectAltName (RFC 8705 §2.1.2): dNSName, iPAddress, uniformResourceIdentifier,
rfc822Name. Rejections name the SAN type in RFC 5280 terms."""
import pytest

from oauth_mtls_harness import client
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client

PLUGIN = {"clients": [
    tls_client("dns-second", san_dns="client.example.com"),
    tls_client("dns-first", san_dns="first.example.com"),
    tls_client("dns-case", san_dns="CLIENT.Example.COM"),
    tls_client("dns-other", san_dns="other.example.com"),
    tls_client("ip4", san_ip="10.1.2.3"),
    tls_client("ip6-uncompressed", san_ip="2001:db8:0:0:0:0:0:1"),
    tls_client("ip6-compressed", san_ip="2001:db8::1"),
    tls_client("ip-other", san_ip="10.1.2.4"),
    tls_client("ip6-other", san_ip="2001:db8::2"),
    tls_client("uri", san_uri="spiffe://example.org/client"),
    tls_client("uri-other", san_uri="spiffe://example.org/other"),
    tls_client("email", san_email="Ops@Example.com"),
    tls_client("email-domain-case", san_email="Ops@example.COM"),
    tls_client("email-other", san_email="someone@Example.com"),
]}


@pytest.fixture(scope="module")
def envoy(envoy_with):
    return envoy_with(PLUGIN, name="san")


def accepted(envoy, upstream, client_id, cert):
    assert_authenticated(client.token_request(envoy.port, cert, client_id), upstream, client_id, cert)


def rejected(envoy, upstream, client_id, cert, *kw):
    assert_invalid_client(client.token_request(envoy.port, cert, client_id), upstream, *kw)


def test_second_dns_san_matches(envoy, upstream):
    accepted(envoy, upstream, "dns-second", "san-dns-client")


def test_first_dns_san_matches(envoy, upstream):
    accepted(envoy, upstream, "dns-first", "san-dns-client")


def test_dns_san_compares_case_insensitively(envoy, upstream):
    accepted(envoy, upstream, "dns-case", "san-dns-client")


def test_unlisted_dns_name_is_rejected_naming_dnsname(envoy, upstream):
    rejected(envoy, upstream, "dns-other", "san-dns-client", "dNSName")


def test_certificate_without_dns_san_is_rejected_naming_dnsname(envoy, upstream):
    rejected(envoy, upstream, "dns-second", "dn-client", "dNSName")


def test_ipv4_san_matches(envoy, upstream):
    accepted(envoy, upstream, "ip4", "san-ip-client")


def test_uncompressed_ipv6_registration_matches_compressed_certificate_address(envoy, upstream):
    accepted(envoy, upstream, "ip6-uncompressed", "san-ip-client")


def test_compressed_ipv6_registration_matches(envoy, upstream):
    accepted(envoy, upstream, "ip6-compressed", "san-ip-client")


def test_other_ipv4_is_rejected_naming_ipaddress(envoy, upstream):
    rejected(envoy, upstream, "ip-other", "san-ip-client", "iPAddress")


def test_other_ipv6_is_rejected_naming_ipaddress(envoy, upstream):
    rejected(envoy, upstream, "ip6-other", "san-ip-client", "iPAddress")


def test_uri_san_matches(envoy, upstream):
    accepted(envoy, upstream, "uri", "san-uri-client")


def test_other_uri_is_rejected_naming_uniformresourceidentifier(envoy, upstream):
    rejected(envoy, upstream, "uri-other", "san-uri-client", "uniformResourceIdentifier")


def test_email_san_matches(envoy, upstream):
    accepted(envoy, upstream, "email", "san-email-client")


def test_email_domain_part_compares_case_insensitively(envoy, upstream):
    accepted(envoy, upstream, "email-domain-case", "san-email-client")


def test_other_email_is_rejected_naming_rfc822name(envoy, upstream):
    rejected(envoy, upstream, "email-other", "san-email-client", "rfc822Name")


def test_san_client_with_untrusted_chain_is_not_validated(envoy, upstream):
    rejected(envoy, upstream, "dns-second", "self-signed-1", "not validated")
