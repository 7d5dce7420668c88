"""The attack matrix (issue 5): hostile certificates, chains, forwarded headers, paths and content types
against the real filter in real Envoy over real mTLS. Each test names the attack and asserts the outcome;
a rejected request must never reach the AS (the echo upstream records every request by x-test-id).

Covered elsewhere (referenced, not repeated): a certificate of another client from the same CA and the
right DN from a second trusted CA, with and without pinning (test_subject_dn.py, test_token_endpoint.py),
other-client's leaf with a rogue cert carrying the registered DN appended
(test_token_endpoint.py::test_only_the_leaf_certificate_is_matched), forwarded headers from an untrusted
peer (test_forwarded_certificates.py), client_id only in the query string, empty / 1-byte-chunk / HTTP/2
trailer bodies (test_token_endpoint.py, test_body_framing.py), spoofed x-mtls-* / client-cert on every path
(test_token_endpoint.py)."""
import urllib.parse

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import (
    assert_authenticated,
    assert_invalid_client,
    assert_invalid_request,
    assert_passed_without_annotation,
    self_signed_client,
    tls_client,
)
from oauth_mtls_harness.client import FORM, token_body

DN = pki.DN_CLIENT_RFC4514
OTHER_DN = "CN=other-client,O=Example Bank,C=GB"
# xfcc-injection-client's subject, RFC 4514-escaped
XFCC_INJECTION_DN = 'CN=x\\"\\;Cert\\=\\"junk\\"\\;Hash\\=\\"00,O=Example Bank,C=GB'

PLUGIN = {
    "unknown_client": "pass",
    "clients": [
        tls_client("demo-client", subject_dn=DN),
        tls_client("other-client", subject_dn=OTHER_DN),
        tls_client("lookalike-client", subject_dn=pki.LOOKALIKE_DN_RFC4514),
        self_signed_client("ss-client", jwks=pki.jwks("self-signed-1")),
    ],
}
FORWARDERS = [{"uri_san": "spiffe://example.org/front-proxy"}]
XFCC_PLUGIN = {
    "certificate_source": "xfcc",
    "trusted_forwarders": FORWARDERS,
    "clients": [
        tls_client("demo-client", subject_dn=DN),
        tls_client("xfcc-inject", subject_dn=XFCC_INJECTION_DN),
        tls_client("special", subject_dn=pki.SPECIAL_DN_RFC4514),
    ],
}
# the same plugin as test_forwarded_certificates.py, so the Envoy process is shared
CLIENT_CERT_PLUGIN = {"certificate_source": "client-cert", "trusted_forwarders": FORWARDERS,
                      "clients": [tls_client("demo-client", subject_dn=DN)]}


@pytest.fixture(scope="module")
def envoy(envoy_with):
    return envoy_with(PLUGIN, name="attacks")


def chain_request(envoy, chain: str, key_of: str, client_id: str):
    d = pki.ensure_pki()
    return client.curl(envoy.port, "/token", method="POST", cert_file=str(d / f"{chain}.pem"),
                       key_file=str(d / f"{key_of}.key"), headers=[("content-type", FORM)],
                       data=token_body(client_id))


# ---------------------------------------------------------------- chains: only the leaf counts

