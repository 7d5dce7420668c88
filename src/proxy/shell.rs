//! The proxy-wasm shell: contexts and host calls that move data between Envoy and the pure core.

use crate::config::Config;
use crate::header;
use crate::proxy::decision::{self, Decision};
use crate::proxy::headers::Headers;
use crate::proxy::host::{self, CallError, CallResponse, Host, Level, Metric, SharedWriteError, Stream};
use crate::proxy::{request::RequestFilter, worker::Worker};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    // After the SDK's own hook: a panic (with panic = "abort" the VM then traps) says where it came from.
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("the filter panicked, its VM stops: {info}"));
    }));
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root {
            context_id,
            worker: None,
            metrics: Rc::new(RefCell::new(HashMap::new())),
            waiters: Rc::new(RefCell::new(Vec::new())),
        })
    });
}}

type Metrics = Rc<RefCell<HashMap<Metric, u32>>>;

/// Requests of this worker held for another request's OCSP call, by context id.
type Waiters = Rc<RefCell<Vec<(u32, Weak<RefCell<RequestFilter>>)>>>;

/// Lets every held request of this worker look again (see `RequestFilter::on_wake`): after an OCSP answer on
/// this worker, and every tick (for an answer another worker stored). Each is made the effective context
/// first, so that its resume or reply applies to its own stream.
fn wake(waiters: &Waiters, proxy: &Proxy, back_to: u32) {
    let held: Vec<(u32, Weak<RefCell<RequestFilter>>)> = waiters.borrow_mut().drain(..).collect();
    if held.is_empty() {
        return;
    }
    let mut still = Vec::new();
    for (id, filter) in held {
        let Some(filter) = filter.upgrade() else { continue };
        if hostcalls::set_effective_context(id).is_err() {
            continue;
        }
        let Ok(mut f) = filter.try_borrow_mut() else {
            still.push((id, Rc::downgrade(&filter)));
            continue;
        };
        if !f.on_wake(proxy) {
            still.push((id, Rc::downgrade(&filter)));
        }
    }
    let _ = hostcalls::set_effective_context(back_to);
    waiters.borrow_mut().extend(still);
}

#[link(wasm_import_module = "env")]
extern "C" {
    /// proxy-wasm ABI: the header map of `map_type`, serialized (see `headers`), in memory the host allocates
    /// through `proxy_on_memory_allocate`. Declared with plain integers: a status the SDK's enum does not know
    /// must not become an invalid enum value.
    #[allow(clashing_extern_declarations)]
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    /// proxy-wasm ABI: a local reply. The SDK's wrapper passes no details; these name the reply in Envoy's
    /// `%RESPONSE_CODE_DETAILS%`.
    #[allow(clashing_extern_declarations)]
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    /// proxy-wasm ABI: sets a property (Envoy: the filter state `wasm.<path>`). The SDK's wrapper panics on a
    /// status other than Ok.
    #[allow(clashing_extern_declarations)]
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    /// proxy-wasm ABI: the host's log level (the SDK's wrapper panics on a status other than Ok).
    #[allow(clashing_extern_declarations)]
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
}

/// Host calls, every one of them checked: a host status the SDK would panic on is logged instead.
struct Proxy {
    metrics: Metrics,
    /// Largest response body read from an HTTP call.
    max_call_body: usize,
}

impl Host for Proxy {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }

    fn log_level(&self) -> Level {
        let mut level: u32 = LogLevel::Info as u32;
        // SAFETY: the host writes one u32 to the address given.
        let status = unsafe { proxy_get_log_level(&mut level) };
        if status != Status::Ok as u32 {
            return Level::Info;
        }
        match level {
            l if l <= LogLevel::Debug as u32 => Level::Debug,
            l if l == LogLevel::Info as u32 => Level::Info,
            l if l == LogLevel::Warn as u32 => Level::Warn,
            _ => Level::Error,
        }
    }

    fn metric(&self, metric: Metric, value: i64) {
        let Some(id) = self.metrics.borrow().get(&metric).copied() else { return };
        let _ = if metric.is_gauge() && !metric.is_summed() {
            hostcalls::record_metric(id, u64::try_from(value).unwrap_or(0))
        } else {
            hostcalls::increment_metric(id, value)
        };
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedWriteError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|s| match s {
            Status::CasMismatch => SharedWriteError::CasMismatch,
            _ => SharedWriteError::Failed,
        })
    }

    fn http_get(
        &self,
        cluster: &str,
        authority: &str,
        path: &str,
        extra: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, CallError> {
        let mut headers = vec![(":method", "GET"), (":path", path), (":authority", authority), (":scheme", "http")];
        headers.extend_from_slice(extra);
        hostcalls::dispatch_http_call(cluster, headers, None, vec![], Duration::from_millis(timeout_ms)).map_err(|s| {
            if s == Status::BadArgument {
                CallError::BadArgument
            } else {
                CallError::Refused
            }
        })
    }

    fn set_tick_period_ms(&self, period_ms: u64) {
        if let Err(s) = hostcalls::set_tick_period(Duration::from_millis(period_ms)) {
            self.log(Level::Error, &format!("cannot set the tick period: {s:?}"));
        }
    }
}

