"""However the form body is framed (HTTP/1.1 chunks of one byte, HTTP/2 DATA frames, trailers), the
filter reaches the same decision as for a body sent in one piece."""
import pytest

from oauth_mtls_harness import client
from oauth_mtls_harness.checks import assert_authenticated, assert_invalid_client, assert_invalid_request
from oauth_mtls_harness.client import FORM, token_body
from test_token_endpoint import MAX_BODY, PLUGIN


@pytest.fixture(scope="module")
def envoy(envoy_with):
    return envoy_with(PLUGIN, name="token-endpoint")


BODY = token_body("demo-client").encode()


def test_http1_one_byte_chunks_authenticate_like_one_chunk(envoy, upstream):
    r = client.http1_request(envoy.port, "POST", "/token", [("content-type", FORM)], BODY, "dn-client", chunk_size=1)
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_http1_one_byte_chunks_reject_like_one_chunk(envoy, upstream):
    r = client.http1_request(envoy.port, "POST", "/token", [("content-type", FORM)], BODY, "other-client",
                             chunk_size=1)
    assert_invalid_client(r, upstream, "subject")


def test_http1_content_length_body_in_one_piece_authenticates(envoy, upstream):
    r = client.http1_request(envoy.port, "POST", "/token", [("content-type", FORM)], BODY, "dn-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_http1_chunked_body_over_limit_is_413(envoy, upstream):
    body = BODY + b"&pad=" + b"x" * MAX_BODY
    r = client.http1_request(envoy.port, "POST", "/token", [("content-type", FORM)], body, "dn-client",
                             chunk_size=256, gap=0.001)
    assert_invalid_request(r, upstream, status=413)


def test_http2_body_in_several_data_frames_authenticates_like_one_frame(envoy, upstream):
    parts = [BODY[i:i + 3] for i in range(0, len(BODY), 3)]
    r = client.h2_request(envoy.port, "POST", "/token", [("content-type", FORM)], parts, "dn-client")
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_http2_body_in_several_data_frames_rejects_like_one_frame(envoy, upstream):
    parts = [BODY[i:i + 3] for i in range(0, len(BODY), 3)]
    r = client.h2_request(envoy.port, "POST", "/token", [("content-type", FORM)], parts, "other-client")
    assert_invalid_client(r, upstream, "subject")


def test_http2_body_followed_by_trailers_authenticates(envoy, upstream):
    r = client.h2_request(envoy.port, "POST", "/token", [("content-type", FORM)], [BODY[:10], BODY[10:]],
                          "dn-client", trailers=[("x-trailer", "1")])
    assert_authenticated(r, upstream, "demo-client", "dn-client")


def test_http2_body_followed_by_trailers_rejects(envoy, upstream):
    r = client.h2_request(envoy.port, "POST", "/token", [("content-type", FORM)], [BODY[:10], BODY[10:]],
                          "other-client", trailers=[("x-trailer", "1")])
    assert_invalid_client(r, upstream, "subject")
