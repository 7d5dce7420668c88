//! Property tests (proptest) of the pure parsers: round trips, matching laws, and no panic on any input.

use crate::cert::dn::{AttrValue, Ava, Dn, Rdn};
use crate::cert::san::{SanKind, SanRule};
use crate::cert::Leaf;
use crate::config::{Config, UnknownClient};
use crate::forwarded::source::Presented;
use crate::oauth::jwks::{JwksUri, Thumbprint};
use crate::oauth::registration::{Client, Stored};
use crate::oauth::verdict::{decide, Directory, JwksView, Lookup, Reason, Verdict};
use crate::testdata::{der, FORWARDER, LEAF, SELF_SIGNED_1, SELF_SIGNED_2};
use crate::{
    cert::pem, forwarded::client_cert, forwarded::xfcc, oauth::basic, oauth::discovery, oauth::form, oauth::jwks,
    oauth::request, registry,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Modest case counts keep `cargo test` fast; failures are reported, not persisted to files (a real
/// failure becomes a named regression test in its module).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

mod any_input;
mod dn;
mod forms;
mod forwarded;
mod header_map;
mod laws;
mod registrations;

// ---------------------------------------------------------------------------------------------
// Generators and reference encoders (written independently of the code under test)

/// Attribute types with the names RFC 4514 parsers must accept for them.
const KNOWN_TYPES: &[(&str, &[&str])] = &[
    ("2.5.4.3", &["CN", "commonName"]),
    ("2.5.4.6", &["C", "countryName"]),
    ("2.5.4.10", &["O", "organizationName"]),
    ("2.5.4.11", &["OU", "organizationalUnitName"]),
    ("2.5.4.5", &["serialNumber"]),
    ("0.9.2342.19200300.100.1.25", &["DC", "domainComponent"]),
    ("0.9.2342.19200300.100.1.1", &["UID", "userid"]),
    ("1.2.840.113549.1.9.1", &["emailAddress", "E"]),
];

fn oid() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KNOWN_TYPES.iter().map(|(o, _)| *o).collect::<Vec<_>>())
            .prop_map(str::to_string),
        1 => (0u32..3, prop::collection::vec(0u32..200_000, 1..5)).prop_map(|(first, rest)| {
            let arcs: Vec<String> = std::iter::once(first).chain(rest).map(|a| a.to_string()).collect();
            arcs.join(".")
        }),
    ]
}

/// Text with RFC 4514 special characters, controls, NUL, non-ASCII letters and plain Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[ ,+\"\\\\;<>=#\\x00\\t\\r\\na-zA-Z0-9éİßΣ\u{2003}]{0,12}", any::<String>(),]
}

/// A definite-length BER TLV (short or long length form).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![tag];
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        4 => text().prop_map(AttrValue::Text),
        // Non-string types stay bytes: INTEGER, OCTET STRING, NULL, OID, SEQUENCE.
        1 => (proptest::sample::select(vec![0x02u8, 0x04, 0x05, 0x06, 0x30]), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(tag, content)| AttrValue::Bytes(tlv(tag, &content))),
    ]
}

fn dn() -> impl Strategy<Value = Dn> {
    let ava = (oid(), attr_value()).prop_map(|(oid, value)| Ava { oid, value });
    prop::collection::vec(prop::collection::vec(ava, 1..4).prop_map(|avas| Rdn { avas }), 1..5)
        .prop_map(|rdns| Dn { rdns })
}

/// Small names over a tiny alphabet, so that equal and nearly equal pairs are frequent.
fn small_dn() -> impl Strategy<Value = Dn> {
    let value = prop_oneof!["[aA ]{0,3}".prop_map(AttrValue::Text), Just(AttrValue::Bytes(vec![0x04, 0x01, 0x61]))];
    let ava = (proptest::sample::select(vec!["2.5.4.3", "2.5.4.10"]), value)
        .prop_map(|(oid, value)| Ava { oid: oid.to_string(), value });
    prop::collection::vec(prop::collection::vec(ava, 1..3).prop_map(|avas| Rdn { avas }), 0..3)
        .prop_map(|rdns| Dn { rdns })
}

/// Knobs: a stream of choices for the variant renderers.
struct Knobs<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Knobs<'_> {
    fn next(&mut self) -> u8 {
        let b = if self.bytes.is_empty() { 0 } else { self.bytes[self.at % self.bytes.len()] };
        self.at += 1;
        b
    }
}