def test_right_leaf_with_attacker_self_signed_cert_appended_authenticates_only_as_the_leaf(envoy, upstream):
    r = chain_request(envoy, "dn-client-with-attacker-appended", "dn-client", "demo-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_appended_self_signed_cert_claiming_another_client_does_not_authenticate_it(envoy, upstream):
    """CVE-2023-2422 class: the appended certificate carries other-client's DN; only the leaf is matched."""
    r = chain_request(envoy, "dn-client-with-attacker-appended", "dn-client", "other-client")
    assert_invalid_client(r, upstream, "subject")


def test_attacker_leaf_with_the_right_cert_appended_is_not_validated(envoy, upstream):
    """Reverse order: the attacker's self-signed leaf first, the victim's (public) certificate after it."""
    r = chain_request(envoy, "attacker-with-dn-client-appended", "attacker-self-signed", "demo-client")
    assert_invalid_client(r, upstream, "not validated")


def test_attacker_self_signed_leaf_cannot_claim_the_dn_it_carries(envoy, upstream):
    r = chain_request(envoy, "attacker-with-dn-client-appended", "attacker-self-signed", "other-client")
    assert_invalid_client(r, upstream, "not validated")


def test_registered_self_signed_cert_appended_to_another_leaf_does_not_match_the_jwk_set(envoy, upstream):
    r = chain_request(envoy, "self-signed-2-with-self-signed-1-appended", "self-signed-2", "ss-client")
    assert_invalid_client(r, upstream, "JWK")


# ---------------------------------------------------------------- subject DN tricks

def test_cn_containing_a_comma_and_rdn_text_is_not_an_extra_rdn(envoy, upstream):
    """CN="dn-client,OU=Payments" printed without escaping would equal dn-client's registered DN."""
    r = client.token_request(envoy.port, "dn-injection-client", "demo-client")
    assert_invalid_client(r, upstream, "subject")


def test_nul_at_the_end_of_the_cn_does_not_match_the_dn_without_it(envoy, upstream):
    r = client.token_request(envoy.port, "nul-dn-client", "demo-client")
    assert_invalid_client(r, upstream)


def test_nul_followed_by_a_suffix_in_the_cn_does_not_match_the_dn_before_it(envoy, upstream):
    r = client.token_request(envoy.port, "nul-suffix-dn-client", "demo-client")
    assert_invalid_client(r, upstream)


def test_cyrillic_lookalike_letter_does_not_match_the_latin_dn(envoy, upstream):
    r = client.token_request(envoy.port, "lookalike-dn-client", "demo-client")
    assert_invalid_client(r, upstream, "subject")


def test_latin_dn_does_not_match_a_registration_with_a_cyrillic_lookalike(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", "lookalike-client")
    assert_invalid_client(r, upstream, "subject")


def test_non_ascii_dn_matches_its_own_registration(envoy, upstream):
    """Control for the two tests above: the filter reads UTF-8 subjects, it does not just refuse them."""
    r = client.token_request(envoy.port, "lookalike-dn-client", "lookalike-client")
    assert_authenticated(r, upstream, "lookalike-client", "lookalike-dn-client")


def test_special_character_dn_does_not_authenticate_another_client(envoy, upstream):
    r = client.token_request(envoy.port, "special-dn-client", "demo-client")
    assert_invalid_client(r, upstream, "subject")


# ---------------------------------------------------------------- paths (shipped normalization)

# Paths the filter treats as the token endpoint after Envoy's normalize_path / merge_slashes.
ENDPOINT_VARIANTS = ["/token/", "//token", "/TOKEN", "/Token/", "/token;x", "/token;x/", "/a/../token",
                     "/./token", "/%74oken", "/%2e/token", "/token/./", "/token?x=1"]
# Paths Envoy itself refuses (path_with_escaped_slashes_action: REJECT_REQUEST): 400 before any filter.
ESCAPED_SLASH_VARIANTS = ["/%2Ftoken", "/%2ftoken", "/%5Ctoken", "/token%2F", "/a%2F..%2Ftoken"]


@pytest.mark.parametrize("path", ENDPOINT_VARIANTS)
def test_endpoint_path_variant_rejects_the_wrong_certificate(envoy, upstream, path):
    assert_invalid_client(client.token_request(envoy.port, "other-client", "demo-client", path=path), upstream,
                          "subject")


@pytest.mark.parametrize("path", ENDPOINT_VARIANTS)
def test_endpoint_path_variant_authenticates_the_right_certificate(envoy, upstream, path):
    assert_authenticated(client.token_request(envoy.port, "dn-client", "demo-client", path=path), upstream,
                         "demo-client", "dn-client")


@pytest.mark.parametrize("path", ENDPOINT_VARIANTS)
def test_endpoint_path_variant_without_certificate_is_rejected(envoy, upstream, path):
    assert_invalid_client(client.token_request(envoy.port, None, "demo-client", path=path), upstream,
                          "no client certificate")


@pytest.mark.parametrize("path", ESCAPED_SLASH_VARIANTS)
def test_escaped_slash_or_backslash_path_is_refused_by_envoy(envoy, upstream, path):
    for cert in ("other-client", "dn-client"):
        r = client.token_request(envoy.port, cert, "demo-client", path=path)
        assert r.status == 400, r
        assert upstream.find(r.test_id) == [], "a refused request reached the AS"


# ---------------------------------------------------------------- content types

NOT_FORMS = [
    ("application/json", b'{"grant_type":"client_credentials","client_id":"demo-client"}'),
    ("multipart/form-data; boundary=b",
     b'--b\r\ncontent-disposition: form-data; name="client_id"\r\n\r\ndemo-client\r\n--b--\r\n'),
    ("text/plain", token_body("demo-client").encode()),
    ("application/x-www-form-urlencoded-not", token_body("demo-client").encode()),
    (None, token_body("demo-client").encode()),
]


@pytest.mark.parametrize("content_type,body", NOT_FORMS, ids=["json", "multipart", "text-plain", "lookalike",
                                                               "missing"])
@pytest.mark.parametrize("cert", ["dn-client", "other-client"])
def test_non_form_content_type_on_the_endpoint_is_invalid_request(envoy, upstream, content_type, body, cert):
    lines = [] if content_type is None else [("content-type", content_type)]
    r = client.http1_request(envoy.port, "POST", "/token", lines, body, cert)
    doc = assert_invalid_request(r, upstream)
    assert "content-type" in doc["error_description"].lower(), doc


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded; charset=UTF-8",
                                          "Application/X-WWW-Form-URLEncoded"])
