"""Unauthenticated floods must not kill a worker's wasm VM (issue 10). Each test floods an Envoy of its own
(envoy/direct-mtls.yaml; envoy.py starts every Envoy with --concurrency 2) for FLOOD_SECONDS from background
threads while, every second, a legitimate client on new connections must be authenticated (200, annotated at
the AS), Envoy's RSS must stay within 10 % + 32 MiB of its value after a 15 s warm-up, Envoy's log must show
no wasm trap, no flood request may get a 503, and Envoy's log may not grow by more than 2 KiB per flood request
(floods.verdict). `make soak-floods` runs the same floods for 10 minutes (oauth_mtls_harness/floods.py)."""
import json
import os

import pytest

from oauth_mtls_harness import envoy as envoy_mod
from oauth_mtls_harness import floods, pki
from oauth_mtls_harness.envoy import poll

FLOOD_SECONDS = float(os.environ.get("FLOOD_TEST_SECONDS", "50"))


@pytest.fixture(scope="module")
def certificate_pool(pki_dir):
    return floods.CertificatePool()


@pytest.fixture
def flood_envoy(upstream, registry, jwks_server):
    """flood_envoy(attack) -> an Envoy of its own running envoy/direct-mtls.yaml with floods.plugin(attack),
    stopped afterwards. Not conftest's envoy_with: a flooded Envoy is shared with no other test, and its log
    (one line per refused request, each naming the flood's client_id) is not attached to failure reports."""
    started = []

    def start(attack):
        envoy_mod.require_wasm()
        registry.set(floods.REGISTRY_PATH, floods.REGISTRY_CLIENTS)
        port, admin = envoy_mod.free_port(), envoy_mod.free_port()
        ports = {8443: port, 9901: admin, 9080: upstream.port, 9081: registry.port, 9082: jwks_server.port}
        config = envoy_mod.render("direct-mtls.yaml", ports, floods.plugin(attack))
        e = envoy_mod.Envoy(config, f"flood-{attack}", port, admin)
        started.append(e)
        e.start()
        if attack == "client-ids":
            poll(lambda: e.stat("oauth_mtls.registry.clients") >= len(floods.REGISTRY_CLIENTS), timeout=20,
                 what="the registry's first load")
        return e

    yield start
    for e in started:
        e.stop()


def flood_and_watch(e, attack, record_property, **flood_options):
    summary = floods.watch(e, attack, FLOOD_SECONDS, **flood_options)
    floods.print_summary(summary)
    for key in ("flood_connections_per_s", "flood_requests_per_s", "legit_ok", "legit_failed", "trap_lines",
                "first_failure_s", "rss_kib_after_warmup", "rss_kib_max_after_warmup", "envoy_log_bytes"):
        record_property(key, summary[key])
    record_property("flood", summary["flood"])
    out = pki.build_dir() / "floods" / f"test-{attack}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"RSS KiB each second: {[s['rss_kib'] for s in summary['samples']]} (all samples: {out})")
    return summary


def test_a_new_100_kb_self_signed_certificate_per_connection_does_not_exhaust_the_vm(
        flood_envoy, certificate_pool, record_property):
    """Each flood connection presents a certificate no worker has seen (31,000 DNS SANs) and is refused."""
    e = flood_envoy("certificates")
    summary = flood_and_watch(e, "certificates", record_property, pool=certificate_pool, threads=4)
    problems = floods.verdict(summary)
    assert not problems, "\n".join(problems)


def test_a_new_1_mb_unknown_client_id_per_request_does_not_exhaust_the_vm(flood_envoy, record_property):
    """Keep-alive connections without a certificate; each token request names a new 1,000,000-byte client_id,
    looked up in the registry and refused as unknown."""
    e = flood_envoy("client-ids")
    summary = flood_and_watch(e, "client-ids", record_property, connections=2, requests_per_connection=100)
    problems = floods.verdict(summary)
    assert not problems, "\n".join(problems)


def test_a_new_100_kb_unknown_client_id_per_request_fills_the_memory_budget_and_no_more(flood_envoy, record_property):
    """As above with ids small enough to be kept (under 1/64 of the budget's part for clients): every one is
    cached until the part is full, then the least recently used half goes; RSS stops growing there."""
    e = flood_envoy("client-ids")
    summary = flood_and_watch(e, "client-ids", record_property, connections=2, requests_per_connection=100,
                              id_bytes=100_000)
    problems = floods.verdict(summary)
    assert not problems, "\n".join(problems)
    cached = e.stat("oauth_mtls.memory.cached_bytes")
    assert 0 < cached <= 2 * 64 * 2**20, f"oauth_mtls.memory.cached_bytes {cached}: two workers, 64 MiB each"