fn spaces(k: &mut Knobs<'_>) -> String {
    " ".repeat(usize::from(k.next() % 3))
}

fn flip_ascii_case(c: char, k: &mut Knobs<'_>) -> char {
    if k.next().is_multiple_of(2) {
        c
    } else if c.is_ascii_lowercase() {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

/// The same text under caseIgnoreMatch: ASCII case flipped at random, each space widened at random,
/// extra spaces at both ends.
fn insignificant_changes(value: &str, k: &mut Knobs<'_>) -> String {
    let mut out = spaces(k);
    for c in value.chars() {
        if c == ' ' {
            out.push_str(&" ".repeat(1 + usize::from(k.next() % 2)));
        } else {
            out.push(flip_ascii_case(c, k));
        }
    }
    out.push_str(&spaces(k));
    out
}

fn hex_escape_all(s: &str, upper: bool) -> String {
    s.bytes().map(|b| if upper { format!("\\{b:02X}") } else { format!("\\{b:02x}") }).collect()
}

/// An RFC 4514 rendering of a text value, in one of four equivalent forms chosen by the knobs.
fn render_text(value: &str, k: &mut Knobs<'_>) -> String {
    match k.next() % 4 {
        // escaped string: specials backslash-escaped, controls and some others hex-escaped
        0 | 1 => {
            let n = value.chars().count();
            let mut out = String::new();
            for (i, c) in value.chars().enumerate() {
                match c {
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
                    '#' if i == 0 => out.push_str("\\#"),
                    c if c.is_control() || k.next().is_multiple_of(8) => {
                        out.push_str(&hex_escape_all(c.encode_utf8(&mut [0; 4]), k.next().is_multiple_of(2)))
                    }
                    c => out.push(c),
                }
            }
            out
        }
        // quoted string: only `"` and `\` need escaping
        2 => {
            let mut out = String::from("\"");
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
            out
        }
        // `#` followed by a UTF8String TLV
        _ => {
            let hex: String = tlv(0x0C, value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            if value.len() > 0xffff {
                format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                format!("#{hex}")
            }
        }
    }
}

/// A different but equal RFC 4514 string for `dn`: other attribute type spellings and case, spaces
/// around separators, other value encodings, and (when `fold` is set) insignificant case/space changes.
fn variant(dn: &Dn, knobs: &[u8], fold: bool) -> String {
    let mut k = Knobs { bytes: knobs, at: 0 };
    let mut out = spaces(&mut k);
    for (i, rdn) in dn.rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push_str(&spaces(&mut k));
            out.push(',');
            out.push_str(&spaces(&mut k));
        }
        for (j, ava) in rdn.avas.iter().enumerate() {
            if j > 0 {
                out.push_str(&spaces(&mut k));
                out.push('+');
                out.push_str(&spaces(&mut k));
            }
            let names = KNOWN_TYPES.iter().find(|(o, _)| *o == ava.oid).map_or(&[][..], |(_, n)| *n);
            let choice = usize::from(k.next());
            match names.get(choice % (names.len() + 2)) {
                Some(name) => out.extend(name.chars().map(|c| flip_ascii_case(c, &mut k))),
                None if choice % 2 == 0 => out.push_str(&format!("{}.{}", ["OID", "oid", "Oid"][choice % 3], ava.oid)),
                None => out.push_str(&ava.oid),
            }
            out.push_str(&spaces(&mut k));
            out.push('=');
            out.push_str(&spaces(&mut k));
            match &ava.value {
                AttrValue::Text(t) => {
                    let t = if fold { insignificant_changes(t, &mut k) } else { t.clone() };
                    out.push_str(&render_text(&t, &mut k));
                }
                AttrValue::Bytes(b) => {
                    let upper = k.next().is_multiple_of(2);
                    out.push('#');
                    for byte in b {
                        out.push_str(&if upper { format!("{byte:02X}") } else { format!("{byte:02x}") });
                    }
                }
            }
        }
    }
    out.push_str(&spaces(&mut k));
    out
}

/// application/x-www-form-urlencoded encoding of one component (unreserved kept, space as `+` or `%20`).
fn form_encode(s: &str, plus: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            b' ' if plus => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes every byte but letters, digits and `-` (how proxies URL-encode PEM).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { char::from(b).to_string() } else { format!("%{b:02x}") })
        .collect()
}