def test_form_content_type_with_parameters_or_other_case_is_a_form(envoy, upstream, content_type):
    r = client.http1_request(envoy.port, "POST", "/token", [("content-type", content_type)],
                             token_body("demo-client").encode(), "dn-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


# ---------------------------------------------------------------- XFCC injection (trusted forwarder)

def pem_q(name: str) -> str:
    return urllib.parse.quote(pki.pem(name), safe="")


@pytest.fixture(scope="module")
def pair(front_proxy_with):
    return front_proxy_with(XFCC_PLUGIN)


def xfcc_request(inner, *xfcc_lines: str, client_id: str = "demo-client"):
    """A token request straight to the inner Envoy as the trusted front proxy (forwarder cert), carrying
    these XFCC header lines: what a compromised or misconfigured forwarder could send."""
    lines = [("content-type", FORM)] + [("x-forwarded-client-cert", v) for v in xfcc_lines]
    return client.http1_request(inner.port, "POST", "/token", lines, token_body(client_id).encode(), "forwarder")


def test_xfcc_control_a_well_formed_element_from_the_forwarder_authenticates(pair, upstream):
    _, inner = pair
    r = xfcc_request(inner, f'Hash={pki.sha256_hex("dn-client")};Cert="{pem_q("dn-client")}"')
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_xfcc_cert_smuggled_inside_a_quoted_subject_is_not_the_cert(pair, upstream):
    _, inner = pair
    r = xfcc_request(inner, f'Cert="{pem_q("other-client")}";Subject="x\\";Cert=\\"{pem_q("dn-client")}\\""')
    assert_invalid_client(r, upstream, "subject")


def test_xfcc_cert_smuggled_inside_a_quoted_subject_without_a_real_cert_is_rejected(pair, upstream):
    _, inner = pair
    r = xfcc_request(inner, f'By=spiffe://example.org/x;Subject="x\\";Cert=\\"{pem_q("dn-client")}\\""')
    assert_invalid_client(r, upstream, "no Cert")


@pytest.mark.parametrize("first,second", [("dn-client", "other-client"), ("other-client", "dn-client")])
def test_xfcc_duplicate_cert_in_one_element_is_rejected(pair, upstream, first, second):
    _, inner = pair
    r = xfcc_request(inner, f'Cert="{pem_q(first)}";Subject="x";Cert="{pem_q(second)}"')
    assert_invalid_client(r, upstream, "more than once")


@pytest.mark.parametrize("value", ['Cert="{dn}', 'Cert="{dn};Subject="x', 'Cert={dn}";Subject=x'],
                         ids=["unclosed", "closed-early", "quote-in-unquoted-value"])
def test_xfcc_unbalanced_quotes_are_rejected(pair, upstream, value):
    _, inner = pair
    r = xfcc_request(inner, value.format(dn=pem_q("dn-client")))
    assert_invalid_client(r, upstream, "quote")


def test_xfcc_hash_not_matching_the_cert_is_rejected(pair, upstream):
    _, inner = pair
    r = xfcc_request(inner, f'Hash={pki.sha256_hex("other-client")};Cert="{pem_q("dn-client")}"')
    assert_invalid_client(r, upstream, "Hash")


def test_xfcc_only_the_last_element_counts(pair, upstream):
    """Elements are appended hop by hop; the trusted forwarder's own is the last one."""
    _, inner = pair
    r = xfcc_request(inner, f'Cert="{pem_q("dn-client")}",Cert="{pem_q("other-client")}"')
    assert_invalid_client(r, upstream, "subject")
    r = xfcc_request(inner, f'Cert="{pem_q("other-client")}",Cert="{pem_q("dn-client")}"')
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_xfcc_two_header_lines_are_one_list_whose_last_element_counts(pair, upstream):
    """Envoy folds repeated x-forwarded-client-cert lines into one comma-separated value (it is an inline
    header), so two lines are two elements and, as for one line, only the last one counts."""
    _, inner = pair
    r = xfcc_request(inner, f'Cert="{pem_q("dn-client")}"', f'Cert="{pem_q("other-client")}"')
    assert_invalid_client(r, upstream, "subject")
    r = xfcc_request(inner, f'Cert="{pem_q("other-client")}"', f'Cert="{pem_q("dn-client")}"')
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def big_xfcc() -> str:
    return f'Cert="{pem_q("dn-client")}";Subject="' + "A" * 100_000 + '"'


def test_xfcc_of_100_kb_is_refused_by_envoy_header_limits(pair, upstream):
    """Envoy's max_request_headers_kb (60 KiB by default) answers 431 before any filter runs."""
    _, inner = pair
    r = xfcc_request(inner, big_xfcc())
    assert r.status == 431, r
    assert upstream.find(r.test_id) == []


def test_xfcc_of_100_kb_sent_by_a_client_to_the_front_proxy_never_authenticates(pair, upstream):
    front, _ = pair
    r = client.http1_request(front.port, "POST", "/token",
                             [("content-type", FORM), ("x-forwarded-client-cert", big_xfcc())],
                             token_body("demo-client").encode(), "other-client")
    assert r.status == 431, r
    assert upstream.find(r.test_id) == []


def test_subject_with_xfcc_syntax_through_the_front_proxy_authenticates_only_its_own_client(pair, upstream):
    """xfcc-injection-client's CN is `x";Cert="junk";Hash="00`: Envoy escapes it inside Subject="...", and
    the filter's parser must neither see a second Cert/Hash nor fail on it."""
    front, _ = pair
    r = client.token_request(front.port, "xfcc-injection-client", "xfcc-inject")
    assert_authenticated(r, upstream, "xfcc-inject", "xfcc-injection-client")
    r = client.token_request(front.port, "xfcc-injection-client", "demo-client")
    assert_invalid_client(r, upstream, "subject")


def test_special_character_dn_through_the_front_proxy_authenticates(pair, upstream):
    front, _ = pair
    r = client.token_request(front.port, "special-dn-client", "special")
    assert_authenticated(r, upstream, "special", "special-dn-client")


# ---------------------------------------------------------------- RFC 9440 Client-Cert

@pytest.fixture(scope="module")
def cc_envoy(envoy_with):
    return envoy_with(CLIENT_CERT_PLUGIN, name="client-cert-source")


@pytest.mark.parametrize("first,second", [("dn-client", "other-client"), ("other-client", "dn-client"),
                                          ("dn-client", "dn-client")])
def test_two_client_cert_header_lines_are_rejected(cc_envoy, upstream, first, second):
    lines = [("content-type", FORM), ("client-cert", pki.rfc9440(first)), ("client-cert", pki.rfc9440(second))]
    r = client.http1_request(cc_envoy.port, "POST", "/token", lines, token_body("demo-client").encode(),
                             "forwarder")
    assert_invalid_client(r, upstream, "more than once")


def test_client_cert_with_two_byte_sequences_in_one_line_is_rejected(cc_envoy, upstream):
    value = pki.rfc9440("dn-client") + ", " + pki.rfc9440("other-client")
    r = client.token_request(cc_envoy.port, "forwarder", headers=[("client-cert", value)])
    assert_invalid_client(r, upstream)


def test_client_cert_control_one_header_line_authenticates(cc_envoy, upstream):
    r = client.http1_request(cc_envoy.port, "POST", "/token",
                             [("content-type", FORM), ("client-cert", pki.rfc9440("dn-client"))],
                             token_body("demo-client").encode(), "forwarder")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


# ---------------------------------------------------------------- spoofing on the non-enforced paths

def test_spoofed_annotations_on_a_path_variant_of_another_endpoint_are_stripped(envoy, upstream):
    r = client.curl(envoy.port, "/TOKEN/../userinfo", cert="other-client",
                    headers=[("x-mtls-client-id", "demo-client"), ("x-mtls-auth-method", "tls_client_auth")])
    assert_passed_without_annotation(r, upstream)
