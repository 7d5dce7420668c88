//! A fake proxy for native tests of the filter's state machines: headers, properties, shared data with
//! Envoy's CAS rules, dispatched calls, local replies, metrics and logs, all in memory.

use crate::proxy::decision::Decision;
use crate::proxy::host::{CallError, CallResponse, Host, Level, Metric, SharedWriteError, Stream};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Shared data is shared by every worker of a VM: tests give several fakes the same store.
pub type SharedStore = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub token: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub struct Fake {
    pub now: Cell<u64>,
    pub shared: SharedStore,
    next_cas: Rc<Cell<u32>>,
    pub headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub properties: RefCell<HashMap<String, Vec<u8>>>,
    pub body: RefCell<Vec<u8>>,
    pub reply: RefCell<Option<Reply>>,
    pub resumed: Cell<u32>,
    pub response_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub response_body: RefCell<Vec<u8>>,
    pub calls: RefCell<Vec<Call>>,
    /// Header removals the filter asked for (each one costs Envoy a route-cache clear).
    pub removals: Cell<u32>,
    /// Every property the filter read, in order (`connection.peer_certificate`, ...).
    pub property_reads: RefCell<Vec<String>>,
    /// The proxy hands over a header map that does not follow the ABI's layout.
    pub garbled_headers: Cell<bool>,
    pub fail_calls: Cell<bool>,
    pub metrics: RefCell<HashMap<String, i64>>,
    pub logs: RefCell<Vec<String>>,
    /// The least severe level the proxy prints.
    pub log_level: Cell<Level>,
    /// The decisions the filter recorded for the access log, in order.
    pub decisions: RefCell<Vec<Decision>>,
    /// Shared-data reads by key (what a lookup costs).
    pub reads: RefCell<HashMap<String, u32>>,
    /// The tick period last asked for.
    pub tick_period_ms: Cell<Option<u64>>,
}

impl Fake {
    pub fn new() -> Fake {
        Fake::sharing(Rc::new(RefCell::new(HashMap::new())), Rc::new(Cell::new(1)))
    }

    /// Another worker of the same VM: same shared data, its own request and metrics.
    pub fn worker_of(other: &Fake) -> Fake {
        let f = Fake::sharing(other.shared.clone(), other.next_cas.clone());
        f.now.set(other.now.get());
        f
    }

    fn sharing(shared: SharedStore, next_cas: Rc<Cell<u32>>) -> Fake {
        Fake {
            now: Cell::new(1_800_000_000_000),
            shared,
            next_cas,
            headers: RefCell::new(Vec::new()),
            properties: RefCell::new(HashMap::new()),
            body: RefCell::new(Vec::new()),
            reply: RefCell::new(None),
            resumed: Cell::new(0),
            response_headers: RefCell::new(Vec::new()),
            response_body: RefCell::new(Vec::new()),
            calls: RefCell::new(Vec::new()),
            removals: Cell::new(0),
            property_reads: RefCell::new(Vec::new()),
            garbled_headers: Cell::new(false),
            fail_calls: Cell::new(false),
            metrics: RefCell::new(HashMap::new()),
            logs: RefCell::new(Vec::new()),
            log_level: Cell::new(Level::Debug),
            decisions: RefCell::new(Vec::new()),
            reads: RefCell::new(HashMap::new()),
            tick_period_ms: Cell::new(None),
        }
    }

    pub fn advance_s(&self, seconds: u64) {
        self.now.set(self.now.get() + seconds * 1000);
    }

    /// A request with these headers (pseudo-headers included) and, on an mTLS connection, this peer.
    pub fn request(&self, headers: &[(&str, &str)]) -> &Fake {
        *self.headers.borrow_mut() = headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        *self.reply.borrow_mut() = None;
        self.body.borrow_mut().clear();
        self
    }

    /// A new mTLS connection whose peer presented `pem`, as Envoy shows it: its id, the PEM, its SHA-256 (hex)
    /// and whether the chain was validated.
    pub fn peer(&self, pem: &str, validated: bool) -> &Fake {
        static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut p = self.properties.borrow_mut();
        p.insert("connection_id".into(), id.to_le_bytes().to_vec());
        let digest = crate::cert::pem::decode_leaf(pem.as_bytes())
            .map(|der| crate::oauth::jwks::hex(&crate::cert::sha256(&der)));
        match digest {
            Ok(hex) => p.insert("connection.sha256_peer_certificate_digest".into(), hex.into_bytes()),
            Err(_) => p.remove("connection.sha256_peer_certificate_digest"),
        };
        p.insert("connection.peer_certificate".into(), pem.as_bytes().to_vec());
        p.insert("connection.peer_certificate_valid".into(), vec![u8::from(validated)]);
        self
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .borrow()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn counter(&self, name: &str) -> i64 {
        self.metrics.borrow().get(name).copied().unwrap_or(0)
    }

    pub fn last_call(&self) -> Option<Call> {
        self.calls.borrow().last().cloned()
    }

    pub fn reply_status(&self) -> Option<u16> {
        self.reply.borrow().as_ref().map(|r| r.status)
    }

    /// The last decision recorded for the access log.
    pub fn decision(&self) -> Option<Decision> {
        self.decisions.borrow().last().cloned()
    }

    pub fn reply_json(&self) -> serde_json::Value {
        self.reply.borrow().as_ref().and_then(|r| serde_json::from_str(&r.body).ok()).unwrap_or_default()
    }

    pub fn ok(status: u16, body: &str) -> CallResponse {
        CallResponse { status: Some(status), body: body.as_bytes().to_vec(), ..CallResponse::default() }
    }
}

impl Host for Fake {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push(format!("{level:?}: {message}"));
    }

