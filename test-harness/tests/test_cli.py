"""`oauth-mtls check` reaches the verdict real Envoy and the filter reach, and never claims what it did not check:
the chain (a rogue CA with the real CA's name; an expired certificate) is validated only with --ca and said to be
unchecked without it, and a registry registration that does not load is an unknown client, decided by
unknown_client. Runs the built CLI (target/release/oauth-mtls, `make cli-build`)."""
import json
import re
import subprocess

import pytest

from oauth_mtls_harness import REPO, client, pki
from oauth_mtls_harness.checks import (
    assert_authenticated,
    assert_invalid_client,
    assert_passed_without_annotation,
    tls_client,
)
from oauth_mtls_harness.envoy import poll

CLI = REPO / "target" / "release" / "oauth-mtls"
PATH = "/registry/cli.json"
GOOD = tls_client("cli-dn", subject_dn=pki.DN_CLIENT_RFC4514)
# Two tls_client_auth_* values: refused at load (RFC 8705 §2.1.2), so the filter does not know "cli-broken".
BROKEN = tls_client("cli-broken", subject_dn=pki.DN_CLIENT_RFC4514, san_dns="client.example.com")


def plugin(unknown: str) -> dict:
    return {"unknown_client": unknown,
            "registry": {"cluster": "registry", "authority": "registry.test", "path": PATH, "refresh_seconds": 1,
                         "timeout_ms": 500}}


def require_cli() -> None:
    if not CLI.is_file():
        pytest.fail(f"the oauth-mtls CLI is missing: {CLI}; build it with `make cli-build`", pytrace=False)


@pytest.fixture(scope="module")
def envoys(envoy_with, registry):
    registry.set(PATH, [GOOD, BROKEN])
    started = {}
    for unknown in ("pass", "reject"):
        e = envoy_with(plugin(unknown), name=f"cli-{unknown}")
        poll(lambda e=e: client.token_request(e.port, "dn-client", "cli-dn").status == 200, timeout=10,
             what=f"first registry load (unknown_client {unknown})")
        started[unknown] = e
    return started


@pytest.fixture(scope="module")
def registration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "registry.json"
    path.write_text(json.dumps([GOOD, BROKEN]))
    return path


def check(cert: str, registration, client_id: str, *extra: str) -> subprocess.CompletedProcess:
    require_cli()
    args = [str(CLI), "check", "--cert", str(pki.cert_path(cert)), "--client", str(registration),
            "--client-id", client_id, *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def verdict(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.splitlines()[-1]


def test_with_ca_a_certificate_of_a_rogue_ca_bearing_the_real_cas_name_is_refused_as_envoy_refuses_it(
        envoys, upstream, registration_file):
    assert_invalid_client(client.token_request(envoys["pass"].port, "dn-client-rogue-ca1", "cli-dn"), upstream,
                          "not validated")
    proc = check("dn-client-rogue-ca1", registration_file, "cli-dn", "--ca", str(pki.cert_path("ca")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL chain validation: the chain does not validate against --ca: the sha256WithRSAEncryption " \
           "signature of \"CN=dn-client,OU=Payments,O=Example Bank,C=GB\" does not verify with the key of " \
           "\"CN=Test Root CA 1,O=Example Test PKI,C=GB\" (--ca)" in proc.stdout, proc.stdout
    assert verdict(proc).startswith("verdict: rejected (401 invalid_client: the client certificate chain was not "
                                    "validated"), proc.stdout


def test_without_ca_the_rogue_certificate_is_authenticated_only_on_a_condition_said_plainly(registration_file):
    proc = check("dn-client-rogue-ca1", registration_file, "cli-dn")
    assert "ok   chain" not in proc.stdout, proc.stdout
    assert "     chain validation: NOT checked: assumed validated by Envoy's validation context" in proc.stdout
    assert verdict(proc).endswith("only if Envoy's validation context validates the chain, which was NOT checked "
                                  "here (give the CA bundle with --ca)"), proc.stdout


def test_with_ca_the_genuine_chain_validates_as_envoy_validates_it(envoys, upstream, registration_file):
    assert_authenticated(client.token_request(envoys["pass"].port, "dn-client", "cli-dn"), upstream, "cli-dn",
                         "dn-client")
    proc = check("dn-client", registration_file, "cli-dn", "--ca", str(pki.cert_path("ca")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   chain validation: the chain validates against --ca" in proc.stdout, proc.stdout
    assert verdict(proc).startswith("verdict: authenticated (x-mtls-client-id: cli-dn") and \
        verdict(proc).endswith(")"), proc.stdout


def test_with_ca_a_certificate_expired_at_now_is_refused(registration_file):
    proc = check("dn-client", registration_file, "cli-dn", "--ca", str(pki.cert_path("ca")), "--now",
                 "2199-01-01T00:00:00Z")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "expired at 2199-01-01T00:00:00Z" in proc.stdout, proc.stdout


@pytest.mark.parametrize("unknown", ["pass", "reject"])
def test_a_registration_that_does_not_load_gets_the_verdict_envoy_gives_under_unknown_client(
        unknown, envoys, upstream, registration_file):
    r = client.token_request(envoys[unknown].port, "dn-client", "cli-broken")
    proc = check("dn-client", registration_file, "cli-broken", "--ca", str(pki.cert_path("ca")),
                 "--unknown-client", unknown)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL registration: client cli-broken is refused at load" in proc.stdout, proc.stdout
    if unknown == "pass":
        assert_passed_without_annotation(r, upstream)
        assert verdict(proc) == "verdict: passed (passed to the AS without annotation: an unknown client under " \
                                "unknown_client: pass)", proc.stdout
    else:
        assert_invalid_client(r, upstream, "unknown client")
        assert verdict(proc) == "verdict: rejected (401 invalid_client: unknown client: no registration for this " \
                                "client_id)", proc.stdout


def test_every_option_and_command_of_the_usage_is_documented_in_operations_md():
    require_cli()
    usage = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, timeout=60).stdout
    documented = (REPO / "docs" / "operations.md").read_text()
    options = set(re.findall(r"--[a-z][a-z-]+", usage))
    commands = set(re.findall(r"^  oauth-mtls ([a-z]+)", usage, re.MULTILINE))
    assert {"--ca", "--unknown-client", "--version"} <= options and "version" in commands, usage
    missing = [o for o in sorted(options) if f"`{o}" not in documented and f" {o}" not in documented] + \
        [c for c in sorted(commands) if f"`oauth-mtls {c}" not in documented]
    assert not missing, f"docs/operations.md does not document {missing}"
