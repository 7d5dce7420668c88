"""tls_client_auth by subject DN (RFC 8705 §2.1.2): distinguishedNameMatch equivalence, what is not
equivalent, and which chains count."""
import base64

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, tls_client

DN = pki.DN_CLIENT_RFC4514
REGISTRATIONS = {
    "dn-exact": DN,
    "dn-case-and-spaces": "cn=DN-Client, ou=Payments,o=Example Bank,c=GB",
    "dn-oid-types": "2.5.4.3=dn-client,2.5.4.11=Payments,2.5.4.10=Example Bank,2.5.4.6=GB",
    "dn-reordered": "C=GB,O=Example Bank,OU=Payments,CN=dn-client",
    "dn-missing-rdn": "CN=dn-client,O=Example Bank,C=GB",
    "dn-extra-rdn": "CN=dn-client,OU=Payments,O=Example Bank,L=London,C=GB",
    "dn-other-value": "CN=dn-client2,OU=Payments,O=Example Bank,C=GB",
    "multi-rdn-as-printed": "CN=multi-rdn-client+OU=Payments,O=Example Bank,C=GB",
    "multi-rdn-other-order": "OU=Payments+CN=multi-rdn-client,O=Example Bank,C=GB",
    "multi-rdn-split": "CN=multi-rdn-client,OU=Payments,O=Example Bank,C=GB",
    "special-escaped": pki.SPECIAL_DN_RFC4514,
    "special-hex-escaped": "CN=Widget\\2C Inc. \\2B \\22Q\\22 \\5C x\\3B y \\3D z,O=Example Bank,C=GB",
}
CA1_KEY = base64.b64encode(pki.der("ca1")).decode()
CA2_KEY = base64.b64encode(pki.der("ca2")).decode()
PLUGIN = {"clients": [tls_client(cid, subject_dn=dn) for cid, dn in REGISTRATIONS.items()] + [
    # RFC 8705 §7.4: per-client issuer pinning by CA key (tls_client_auth_issuer_keys).
    tls_client("dn-pinned-ca1", subject_dn=DN, issuer_keys=[CA1_KEY]),
    tls_client("dn-pinned-ca2", subject_dn=DN, issuer_keys=[CA2_KEY]),
    tls_client("dn-pinned-either", subject_dn=DN, issuer_keys=[CA2_KEY, CA1_KEY]),
]}


@pytest.fixture(scope="module")
def envoy(envoy_with):
    return envoy_with(PLUGIN, name="subject-dn")


def accepted(envoy, upstream, client_id, cert):
    assert_authenticated(client.token_request(envoy.port, cert, client_id), upstream, client_id, cert)


def rejected(envoy, upstream, client_id, cert, *kw):
    assert_invalid_client(client.token_request(envoy.port, cert, client_id), upstream, *kw)


def test_identical_dn_matches(envoy, upstream):
    accepted(envoy, upstream, "dn-exact", "dn-client")


def test_attribute_types_and_values_compare_case_insensitively_and_ignore_spaces_after_commas(envoy, upstream):
    accepted(envoy, upstream, "dn-case-and-spaces", "dn-client")


def test_attribute_types_given_as_oids_match_their_names(envoy, upstream):
    accepted(envoy, upstream, "dn-oid-types", "dn-client")


def test_reordered_rdns_do_not_match(envoy, upstream):
    rejected(envoy, upstream, "dn-reordered", "dn-client", "subject")


def test_missing_rdn_does_not_match(envoy, upstream):
    rejected(envoy, upstream, "dn-missing-rdn", "dn-client", "subject")


def test_extra_rdn_does_not_match(envoy, upstream):
    rejected(envoy, upstream, "dn-extra-rdn", "dn-client", "subject")


def test_different_attribute_value_does_not_match(envoy, upstream):
    rejected(envoy, upstream, "dn-other-value", "dn-client", "subject")


def test_multi_valued_rdn_matches(envoy, upstream):
    accepted(envoy, upstream, "multi-rdn-as-printed", "multi-rdn-client")


def test_multi_valued_rdn_matches_in_any_order(envoy, upstream):
    accepted(envoy, upstream, "multi-rdn-other-order", "multi-rdn-client")


def test_multi_valued_rdn_is_not_two_single_rdns(envoy, upstream):
    rejected(envoy, upstream, "multi-rdn-split", "multi-rdn-client", "subject")


def test_escaped_special_characters_match(envoy, upstream):
    accepted(envoy, upstream, "special-escaped", "special-dn-client")


def test_hex_escaped_special_characters_match(envoy, upstream):
    accepted(envoy, upstream, "special-hex-escaped", "special-dn-client")


def test_certificate_from_untrusted_ca_with_the_right_dn_is_not_validated(envoy, upstream):
    rejected(envoy, upstream, "dn-exact", "dn-client-rogue", "not validated")


def test_self_signed_certificate_is_not_validated_for_tls_client_auth(envoy, upstream):
    rejected(envoy, upstream, "dn-exact", "self-signed-1", "not validated")


def test_an_unpinned_client_accepts_its_dn_from_any_trusted_ca(envoy, upstream):
    """RFC 8705 §7.4: without a pin, any CA in the listener's trust bundle may vouch for a DN."""
    accepted(envoy, upstream, "dn-exact", "dn-client-ca2")


def test_a_client_pinned_to_its_ca_key_accepts_a_leaf_from_that_ca(envoy, upstream):
    accepted(envoy, upstream, "dn-pinned-ca1", "dn-client")
    accepted(envoy, upstream, "dn-pinned-either", "dn-client")


def test_the_same_dn_from_another_trusted_ca_does_not_authenticate_a_pinned_client(envoy, upstream):
    rejected(envoy, upstream, "dn-pinned-ca1", "dn-client-ca2", "pinned")
    rejected(envoy, upstream, "dn-pinned-ca2", "dn-client", "pinned")