    fn log_level(&self) -> Level {
        self.log_level.get()
    }

    fn metric(&self, metric: Metric, value: i64) {
        let mut m = self.metrics.borrow_mut();
        let slot = m.entry(metric.name()).or_insert(0);
        if metric.is_gauge() && !metric.is_summed() {
            *slot = value;
        } else {
            *slot += value;
        }
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        *self.reads.borrow_mut().entry(key.to_string()).or_insert(0) += 1;
        match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedWriteError> {
        let mut map = self.shared.borrow_mut();
        // Envoy: a CAS is checked only against an existing key, and 0 means "no check".
        if let (Some(expected), Some((_, current))) = (cas.filter(|c| *c != 0), map.get(key)) {
            if expected != *current {
                return Err(SharedWriteError::CasMismatch);
            }
        }
        let next = self.next_cas.get() + 1;
        self.next_cas.set(next);
        map.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    fn http_get(
        &self,
        cluster: &str,
        authority: &str,
        path: &str,
        extra: &[(&str, &str)],
        _: u64,
    ) -> Result<u32, CallError> {
        if self.fail_calls.get() {
            return Err(CallError::BadArgument);
        }
        let token = u32::try_from(self.calls.borrow().len()).unwrap_or(0) + 100;
        self.calls.borrow_mut().push(Call {
            cluster: cluster.into(),
            authority: authority.into(),
            path: path.into(),
            headers: extra.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            token,
        });
        Ok(token)
    }

    fn set_tick_period_ms(&self, period_ms: u64) {
        self.tick_period_ms.set(Some(period_ms));
    }
}

impl Stream for Fake {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let name = path.join(".");
        // Envoy walks a path one step at a time: nothing is found under a metadata key that holds nothing
        // (`metadata.filter_metadata.<namespace>.<key>`), so no test can leave a claim without its payload.
        let key = path.get(..4).filter(|key| path.len() > 4 && key.first() == Some(&"metadata"));
        let orphan = key.is_some_and(|key| !self.properties.borrow().contains_key(&key.join(".")));
        let value = if orphan { None } else { self.properties.borrow().get(&name).cloned() };
        self.property_reads.borrow_mut().push(name);
        value
    }

    fn request_headers(&self) -> crate::proxy::headers::Headers {
        if self.garbled_headers.get() {
            return crate::proxy::headers::Headers::from_serialized(vec![9, 0, 0, 0]);
        }
        crate::proxy::headers::Headers::from_pairs(&self.headers.borrow())
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        if value.is_none() {
            self.removals.set(self.removals.get() + 1);
        }
        let mut h = self.headers.borrow_mut();
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            h.push((name.to_string(), v.to_vec()));
        }
    }

    fn add_request_header(&self, name: &str, value: &[u8]) {
        self.headers.borrow_mut().push((name.to_string(), value.to_vec()));
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        Some(self.body.borrow().iter().take(size).copied().collect())
    }

    fn send_response(&self, status: u16, details: &str, headers: &[(&str, &str)], body: &[u8]) {
        *self.reply.borrow_mut() = Some(Reply {
            status,
            details: details.to_string(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }

    fn set_decision(&self, decision: &Decision) {
        self.decisions.borrow_mut().push(decision.clone());
    }

    fn resume_request(&self) {
        self.resumed.set(self.resumed.get() + 1);
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.response_headers.borrow().iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    fn set_response_header(&self, name: &str, value: Option<&[u8]>) {
        let mut h = self.response_headers.borrow_mut();
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            h.push((name.to_string(), v.to_vec()));
        }
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        Some(self.response_body.borrow().iter().take(size).copied().collect())
    }

    fn replace_response_body(&self, size: usize, body: &[u8]) {
        let mut b = self.response_body.borrow_mut();
        let rest: Vec<u8> = b.iter().skip(size).copied().collect();
        *b = body.to_vec();
        b.extend(rest);
    }
}
