//! Fuzz target: the filter's plugin configuration JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mtls_filter::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::parse(data) {
        let _ = config.stripped_headers();
        for path in ["/token", "/TOKEN/", "/token;x", "/a/../token", "//token", "/%2Ftoken"] {
            let _ = config.is_endpoint(path);
            let _ = config.resource(path);
        }
    }
    if let Some(e) = Config::parse(data).err() {
        assert!(!e.to_string().contains(['\r', '\n']), "error messages are one line");
    }
});