impl Proxy {
    fn call_response(&self, num_headers: usize, body_size: usize) -> CallResponse {
        // A failed call (timeout, reset, a body over Envoy's async-client buffer limit) has no response
        // header map at all: asking for a header then returns BadArgument, on which the SDK's wrapper
        // panics, killing the VM. So read nothing unless there are headers.
        if num_headers == 0 {
            return CallResponse::default();
        }
        let header = |name: &str| hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name).ok().flatten();
        let status =
            header(":status").and_then(|v| String::from_utf8(v).ok()).and_then(|v| v.trim().parse::<u16>().ok());
        let too_large = body_size > self.max_call_body;
        let body = if too_large || body_size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
        };
        CallResponse {
            status,
            etag: header(header::ETAG).and_then(|v| String::from_utf8(v).ok()),
            max_age_seconds: header(header::CACHE_CONTROL).and_then(|v| crate::oauth::jwks::cache_max_age(&v)),
            body,
            too_large,
        }
    }
}

impl Stream for Proxy {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn request_headers(&self) -> Headers {
        // The ABI call itself, so that the map is copied once and read in place (the SDK's wrapper copies every
        // name and value again, and panics on a status it does not expect).
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer to `size` bytes it allocated through this module's
        // proxy_on_memory_allocate (the SDK's allocator, a boxed slice of exactly `size` bytes), or nothing.
        let status = unsafe { proxy_get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size) };
        if status != Status::Ok as u32 || data.is_null() {
            return Headers::default();
        }
        // SAFETY: see above; ownership of the allocation passes to the Vec, which frees it.
        Headers::from_serialized(unsafe { Vec::from_raw_parts(data, size, size) })
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        if let Err(status) = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value) {
            self.log(Level::Error, &format!("cannot set request header {name}: {status:?}"));
        }
    }

    fn add_request_header(&self, name: &str, value: &[u8]) {
        if let Err(status) = hostcalls::add_map_value_bytes(MapType::HttpRequestHeaders, name, value) {
            self.log(Level::Error, &format!("cannot add request header {name}: {status:?}"));
        }
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().flatten()
    }

    fn send_response(&self, status: u16, details: &str, headers: &[(&str, &str)], body: &[u8]) {
        let headers = crate::proxy::headers::serialize(headers);
        // SAFETY: every pointer is to a live buffer of the length passed with it; the host copies them.
        let result = unsafe {
            proxy_send_local_response(
                u32::from(status),
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        };
        if result != Status::Ok as u32 {
            self.log(Level::Error, &format!("cannot send the local reply: status {result}"));
        }
    }

    fn set_decision(&self, decision: &Decision) {
        let value = decision.to_json();
        let name = decision::PROPERTY;
        // SAFETY: both pointers are to live buffers of the lengths passed; the host copies them.
        let result = unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
        if result != Status::Ok as u32 {
            self.log(Level::Warn, &format!("cannot set the filter state wasm.{name}: status {result}"));
        }
    }

    fn resume_request(&self) {
        if let Err(s) = hostcalls::resume_http_request() {
            self.log(Level::Error, &format!("cannot resume the request: {s:?}"));
        }
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).ok().flatten()
    }

    fn set_response_header(&self, name: &str, value: Option<&[u8]>) {
        if let Err(status) = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, value) {
            self.log(Level::Error, &format!("cannot set response header {name}: {status:?}"));
        }
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).ok().flatten()
    }

    fn replace_response_body(&self, size: usize, body: &[u8]) {
        if let Err(s) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body) {
            self.log(Level::Error, &format!("cannot replace the response body: {s:?}"));
        }
    }
}

struct Root {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    metrics: Metrics,
    waiters: Waiters,
}

