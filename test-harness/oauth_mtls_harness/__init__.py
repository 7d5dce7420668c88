"""The integration harness of oauth-mtls-filter (test-harness/README.md): a test PKI (`pki`), Envoy from the shipped
configurations (`envoy`), in-process and real servers (`servers`), clients (`client`), what outcomes look like
(`checks`), and the entry points `python -m oauth_mtls_harness.demo` / `.soak` / `.floods` (`make demo`,
`make soak`, `make soak-floods`)."""
from __future__ import annotations

import pathlib

HARNESS = pathlib.Path(__file__).resolve().parent.parent  # test-harness/
REPO = HARNESS.parent
