"""The token endpoint with a connection-terminated client certificate (envoy/direct-mtls.yaml): who is
authenticated, who is rejected and how, what passes untouched, and header hygiene."""
import base64

import pytest

from oauth_mtls_harness import client, pki
from oauth_mtls_harness.checks import (
    SPOOFED,
    assert_authenticated,
    assert_invalid_client,
    assert_invalid_request,
    assert_passed_without_annotation,
    tls_client,
)
from oauth_mtls_harness.client import FORM, token_body

MAX_BODY = 1024
PLUGIN = {
    "endpoints": ["/token"],
    "max_body_bytes": MAX_BODY,
    "unknown_client": "pass",
    "clients": [
        tls_client("demo-client", subject_dn=pki.DN_CLIENT_RFC4514),
        {"client_id": "secret-client", "token_endpoint_auth_method": "client_secret_basic"},
    ],
}


@pytest.fixture(scope="module")
def envoy(envoy_with):
    return envoy_with(PLUGIN, name="token-endpoint")


def basic(client_id: str, secret: str = "s3cret") -> tuple[str, str]:
    return ("authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode())


# ---------------------------------------------------------------- authenticated

def test_registered_certificate_authenticates_and_annotates_the_request(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_registered_certificate_authenticates_over_http2(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", http2=True)
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_query_string_does_not_change_the_endpoint(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", path="/token?x=1")
    assert_invalid_client(r, upstream, "subject")


def test_client_id_after_other_form_fields_is_found(envoy, upstream):
    body = "scope=a+b&client_id=demo-client&grant_type=client_credentials"
    r = client.token_request(envoy.port, "dn-client", body=body)
    assert_authenticated(r, upstream, "demo-client", "dn-client", body=body)


def test_body_at_max_body_bytes_is_accepted(envoy, upstream):
    base = token_body("demo-client") + "&pad="
    body = base + "x" * (MAX_BODY - len(base))
    assert len(body) == MAX_BODY
    r = client.token_request(envoy.port, "dn-client", body=body)
    assert_authenticated(r, upstream, "demo-client", "dn-client", body=body)


# ---------------------------------------------------------------- invalid_client

def test_request_without_certificate_is_invalid_client(envoy, upstream):
    r = client.token_request(envoy.port, None)
    assert_invalid_client(r, upstream, "no client certificate")


def test_valid_certificate_of_another_client_is_invalid_client(envoy, upstream):
    r = client.token_request(envoy.port, "other-client")
    assert_invalid_client(r, upstream, "subject")


def test_only_the_leaf_certificate_is_matched(envoy, upstream, pki_dir):
    # other-client's leaf followed by a certificate carrying demo-client's DN (Keycloak CVE-2023-2422 class)
    r = client.curl(envoy.port, "/token", method="POST",
                    cert_file=str(pki_dir / "other-client-with-dn-client-appended.pem"),
                    key_file=str(pki_dir / "other-client.key"),
                    headers=[("content-type", FORM)], data=token_body("demo-client"))
    assert_invalid_client(r, upstream, "subject")


def test_rejection_is_json_invalid_client_with_no_store_and_one_line_description(envoy, upstream):
    r = client.token_request(envoy.port, "other-client")
    doc = assert_invalid_client(r, upstream)
    assert set(doc) >= {"error", "error_description"}
    assert r.header("cache-control").lower().replace(" ", "").startswith("no-store")


def test_rejection_over_http2_has_the_same_shape(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", http2=True)
    assert_invalid_client(r, upstream, "subject")


def test_merged_slashes_path_is_still_the_token_endpoint(envoy, upstream):
    assert_invalid_client(client.token_request(envoy.port, "other-client", path="//token"), upstream, "subject")


def test_percent_encoded_path_is_still_the_token_endpoint(envoy, upstream):
    assert_invalid_client(client.token_request(envoy.port, "other-client", path="/%74oken"), upstream, "subject")


def test_dot_segment_path_is_still_the_token_endpoint(envoy, upstream):
    assert_invalid_client(client.token_request(envoy.port, "other-client", path="/a/../token"), upstream, "subject")


def test_escaped_slash_in_path_never_reaches_the_as(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", path="/%2Ftoken")
    assert r.status == 400 and upstream.find(r.test_id) == []


# ---------------------------------------------------------------- invalid_request

def test_repeated_client_id_is_invalid_request(envoy, upstream):
    body = "grant_type=client_credentials&client_id=demo-client&client_id=demo-client"
    assert_invalid_request(client.token_request(envoy.port, "dn-client", body=body), upstream)


def test_repeated_client_id_with_different_values_is_invalid_request(envoy, upstream):
    body = "grant_type=client_credentials&client_id=demo-client&client_id=secret-client"
    assert_invalid_request(client.token_request(envoy.port, "dn-client", body=body), upstream)


def test_basic_auth_client_id_differing_from_body_client_id_is_invalid_request(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", headers=[basic("secret-client")])
    assert_invalid_request(r, upstream)


def test_body_over_max_body_bytes_is_413_invalid_request(envoy, upstream):
    body = token_body("demo-client") + "&pad=" + "x" * MAX_BODY
    assert_invalid_request(client.token_request(envoy.port, "dn-client", body=body), upstream, status=413)


# ---------------------------------------------------------------- passed without annotation

def test_client_secret_basic_client_passes_without_annotation(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", "secret-client", headers=[basic("secret-client")])
    assert_passed_without_annotation(r, upstream)


def test_unknown_client_passes_without_annotation(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", "nobody-registered-this")
    assert_passed_without_annotation(r, upstream)


def test_request_without_client_id_passes_without_annotation(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", None)
    assert_passed_without_annotation(r, upstream)


def test_client_id_only_in_query_string_is_not_authenticated(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", None, path="/token?client_id=demo-client")
    assert_passed_without_annotation(r, upstream)


def test_get_on_token_endpoint_passes_without_annotation(envoy, upstream):
    r = client.curl(envoy.port, "/token?client_id=demo-client", cert="dn-client")
    assert_passed_without_annotation(r, upstream)


def test_other_paths_need_no_certificate(envoy, upstream):
    r = client.curl(envoy.port, "/.well-known/oauth-authorization-server")
    assert_passed_without_annotation(r, upstream)


def test_other_endpoint_not_listed_passes_even_with_client_id(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", path="/introspect")
    assert_passed_without_annotation(r, upstream)


# ---------------------------------------------------------------- spoofing

def test_spoofed_headers_on_other_path_are_stripped(envoy, upstream):
    r = client.curl(envoy.port, "/userinfo", cert="dn-client", headers=SPOOFED)
    assert_passed_without_annotation(r, upstream)


def test_spoofed_headers_on_passed_token_request_are_stripped(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", None, headers=SPOOFED)
    assert_passed_without_annotation(r, upstream)


def test_spoofed_headers_on_authenticated_token_request_are_overwritten(envoy, upstream):
    r = client.token_request(envoy.port, "dn-client", headers=SPOOFED)
    req = assert_authenticated(r, upstream, "demo-client", "dn-client")
    assert "client-cert-chain" not in req.headers or req.headers["client-cert-chain"] != [":c3Bvb2ZlZA==:"]


def test_spoofed_client_id_header_does_not_help_a_wrong_certificate(envoy, upstream):
    r = client.token_request(envoy.port, "other-client", headers=SPOOFED)
    assert_invalid_client(r, upstream, "subject")


def test_spoofed_headers_without_certificate_do_not_authenticate(envoy, upstream):
    r = client.token_request(envoy.port, None, headers=[("client-cert", pki.rfc9440("dn-client"))])
    assert_invalid_client(r, upstream, "no client certificate")


def test_repeated_spoofed_header_lines_are_all_stripped(envoy, upstream):
    lines = [(k, v) for k, v in SPOOFED] + [(k, v + "-2") for k, v in SPOOFED]
    r = client.http1_request(envoy.port, "GET", "/userinfo", lines, b"", "dn-client")
    assert_passed_without_annotation(r, upstream)


def test_repeated_spoofed_header_lines_on_token_request_are_all_replaced(envoy, upstream):
    lines = [("content-type", FORM)] + [(k, v) for k, v in SPOOFED] + [(k, v + "-2") for k, v in SPOOFED]
    r = client.http1_request(envoy.port, "POST", "/token", lines, token_body("demo-client").encode(), "dn-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


# ---------------------------------------------------------------- stats

def test_stats_count_authenticated_passed_and_rejected(envoy, upstream):
    before = envoy.filter_stats()
    assert_authenticated(client.token_request(envoy.port, "dn-client"), upstream, "demo-client", "dn-client")
    assert_invalid_client(client.token_request(envoy.port, "other-client"), upstream)
    assert_passed_without_annotation(client.token_request(envoy.port, "dn-client", None), upstream)
    after = envoy.filter_stats()

    def delta(suffix):
        return sum(v for k, v in after.items() if k.endswith(suffix) or suffix + "." in k) - \
            sum(v for k, v in before.items() if k.endswith(suffix) or suffix + "." in k)

    assert delta("oauth_mtls.authenticated") == 1, after
    assert delta("oauth_mtls.rejected") == 1, after
    assert delta("oauth_mtls.passed") >= 1, after


def test_client_resuming_its_tls_session_is_still_authenticated(envoy, upstream):
    """Envoy reports a resumed session's certificate as not validated (envoyproxy/envoy#21235), so the shipped
    listener disables resumption; either way a client's second connection must authenticate like its first."""
    first, second, _ = client.http1_twice_with_resumed_session(
        envoy.port, "POST", "/token", [("content-type", FORM)], token_body("demo-client").encode(), "dn-client")
    assert_authenticated(first, upstream, "demo-client", "dn-client")
    assert_authenticated(second, upstream, "demo-client", "dn-client")