/// An XFCC quoted-string.
fn xfcc_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Arbitrary JSON without floats (integers, strings, nesting).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// An authorization server metadata document: arbitrary members, sometimes a methods array.
fn metadata() -> impl Strategy<Value = Map<String, Value>> {
    let method = proptest::sample::select(vec![
        "client_secret_basic",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ]);
    (
        prop::collection::vec(("[a-z_]{1,8}", json_value()), 0..6),
        proptest::option::of(prop::collection::vec(method, 0..5)),
    )
        .prop_map(|(members, methods)| {
            let mut obj: Map<String, Value> = members.into_iter().collect();
            if let Some(m) = methods {
                obj.insert("token_endpoint_auth_methods_supported".into(), json!(m));
            }
            obj
        })
}

/// A registry entry that compiles, of each kind the filter stores, for client `i`.
fn stored(id: String, kind: u8, i: usize) -> Stored {
    // Built through its stored JSON form, so fields added later take their defaults.
    let mut s = json!({"i": id, "m": "client_secret_basic", "b": i.is_multiple_of(2)});
    let fields = match kind % 5 {
        0 => json!({"m": "tls_client_auth", "s": ["tls_client_auth_subject_dn", format!("CN=client {i}, O=Example")]}),
        1 => json!({"m": "tls_client_auth", "s": ["tls_client_auth_san_dns", format!("c{i}.example.com")]}),
        2 => json!({"m": "self_signed_tls_client_auth", "t": [jwks::hex(&[i as u8; 32]), jwks::hex(&[0xee; 32])]}),
        3 => json!({"m": "self_signed_tls_client_auth", "u": format!("https://keys.example.com/{i}")}),
        _ => json!({}),
    };
    for (k, v) in fields.as_object().unwrap() {
        s[k] = v.clone();
    }
    Stored::from_json(&s).unwrap()
}

/// A directory with fixed registrations.
struct Fixed(HashMap<String, Rc<Client>>);

impl Directory for Fixed {
    fn client(&mut self, id: &str) -> Lookup {
        self.0.get(id).map_or(Lookup::Unknown, |c| Lookup::Found(c.clone()))
    }
    fn jwks(&mut self, _: &JwksUri) -> JwksView {
        JwksView::Known {
            thumbprints: vec![],
            freshness: crate::oauth::jwks::Freshness::Fresh,
            may_refetch: false,
            last_error: None,
        }
    }
}

fn directory(metadata: Value) -> Result<Fixed, String> {
    let client = crate::oauth::registration::check(&metadata)
        .map_err(|e| e.to_string())?
        .compile()
        .map_err(|e| e.to_string())?;
    Ok(Fixed(HashMap::from([(client.client_id.clone(), Rc::new(client))])))
}

fn tls_dn_directory(registered: &str) -> Result<Fixed, String> {
    directory(json!({
        "client_id": "c",
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": registered,
    }))
}

fn leaf_subject() -> Dn {
    Leaf::from_der(&der(LEAF)).unwrap().subject
}

/// Ways to make a DN that is certainly a different name from `base`.
fn differing(base: &Dn, kind: u8, at: usize, extra: &str) -> Dn {
    let mut dn = base.clone();
    let n = dn.rdns.len();
    let i = at % n;
    match kind % 6 {
        // a value gains a significant character
        0 => {
            if let Some(AttrValue::Text(t)) = dn.rdns[i].avas.first_mut().map(|a| &mut a.value) {
                t.push_str(extra);
            }
        }
        // an RDN is dropped
        1 => {
            dn.rdns.remove(i);
        }
        // an RDN is added
        2 => dn.rdns.insert(i, Rdn { avas: vec![Ava { oid: "2.5.4.3".into(), value: AttrValue::Text(extra.into()) }] }),
        // an RDN becomes multi-valued
        3 => dn.rdns[i].avas.push(Ava { oid: "2.5.4.11".into(), value: AttrValue::Text(extra.into()) }),
        // two RDNs trade places
        4 => dn.rdns.swap(i, (i + 1) % n),
        // an attribute changes type
        _ => {
            let ava = &mut dn.rdns[i].avas[0];
            ava.oid = if ava.oid == "2.5.4.4" { "2.5.4.42".into() } else { "2.5.4.4".into() };
        }
    }
    dn
}

/// `base` with bytes replaced at `edits`, then cut at `cut`: a damaged copy of a valid input.
fn mutated(base: &[u8], edits: &[(prop::sample::Index, u8)], cut: Option<prop::sample::Index>) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for (at, b) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *b;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    bytes
}
