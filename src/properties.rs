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

// ---------------------------------------------------------------------------------------------
// RFC 4514 distinguished names

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn dn_display_parses_back_to_the_same_dn(dn in dn()) {
        let printed = dn.to_string();
        prop_assert!(!printed.contains(['\r', '\n']), "display is one line: {printed:?}");
        prop_assert_eq!(Dn::parse(&printed), Ok(dn));
    }

    #[test]
    fn dn_other_spellings_of_the_same_name_parse_to_it(dn in dn(), knobs in prop::collection::vec(any::<u8>(), 1..64)) {
        let text = variant(&dn, &knobs, false);
        prop_assert_eq!(Dn::parse(&text), Ok(dn), "{}", text);
    }

    #[test]
    fn dn_matches_itself_under_ascii_case_and_space_changes(dn in dn(), knobs in prop::collection::vec(any::<u8>(), 1..64)) {
        let text = variant(&dn, &knobs, true);
        let other = Dn::parse(&text).unwrap();
        prop_assert!(dn.matches(&dn));
        prop_assert!(dn.matches(&other), "{} vs {}", dn, text);
        prop_assert!(other.matches(&dn), "{} vs {}", text, dn);
    }

    #[test]
    fn dn_match_is_symmetric(a in small_dn(), b in small_dn()) {
        prop_assert_eq!(a.matches(&b), b.matches(&a));
        prop_assert!(a.matches(&a));
    }

    #[test]
    fn dn_multi_valued_rdn_matches_in_any_order(dn in dn()) {
        let mut reordered = dn.clone();
        for rdn in &mut reordered.rdns {
            rdn.avas.reverse();
        }
        prop_assert!(dn.matches(&reordered));
        prop_assert!(reordered.matches(&dn));
    }

    #[test]
    fn dn_with_another_rdn_count_never_matches(dn in dn(), extra in dn()) {
        let mut longer = dn.clone();
        longer.rdns.extend(extra.rdns);
        prop_assert!(!dn.matches(&longer));
        prop_assert!(!longer.matches(&dn));
    }

    #[test]
    fn dn_parse_never_panics_on_special_characters(s in "[ ,+=\"\\\\;<>#0-9a-fA-FcnoOIDu.\\x00é]{0,40}") {
        if let Ok(dn) = Dn::parse(&s) {
            prop_assert_eq!(Dn::parse(&dn.to_string()), Ok(dn));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forms, Basic credentials and the client_id rule

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn form_encode_decode_round_trips(
        pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        plus in any::<bool>(),
        empty_pieces in any::<bool>(),
    ) {
        let sep = if empty_pieces { "&&" } else { "&" };
        let body = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", form_encode(n, plus), form_encode(v, plus)))
            .collect::<Vec<_>>()
            .join(sep);
        let body = if empty_pieces { format!("&{body}&") } else { body };
        prop_assert_eq!(form::decode(body.as_bytes()), Ok(pairs));
    }

    #[test]
    fn client_id_is_found_once_and_a_repeat_is_an_error(
        others in prop::collection::vec(("[a-z_]{1,10}", any::<String>()), 0..5),
        ids in prop::collection::vec((any::<String>(), 0u8..3, any::<prop::sample::Index>()), 0..4),
    ) {
        let mut pairs: Vec<(String, String)> =
            others.into_iter().filter(|(n, _)| n != "client_id").map(|(n, v)| (n, form_encode(&v, true))).collect();
        for (value, spelling, at) in &ids {
            let name = ["client_id", "client%5Fid", "%63lient_id"][usize::from(*spelling)];
            pairs.insert(at.index(pairs.len() + 1), (name.to_string(), form_encode(value, true)));
        }
        let body = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
        let found = form::client_id(body.as_bytes());
        match ids.len() {
            0 => prop_assert_eq!(found, Ok(None)),
            1 => prop_assert_eq!(found, Ok(Some(ids[0].0.clone()))),
            _ => prop_assert_eq!(found, Err(form::FormError::DuplicateParameter("client_id".into()))),
        }
    }

    #[test]
    fn basic_credentials_round_trip(
        id in any::<String>(),
        secret in any::<String>(),
        scheme in proptest::sample::select(vec!["Basic", "basic", "BASIC"]),
        pad in " {0,2}",
    ) {
        let credentials = STANDARD.encode(format!("{}:{}", form_encode(&id, true), form_encode(&secret, true)));
        let header = format!("{pad}{scheme} {pad}{credentials}{pad}");
        prop_assert_eq!(basic::client_id(header.as_bytes()), Ok(Some(id.clone())));
        // Basic credentials and a form body naming the same client agree.
        let body = format!("grant_type=client_credentials&client_id={}", form_encode(&id, false));
        prop_assert_eq!(request::client_id(body.as_bytes(), Some(header.as_bytes())), Ok(Some(id)));
    }

    #[test]
    fn basic_and_body_naming_different_clients_is_rejected(a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
        prop_assume!(a != b);
        let header = format!("Basic {}", STANDARD.encode(format!("{a}:secret")));
        let body = format!("client_id={b}");
        let rejected = request::client_id(body.as_bytes(), Some(header.as_bytes())).unwrap_err();
        prop_assert_eq!(rejected.reason, Reason::InvalidRequest);
    }

    #[test]
    fn other_authorization_schemes_carry_no_client_id(token in "[A-Za-z0-9._~+/=-]{0,40}") {
        prop_assert_eq!(basic::client_id(format!("Bearer {token}").as_bytes()), Ok(None));
    }
}

// ---------------------------------------------------------------------------------------------
// x-forwarded-client-cert, RFC 9440 Client-Cert, PEM

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn xfcc_quoted_subject_round_trips_and_yields_no_second_cert(subject in text(), uri in text(), body in prop::collection::vec(any::<u8>(), 1..64)) {
        let pem_text = pem::encode(&body);
        let value = format!(
            "By=spiffe://proxy;Hash=00;Subject={};URI={};Cert={}",
            xfcc_quote(&subject),
            xfcc_quote(&uri),
            xfcc_quote(&url_encode(&pem_text)),
        );
        let elements = xfcc::parse(value.as_bytes()).unwrap();
        prop_assert_eq!(elements.len(), 1);
        prop_assert_eq!(elements[0].subject.as_deref(), Some(subject.as_str()));
        prop_assert_eq!(&elements[0].uri, &vec![uri]);
        prop_assert_eq!(elements[0].cert.as_deref(), Some(pem_text.as_str()));
    }

    #[test]
    fn xfcc_elements_come_back_in_order(subjects in prop::collection::vec(text(), 1..5)) {
        let value = subjects.iter().map(|s| format!("Hash=00;Subject={}", xfcc_quote(s))).collect::<Vec<_>>().join(",");
        let parsed: Vec<Option<String>> = xfcc::parse(value.as_bytes()).unwrap().into_iter().map(|e| e.subject).collect();
        prop_assert_eq!(parsed, subjects.into_iter().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn client_cert_encode_parse_round_trips(
        der in prop::collection::vec(any::<u8>(), 1..400),
        unpadded in any::<bool>(),
        params in proptest::sample::select(vec!["", ";a=1", "; b=?0", ";k=\"x\\\"y\"", ";t=tok/1:2", ";n=-1.5;m", ";z=:AQ==:"]),
        pad in " {0,2}",
    ) {
        let mut item = client_cert::encode(&der);
        if unpadded {
            item = item.replace('=', "");
        }
        let value = format!("{pad}{item}{params}{pad}");
        prop_assert_eq!(client_cert::parse_client_cert(value.as_bytes()), Ok(der));
    }

    #[test]
    fn client_cert_chain_encode_parse_round_trips(
        chain in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 0..5),
        sep in proptest::sample::select(vec![",", ", ", " ,\t", ",  "]),
    ) {
        let value = chain.iter().map(|d| client_cert::encode(d)).collect::<Vec<_>>().join(sep);
        prop_assert_eq!(client_cert::parse_client_cert_chain(value.as_bytes()), Ok(chain));
    }

    #[test]
    fn pem_encode_decode_round_trips(
        ders in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..4),
        junk in "[a-z .:\n]{0,20}",
        other_block in any::<bool>(),
        crlf in any::<bool>(),
        url_encoded in any::<bool>(),
    ) {
        let mut text = String::new();
        for d in &ders {
            text.push_str(&junk);
            if other_block {
                text.push_str("-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n");
            }
            text.push_str(&pem::encode(d));
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if url_encoded {
            text = url_encode(&text);
        }
        prop_assert_eq!(pem::decode_certificates(text.as_bytes()), Ok(ders.clone()));
        prop_assert_eq!(pem::decode_leaf(text.as_bytes()), Ok(ders[0].clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// Registry, discovery, verdict

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn registry_buckets_keep_every_client(
        ids in prop::collection::hash_set("[a-z0-9._-]{1,12}|\\PC{1,6}", 0..24),
        kinds in prop::collection::vec(any::<u8>(), 24),
        buckets in 1u32..20,
    ) {
        let clients: Vec<Stored> = ids.iter().enumerate().map(|(i, id)| stored(id.clone(), kinds[i], i)).collect();
        let encoded = registry::encode_buckets(&clients, buckets);
        prop_assert_eq!(encoded.len(), buckets as usize);
        let mut seen = HashMap::new();
        for (index, bytes) in encoded.iter().enumerate() {
            for (id, client) in registry::decode_bucket(bytes) {
                prop_assert_eq!(registry::bucket_of(&id, buckets), index as u32);
                prop_assert!(seen.insert(id, client).is_none());
            }
        }
        prop_assert_eq!(seen.len(), clients.len());
        for s in &clients {
            prop_assert_eq!(seen.get(&s.client_id).map(|c| (**c).clone()), Some(s.compile().unwrap()));
        }
        // The encoding does not depend on the order of the document.
        let mut reversed = clients.clone();
        reversed.reverse();
        prop_assert_eq!(registry::encode_buckets(&reversed, buckets), encoded);
    }

    #[test]
    fn registry_loads_only_the_client_ids_listed_once(entries in prop::collection::vec((0u8..4, 0usize..3), 0..12)) {
        let methods = ["client_secret_basic", "private_key_jwt", "none"];
        let list: Vec<Value> = entries
            .iter()
            .map(|(id, m)| json!({"client_id": format!("c{id}"), "token_endpoint_auth_method": methods[*m]}))
            .collect();
        let doc = registry::parse_document(&serde_json::to_vec(&list).unwrap()).unwrap();
        let mut first = Vec::new();
        let mut later = Vec::new();
        let mut seen = HashSet::new();
        for (id, m) in &entries {
            if seen.insert(*id) {
                first.push((format!("c{id}"), methods[*m].to_string()));
            } else {
                later.push(format!("c{id}"));
            }
        }
        first.retain(|(id, _)| !later.contains(id));
        let kept: Vec<(String, String)> = doc.clients.iter().map(|s| (s.client_id.clone(), s.method.clone())).collect();
        prop_assert_eq!(kept, first);
        prop_assert_eq!(&doc.duplicates, &later);
        prop_assert!(doc.refused.is_empty());
        let wrapped = registry::parse_document(&serde_json::to_vec(&json!({"clients": list})).unwrap()).unwrap();
        prop_assert_eq!(wrapped, doc);
    }

    /// Parsing registration by registration accepts, refuses and loads exactly what parsing the whole
    /// document at once did, whatever the document and however it is damaged.
    #[test]
    fn registry_scanning_agrees_with_parsing_the_whole_document(
        value in json_value(),
        wrap in 0u8..3,
        pretty in any::<bool>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(b"{}[]\",:\\ 0-e.tnx\x01".to_vec())),
            0..3,
        ),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let doc = match wrap {
            0 => value,
            1 => json!([value, {"client_id": "a"}]),
            _ => json!({"x": value.clone(), "clients": [value, {"client_id": "b"}]}),
        };
        let text = if pretty { serde_json::to_vec_pretty(&doc) } else { serde_json::to_vec(&doc) }.unwrap();
        let bytes = mutated(&text, &edits, cut);
        if let Err(e) = registry::tests::agrees_with_whole_parse(&bytes) {
            prop_assert!(false, "{}", e);
        }
    }

    /// A damaged bucket gives an error or a miss for a client, never a panic nor another client's registration.
    #[test]
    fn a_damaged_bucket_never_yields_another_clients_registration(
        ids in prop::collection::btree_set("[a-z]{1,6}", 1..12),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        wanted in "[a-z]{1,6}",
    ) {
        let clients: Vec<Stored> = ids.iter().enumerate().map(|(i, id)| stored(id.clone(), i as u8, i)).collect();
        let damaged = mutated(&registry::encode_buckets(&clients, 1).remove(0), &edits, cut);
        let _ = crate::registry::bucket::entries(&damaged);
        let _ = registry::decode_bucket(&damaged);
        for id in ids.iter().chain([&wanted]) {
            if let Ok(Some(found)) = registry::find_client(&damaged, id) {
                prop_assert_eq!(&found.client_id, id);
            }
        }
    }

    /// A load in slices of any size writes the buckets of the whole document.
    #[test]
    fn a_sliced_load_writes_the_buckets_of_the_whole_document(
        entries in prop::collection::vec((0u8..12, 0usize..4), 0..16),
        buckets in 1u32..6,
        registrations in 1usize..5,
        scan_bytes in 1usize..80,
        write_bytes in 1usize..400,
        write_buckets in 1usize..4,
    ) {
        let methods = ["client_secret_basic", "none", "tls_client_auth", "self_signed_tls_client_auth"];
        let list: Vec<Value> = entries
            .iter()
            .map(|(id, m)| json!({"client_id": format!("c{id}"), "token_endpoint_auth_method": methods[*m],
                                  "tls_client_auth_san_dns": "a.example.com", "jwks_uri": "https://x/j"}))
            .collect();
        let body = serde_json::to_vec(&json!({"clients": list})).unwrap();
        let whole = registry::parse_document(&body).unwrap();
        let budget = crate::registry::load::Budget { registrations, scan_bytes, write_bytes, write_buckets };
        let mut load = crate::registry::load::Load::new(body, buckets, None, budget);
        let mut written = Vec::new();
        for _ in 0..10_000 {
            match load.step().unwrap() {
                crate::registry::load::Step::Parsed(_) => {}
                crate::registry::load::Step::Write(values) => written.extend(values.into_iter().map(|(_, v)| v)),
                crate::registry::load::Step::Done(summary) => {
                    prop_assert_eq!(summary.clients, whole.clients.len() as u64);
                    let not_loaded = whole.refused.len() + whole.duplicates.len() + whole.withdrawn.len();
                    prop_assert_eq!(summary.refused, not_loaded as u64);
                    break;
                }
            }
        }
        prop_assert_eq!(written, registry::encode_buckets(&whole.clients, buckets));
    }

    #[test]
    fn discovery_amend_is_idempotent_and_keeps_every_member(doc in metadata(), with_aliases in any::<bool>()) {
        let aliases: Map<String, Value> = [("token_endpoint".to_string(), json!("https://mtls.example.com/token"))].into_iter().collect();
        let aliases = with_aliases.then_some(&aliases);
        let input = serde_json::to_vec(&doc).unwrap();
        let once = discovery::amend(&input, aliases).unwrap();
        let twice = discovery::amend(&once, aliases).unwrap();
        prop_assert_eq!(&twice, &once);
        let amended: Map<String, Value> = serde_json::from_slice(&once).unwrap();
        // Every original member keeps its place and (apart from the methods list) its value.
        let keys: Vec<&String> = amended.keys().collect();
        prop_assert_eq!(&keys[..doc.len()], &doc.keys().collect::<Vec<_>>()[..]);
        for (key, value) in &doc {
            if key != "token_endpoint_auth_methods_supported" && key != "tls_client_certificate_bound_access_tokens" && key != "mtls_endpoint_aliases" {
                prop_assert_eq!(&amended[key], value);
            }
        }
        let methods = amended["token_endpoint_auth_methods_supported"].as_array().unwrap();
        let before = doc.get("token_endpoint_auth_methods_supported").and_then(Value::as_array).cloned().unwrap_or_default();
        prop_assert_eq!(&methods[..before.len()], &before[..]);
        for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
            prop_assert!(methods.iter().any(|v| v == m));
        }
        prop_assert_eq!(&amended["tls_client_certificate_bound_access_tokens"], &json!(true));
    }

    #[test]
    fn verdict_never_authenticates_a_client_whose_registered_dn_differs(
        kind in any::<u8>(),
        at in any::<usize>(),
        extra in "[a-z0-9]{1,4}",
        knobs in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let subject = leaf_subject();
        let other = differing(&subject, kind, at, &extra);
        let registered = variant(&other, &knobs, true);
        let mut dir = tls_dn_directory(&registered).unwrap();
        let presented = Presented::certificate(der(LEAF), true);
        match decide(Some("c"), &presented, UnknownClient::Reject, &mut dir) {
            Verdict::Reject(r) => prop_assert_eq!(r.reason, Reason::SubjectMismatch, "{}", registered),
            v => prop_assert!(false, "{registered} gave {v:?}"),
        }
    }

    #[test]
    fn verdict_authenticates_the_registered_dn_however_it_is_spelled(knobs in prop::collection::vec(any::<u8>(), 1..32), validated in any::<bool>()) {
        let registered = variant(&leaf_subject(), &knobs, true);
        let mut dir = tls_dn_directory(&registered).unwrap();
        let presented = Presented::certificate(der(LEAF), validated);
        let verdict = decide(Some("c"), &presented, UnknownClient::Reject, &mut dir);
        if validated {
            prop_assert!(matches!(verdict, Verdict::Authenticated(ref a) if a.client_id == "c"), "{registered} gave {verdict:?}");
        } else {
            // tls_client_auth never accepts an unvalidated chain, whatever the subject.
            prop_assert!(matches!(verdict, Verdict::Reject(ref r) if r.reason == Reason::NotValidated), "{verdict:?}");
        }
    }

    #[test]
    fn verdict_only_authenticates_what_the_registration_names(
        registered in dn(),
        san in "[a-z.]{1,12}|spiffe://[a-z/]{1,12}",
        san_kind in 0u8..2,
        prints in prop::collection::vec(any::<[u8; 32]>(), 1..3),
        cert in 0usize..4,
        self_signed in any::<bool>(),
    ) {
        let pems = [LEAF, FORWARDER, SELF_SIGNED_1, SELF_SIGNED_2];
        let der = der(pems[cert]);
        let leaf = Leaf::from_der(&der).unwrap();
        let metadata = if self_signed {
            let keys: Vec<Value> = prints.iter().map(|p| json!({"kty": "EC", "x5c": [STANDARD.encode(p)]})).collect();
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": keys}})
        } else if san_kind == 0 {
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": registered.to_string()})
        } else {
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": san})
        };
        let Ok(mut dir) = directory(metadata) else { return Ok(()) };
        let presented = Presented::certificate(der, true);
        if let Verdict::Authenticated(_) = decide(Some("c"), &presented, UnknownClient::Reject, &mut dir) {
            // x5c values are not certificates here, so their thumbprints never equal a real one.
            prop_assert!(!self_signed);
            if san_kind == 0 {
                prop_assert!(registered.matches(&leaf.subject));
            } else {
                prop_assert!(SanRule::parse(SanKind::Uri, &san).unwrap().matches(&leaf.sans));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every parser answers Ok or Err on any input

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

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn every_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = form::decode(&bytes);
        let _ = form::client_id(&bytes);
        let _ = form::is_form_content_type(&bytes);
        let _ = basic::client_id(&bytes);
        let _ = request::client_id(&bytes, Some(&bytes));
        let _ = xfcc::parse(&bytes);
        let _ = client_cert::parse_client_cert(&bytes);
        let _ = client_cert::parse_client_cert_chain(&bytes);
        let _ = pem::decode_certificates(&bytes);
        let _ = Dn::parse(&String::from_utf8_lossy(&bytes));
        let _ = Leaf::from_der(&bytes);
        let _ = registry::parse_document(&bytes);
        let _ = registry::decode_bucket(&bytes);
        let _ = registry::Meta::decode(Some(&bytes));
        let _ = registry::Lease::decode(Some(&bytes));
        let _ = registry::JwksEntry::decode(Some(&bytes));
        let _ = jwks::parse_thumbprints(&bytes);
        let _ = Config::parse(&bytes);
        let _ = discovery::amend(&bytes, None);
        let text = String::from_utf8_lossy(&bytes);
        let _ = JwksUri::parse(&text);
        let _ = jwks::thumbprint_from_hex(&text);
        for kind in [SanKind::Dns, SanKind::Uri, SanKind::Ip, SanKind::Email] {
            let _ = SanRule::parse(kind, &text);
        }
    }

    #[test]
    fn header_parsers_survive_their_own_special_characters(s in "[ \t,;=\"\\\\:%+/A-Za-z0-9*?.-]{0,80}") {
        let _ = xfcc::parse(s.as_bytes());
        let _ = client_cert::parse_client_cert(s.as_bytes());
        let _ = client_cert::parse_client_cert_chain(s.as_bytes());
        let _ = form::client_id(s.as_bytes());
        let _ = basic::client_id(s.as_bytes());
        let _ = pem::decode_certificates(s.as_bytes());
    }

    #[test]
    fn certificate_parser_survives_corrupted_certificates(
        cert in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let pems = [LEAF, FORWARDER, SELF_SIGNED_1, SELF_SIGNED_2];
        let bytes = mutated(&der(pems[cert]), &edits, cut);
        if let Ok(leaf) = Leaf::from_der(&bytes) {
            prop_assert!(!leaf.subject.to_string().contains(['\r', '\n']));
        }
        let mut dir = tls_dn_directory("CN=nobody").unwrap();
        let verdict = decide(Some("c"), &Presented::certificate(bytes, true), UnknownClient::Reject, &mut dir);
        prop_assert!(matches!(verdict, Verdict::Reject(_)));
    }

    #[test]
    fn json_parsers_survive_arbitrary_json(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = registry::parse_document(&bytes);
        let _ = registry::parse_document(&serde_json::to_vec(&json!([value])).unwrap());
        let _ = crate::oauth::registration::check(&value);
        let _ = jwks::x5c_thumbprints(&value);
        let _ = jwks::x5c_thumbprints(&json!({"keys": [{"x5c": [value.clone()]}, value.clone()]}));
        let _ = Config::parse(&bytes);
        let _ = discovery::amend(&bytes, None);
    }
}

fn one_line(error: impl std::fmt::Display) -> Result<(), TestCaseError> {
    let text = error.to_string();
    prop_assert!(!text.contains(['\r', '\n']), "error message is not one line: {:?}", text);
    Ok(())
}

proptest! {
    #![proptest_config(cases(128))]

    /// Error messages reach logs and response bodies: never more than one line, whatever the input echoes.
    #[test]
    fn every_error_message_is_one_line(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        key in "\\PC{0,4}[\r\n\u{85}\u{2028}]\\PC{0,4}|\\PC{0,8}",
        value in "\\PC{0,4}[\r\n\u{85}\u{2028}]\\PC{0,4}|\\PC{0,8}",
    ) {
        if let Err(e) = form::decode(&bytes) { one_line(e)?; }
        if let Err(e) = basic::client_id(&bytes) { one_line(e)?; }
        if let Err(e) = xfcc::parse(&bytes) { one_line(e)?; }
        if let Err(e) = client_cert::parse_client_cert(&bytes) { one_line(e)?; }
        if let Err(e) = client_cert::parse_client_cert_chain(&bytes) { one_line(e)?; }
        if let Err(e) = pem::decode_certificates(&bytes) { one_line(e)?; }
        if let Err(e) = Dn::parse(&String::from_utf8_lossy(&bytes)) { one_line(e)?; }
        if let Err(e) = Dn::parse(&value) { one_line(e)?; }
        if let Err(e) = Leaf::from_der(&bytes) { one_line(e)?; }
        if let Err(e) = registry::parse_document(&bytes) { one_line(e)?; }
        if let Err(e) = jwks::parse_thumbprints(&bytes) { one_line(e)?; }
        if let Err(e) = discovery::amend(&bytes, None) { one_line(e)?; }
        if let Err(e) = JwksUri::parse(&value) { one_line(e)?; }
        if let Err(e) = Config::parse(&bytes) { one_line(e)?; }
        // The configuration and registrations echo member names and values from the document.
        let configs = [
            json!({(key.clone()): 1}),
            json!({"registry": {"cluster": "r", (key.clone()): 1}}),
            json!({"certificate_source": value}),
            json!({"endpoints": [value]}),
            json!({"forward_certificate": {"header": value}}),
            json!({"trusted_forwarders": [{"subject_dn": value}]}),
            json!({"clients": [{"client_id": value, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": value}]}),
        ];
        for doc in configs {
            if let Err(e) = Config::parse(&serde_json::to_vec(&doc).unwrap()) { one_line(e)?; }
        }
        let tls = |field: &str| json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", (field): value});
        let registrations = [
            tls("tls_client_auth_subject_dn"),
            tls("tls_client_auth_san_ip"),
            tls("tls_client_auth_san_email"),
            json!({"client_id": "c", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": value}),
            json!({"client_id": "c", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a", "tls_client_auth_issuer_keys": [value]}),
        ];
        for metadata in registrations {
            if let Err(e) = crate::oauth::registration::check(&metadata) { one_line(e)?; }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small laws

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn thumbprint_hex_round_trips(print in any::<Thumbprint>()) {
        prop_assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(&print)), Some(print));
        prop_assert_eq!(jwks::thumbprint_from_hex(&jwks::hex(&print).to_uppercase()), Some(print));
    }

    #[test]
    fn jwks_thumbprints_are_the_sha256_of_each_x5c(certs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..4)) {
        let keys: Vec<Value> = certs.iter().map(|c| json!({"kty": "RSA", "x5c": [STANDARD.encode(c), "ignored"]})).collect();
        let doc = serde_json::to_vec(&json!({"keys": keys})).unwrap();
        let expected: Vec<Thumbprint> = certs.iter().map(|c| crate::cert::sha256(c)).collect();
        prop_assert_eq!(jwks::parse_thumbprints(&doc), Ok(expected));
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy's serialized header map

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn a_serialized_header_map_reads_back_every_pair_in_order(
        pairs in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..12), prop::collection::vec(any::<u8>(), 0..24)), 0..8)
    ) {
        let map = crate::proxy::headers::Headers::from_pairs(&pairs);
        prop_assert!(!map.is_malformed());
        let read: Vec<(Vec<u8>, Vec<u8>)> = map.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(read, pairs);
    }

    #[test]
    fn any_bytes_from_the_proxy_read_as_a_map_or_as_malformed_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let map = crate::proxy::headers::Headers::from_serialized(bytes);
        if map.is_malformed() {
            prop_assert_eq!(map.iter().count(), 0);
        }
        let _ = map.get(":path");
    }

    #[test]
    fn a_damaged_serialized_map_is_read_whole_or_not_at_all(
        pairs in prop::collection::vec(("[a-z]{1,6}", "[a-z]{0,6}"), 1..6), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let good = crate::proxy::headers::Headers::from_pairs(&pairs);
        // Serialize by hand, damage one byte, and read: either the layout still holds (the same number of
        // headers) or the map is malformed and shows nothing.
        let mut serialized = Vec::new();
        serialized.extend_from_slice(&u32::try_from(pairs.len()).unwrap().to_le_bytes());
        for (n, v) in &pairs {
            serialized.extend_from_slice(&u32::try_from(n.len()).unwrap().to_le_bytes());
            serialized.extend_from_slice(&u32::try_from(v.len()).unwrap().to_le_bytes());
        }
        for (n, v) in &pairs {
            serialized.extend_from_slice(n.as_bytes());
            serialized.push(0);
            serialized.extend_from_slice(v.as_bytes());
            serialized.push(0);
        }
        prop_assert_eq!(crate::proxy::headers::Headers::from_serialized(serialized.clone()), good);
        let i = at.index(serialized.len());
        serialized[i] = byte;
        let damaged = crate::proxy::headers::Headers::from_serialized(serialized);
        if damaged.is_malformed() {
            prop_assert_eq!(damaged.iter().count(), 0);
        } else {
            prop_assert_eq!(damaged.iter().count(), pairs.len());
        }
    }
}
