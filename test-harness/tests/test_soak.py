"""The short soak in `make test` (`make soak` runs oauth_mtls_harness/soak.py for 10 minutes): 60 s of mixed
accepted / rejected / passed traffic over keep-alive mTLS connections while the registry refreshes every
second with churn; zero unexpected responses, Envoy RSS and the registry's shared-data size flat (< 5 %
growth after warm-up)."""
import os

from oauth_mtls_harness import soak


def test_soak_60s_mixed_load_with_registry_churn_has_no_unexpected_response_and_flat_memory():
    duration = float(os.environ.get("SOAK_TEST_SECONDS", "60"))
    summary = soak.run(duration, sample_every=5.0)
    soak.print_summary(summary)
    assert summary["registry_bytes_end"] is not None, \
        f"gauge {soak.BYTES_GAUGE} missing from Envoy's /stats (filter built before it was added?)"
    problems = soak.verdict(summary)
    assert not problems, problems
    assert summary["requests"] >= duration * 20, f"only {summary['requests']} requests in {duration}s"
