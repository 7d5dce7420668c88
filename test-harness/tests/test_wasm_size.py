"""The filter's wasm module stays small: `make build` shrinks it with wasm-opt, and Envoy loads it on every
worker, so a regression in size fails here (the module as the other tests run it, OAUTH_MTLS_WASM).

The limit is the size reached with the default build (561,235 bytes: opt-level "s", wasm-opt -Oz) plus room for
features, not the 400 KiB the size issue asks for: RSA and ECDSA verification alone take ~150 KB of it. What it
catches is a dependency or a serde derive coming back (each was 50-120 KB).

Revocation (CRLs and OCSP with x509-cert's and der's decoders, SHA-1 CertIDs) took it from 575,181 to 785,368
bytes (+210 KB, measured with twiggy on the unstripped module: der's generic decoders +90 KB, the filter's own
revocation code +59 KB, core and alloc +51 KB, hashbrown +12 KB, x509-cert +10 KB, data +11 KB, sha1 +3 KB).
The limit moved from 576 KiB to 800 KiB with it.

Multi-tenancy (endpoint templates and tenant names, registrations keyed by tenant, a refresh state per registry
of `registries`, presets, discovery templates, the configuration's tenant warnings) took it from 790,636 to
837,039 bytes (+46 KB; twiggy on the unstripped modules: spread over the configuration's parsing, the registry
refresh moved out of the worker, `oauth::endpoint`, `preset`, each a few KB), and the access-log decision,
readiness and the raw local-reply call to 844,797 (+8 KB). The limit moved from 800 KiB to 864 KiB with them."""
from oauth_mtls_harness import envoy

MAX_BYTES = 864 * 1024


def custom_sections(module: bytes) -> list[str]:
    """Names of the custom sections of a wasm binary (id 0), in order."""
    def leb128(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = module[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                return value, at
    names, at = [], 8
    while at < len(module):
        section_id = module[at]
        size, body = leb128(at + 1)
        if section_id == 0:
            length, name_at = leb128(body)
            names.append(module[name_at:name_at + length].decode())
        at = body + size
    return names


def test_the_module_is_at_most_864_kib():
    size = envoy.require_wasm().stat().st_size
    assert size <= MAX_BYTES, f"the wasm module is {size} bytes, over {MAX_BYTES}: see what grew with twiggy"


def test_the_module_carries_no_debug_information_or_symbol_names():
    sections = custom_sections(envoy.require_wasm().read_bytes())
    assert not [s for s in sections if s == "name" or s.startswith(".debug")], sections