impl Root {
    fn proxy(&self) -> Proxy {
        let config = self.worker.as_ref().map(|w| &w.config);
        let registry = config.and_then(|c| c.registries.iter().map(|r| r.max_bytes).max()).unwrap_or(1 << 20);
        let crl = config.and_then(|c| c.revocation.as_ref()).map_or(0, |r| r.max_crl_bytes);
        Proxy { metrics: self.metrics.clone(), max_call_body: registry.max(crl) }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _: usize) {
        let proxy = self.proxy();
        if let Some(worker) = &self.worker {
            if worker.is_registry_call(token_id) {
                worker.on_registry_response(&proxy, token_id, proxy.call_response(num_headers, body_size));
            } else if worker.is_crl_call(token_id) {
                worker.on_crl_response(&proxy, proxy.call_response(num_headers, body_size));
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let proxy = self.proxy();
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        let config = match Config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                proxy.log(Level::Error, &format!("configuration refused: {e}"));
                return false;
            }
        };
        for (key, advice) in config.warnings() {
            proxy.log(Level::Warn, &format!("configuration key `{key}`: {advice}"));
        }
        let plugin = proxy.property(&["plugin_name"]).and_then(|p| String::from_utf8(p).ok()).unwrap_or_default();
        // Stats are named after the plugin (two plugins in one VM keep their own).
        let stats = Metric::prefix_for(&plugin);
        let mut metrics = HashMap::new();
        for metric in Metric::all().into_iter().chain(Metric::of_registries(&config.registries)) {
            let kind = if metric.is_gauge() { MetricType::Gauge } else { MetricType::Counter };
            let name = metric.name_under(&stats);
            match hostcalls::define_metric(kind, &name) {
                Ok(id) => {
                    metrics.insert(metric, id);
                }
                Err(s) => proxy.log(Level::Warn, &format!("cannot define metric {name}: {s:?}")),
            }
        }
        *self.metrics.borrow_mut() = metrics;
        let prefix = config.shared_data_prefix.clone().unwrap_or_else(|| format!("oauth-mtls/{plugin}"));
        let registries = config.registries.len();
        let clients = config.clients.len();
        let seed = proxy.now_ms() ^ (u64::from(self.context_id) << 32);
        let worker = Rc::new(Worker::new(config, &prefix, seed));
        worker.read_log_level(&proxy);
        self.worker = Some(worker);
        // Every worker ticks: the memory gauges are reported each tick, the registry refreshed when due.
        proxy.set_tick_period_ms(crate::proxy::worker::TICK_MS);
        proxy.log(
            Level::Info,
            &format!(
                "configured: {clients} inline clients, {}, stats {stats}.*",
                match registries {
                    0 => "no registry".to_string(),
                    1 => "1 registry".to_string(),
                    n => format!("{n} registries"),
                }
            ),
        );
        true
    }

    fn on_tick(&mut self) {
        let proxy = self.proxy();
        if let Some(worker) = &self.worker {
            let pages = core::arch::wasm32::memory_size(0);
            worker.report_memory(&proxy, u64::try_from(pages).ok().map(|p| p.saturating_mul(65536)));
            worker.on_tick(&proxy);
        }
        wake(&self.waiters, &proxy, self.context_id);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let worker = self.worker.clone()?;
        Some(Box::new(Http {
            context_id,
            filter: Rc::new(RefCell::new(RequestFilter::new(worker))),
            proxy: Proxy { metrics: self.metrics.clone(), max_call_body: 1 << 20 },
            waiters: self.waiters.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    context_id: u32,
    filter: Rc<RefCell<RequestFilter>>,
    proxy: Proxy,
    waiters: Waiters,
}

impl Http {
    /// Runs a callback of the request; a request now held for another's OCSP call joins the waiters.
    /// `None` only if the filter were already in use, which cannot happen: a request's callbacks never nest.
    fn run<T>(&mut self, callback: impl FnOnce(&mut RequestFilter, &Proxy) -> T) -> Option<T> {
        let (result, waiting) = {
            let mut filter = self.filter.try_borrow_mut().ok()?;
            let result = callback(&mut filter, &self.proxy);
            (result, filter.is_waiting_for_status())
        };
        if waiting && !self.waiters.borrow().iter().any(|(id, _)| *id == self.context_id) {
            self.waiters.borrow_mut().push((self.context_id, Rc::downgrade(&self.filter)));
        }
        Some(result)
    }

    /// A request callback's action; fails closed (500) if the filter could not run.
    fn act(&mut self, callback: impl FnOnce(&mut RequestFilter, &Proxy) -> host::Action) -> Action {
        match self.run(callback) {
            Some(action) => to_action(action),
            None => {
                self.proxy.send_response(500, "oauth_mtls.internal_error", &[], b"");
                Action::Pause
            }
        }
    }
}

impl Context for Http {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _: usize) {
        let response = self.proxy.call_response(num_headers, body_size);
        self.run(|f, p| f.on_call_response(p, token_id, response));
        // An OCSP answer may be what other requests of this worker wait for.
        wake(&self.waiters, &self.proxy, self.context_id);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.act(|f, p| f.on_request_headers(p, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.act(|f, p| f.on_request_body(p, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        self.act(|f, p| f.on_request_trailers(p))
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.act(|f, p| f.on_response_headers(p, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.act(|f, p| f.on_response_body(p, body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        self.run(|f, p| f.on_log(p));
    }
}

fn to_action(action: host::Action) -> Action {
    match action {
        host::Action::Continue => Action::Continue,
        host::Action::Pause => Action::Pause,
    }
}
