//! Envoy's x-forwarded-client-cert header, parsed with quotes and escapes respected.

use std::fmt;

/// One element of the header: the certificate information added by one proxy hop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// `By` values (SANs of the proxy's own certificate); may repeat.
    pub by: Vec<String>,
    /// `Hash`: hex SHA-256 of the client certificate, as sent.
    pub hash: Option<String>,
    /// `Cert`: the client certificate as PEM, percent-decoded.
    pub cert: Option<String>,
    /// `Chain`: the client chain as PEM, percent-decoded.
    pub chain: Option<String>,
    /// `Subject`: the subject DN, unquoted and unescaped.
    pub subject: Option<String>,
    /// `URI` SANs; may repeat.
    pub uri: Vec<String>,
    /// `DNS` SANs; may repeat.
    pub dns: Vec<String>,
}

/// Why an x-forwarded-client-cert value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XfccError {
    /// The header value is empty or only whitespace.
    Empty,
    /// The header value is not UTF-8.
    NotUtf8,
    /// A double quote is never closed.
    UnbalancedQuote,
    /// An element is empty (`a=b,,c=d`, leading or trailing `,`).
    EmptyElement,
    /// A key=value pair is empty (`a=b;;c=d`, trailing `;`).
    EmptyPair,
    /// A pair has no `=`.
    MissingEquals,
    /// A key is empty or has characters other than letters, digits, `-` and `_`.
    InvalidKey,
    /// A single-valued key (named here in canonical case) appears twice in one element.
    DuplicateKey(String),
    /// A quoted value is followed by more text before the next `;` or `,`.
    TextAfterClosingQuote,
    /// An unquoted value contains a double quote.
    QuoteInUnquotedValue,
    /// The value of the named key (`Cert` or `Chain`) has a `%` not followed by two hex digits.
    InvalidPercentEncoding(String),
    /// The percent-decoded value of the named key (`Cert` or `Chain`) is not UTF-8.
    DecodedNotUtf8(String),
}

impl fmt::Display for XfccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XfccError::Empty => f.write_str("x-forwarded-client-cert is empty"),
            XfccError::NotUtf8 => f.write_str("x-forwarded-client-cert is not UTF-8"),
            XfccError::UnbalancedQuote => f.write_str("x-forwarded-client-cert has an unclosed double quote"),
            XfccError::EmptyElement => f.write_str("x-forwarded-client-cert has an empty element"),
            XfccError::EmptyPair => f.write_str("x-forwarded-client-cert has an empty key=value pair"),
            XfccError::MissingEquals => f.write_str("x-forwarded-client-cert has a pair without '='"),
            XfccError::InvalidKey => f.write_str("x-forwarded-client-cert has an invalid key"),
            XfccError::DuplicateKey(key) => write!(f, "x-forwarded-client-cert element has key {key} more than once"),
            XfccError::TextAfterClosingQuote => f.write_str("x-forwarded-client-cert has text after a closing quote"),
            XfccError::QuoteInUnquotedValue => {
                f.write_str("x-forwarded-client-cert has a double quote inside an unquoted value")
            }
            XfccError::InvalidPercentEncoding(key) => {
                write!(f, "x-forwarded-client-cert {key} value has a '%' not followed by two hex digits")
            }
            XfccError::DecodedNotUtf8(key) => {
                write!(f, "x-forwarded-client-cert {key} value is not UTF-8 after percent-decoding")
            }
        }
    }
}

impl std::error::Error for XfccError {}

/// Parses an x-forwarded-client-cert value into its elements, in header order.
///
/// `,` separates elements and `;` separates pairs only outside double quotes; inside quotes `\"`
/// is a quote and `\\` a backslash (any other `\x` is kept as is). Keys are case-insensitive;
/// unknown keys are ignored. Runs in time linear in the input.
pub fn parse(value: &[u8]) -> Result<Vec<Element>, XfccError> {
    let text = std::str::from_utf8(value).map_err(|_| XfccError::NotUtf8)?;
    if trim(text).is_empty() {
        return Err(XfccError::Empty);
    }

    let mut elements = Vec::new();
    let mut current = Element::default();
    let mut pair_start = 0;
    let mut pairs_in_element = 0usize;
    let mut in_quotes = false;
    let mut escaped = false;

    for (i, c) in text.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ';' | ',' => {
                let pair = text.get(pair_start..i).ok_or(XfccError::EmptyPair)?;
                add_pair(&mut current, pair, c == ',' && pairs_in_element == 0)?;
                pairs_in_element = pairs_in_element.saturating_add(1);
                pair_start = i.saturating_add(1);
                if c == ',' {
                    elements.push(std::mem::take(&mut current));
                    pairs_in_element = 0;
                }
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(XfccError::UnbalancedQuote);
    }
    let pair = text.get(pair_start..).ok_or(XfccError::EmptyPair)?;
    add_pair(&mut current, pair, pairs_in_element == 0)?;
    elements.push(current);
    Ok(elements)
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Adds one raw `key=value` pair to `element`. `alone` says the pair is the whole element, so an
/// empty pair is an empty element.
fn add_pair(element: &mut Element, raw: &str, alone: bool) -> Result<(), XfccError> {
    let pair = trim(raw);
    if pair.is_empty() {
        return Err(if alone { XfccError::EmptyElement } else { XfccError::EmptyPair });
    }
    let (key, raw_value) = pair.split_once('=').ok_or(XfccError::MissingEquals)?;
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(XfccError::InvalidKey);
    }
    let value = unquote(raw_value)?;

    fn set_once(slot: &mut Option<String>, key: &str, value: String) -> Result<(), XfccError> {
        if slot.is_some() {
            return Err(XfccError::DuplicateKey(key.to_string()));
        }
        *slot = Some(value);
        Ok(())
    }

    if key.eq_ignore_ascii_case("By") {
        element.by.push(value);
    } else if key.eq_ignore_ascii_case("Hash") {
        set_once(&mut element.hash, "Hash", value)?;
    } else if key.eq_ignore_ascii_case("Cert") {
        set_once(&mut element.cert, "Cert", url_decode(&value, "Cert")?)?;
    } else if key.eq_ignore_ascii_case("Chain") {
        set_once(&mut element.chain, "Chain", url_decode(&value, "Chain")?)?;
    } else if key.eq_ignore_ascii_case("Subject") {
        set_once(&mut element.subject, "Subject", value)?;
    } else if key.eq_ignore_ascii_case("URI") {
        element.uri.push(value);
    } else if key.eq_ignore_ascii_case("DNS") {
        element.dns.push(value);
    }
    Ok(())
}

/// Removes the quotes and escapes of a quoted value; an unquoted value is returned as is.
fn unquote(raw: &str) -> Result<String, XfccError> {
    let Some(inner) = raw.strip_prefix('"') else {
        if raw.contains('"') {
            return Err(XfccError::QuoteInUnquotedValue);
        }
        return Ok(raw.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err(XfccError::UnbalancedQuote),
            },
            '"' => {
                return if chars.as_str().is_empty() { Ok(out) } else { Err(XfccError::TextAfterClosingQuote) };
            }
            _ => out.push(c),
        }
    }
    Err(XfccError::UnbalancedQuote)
}

fn url_decode(value: &str, key: &str) -> Result<String, XfccError> {
    let bytes = crate::cert::pem::percent_decode(value.as_bytes())
        .ok_or_else(|| XfccError::InvalidPercentEncoding(key.to_string()))?;
    String::from_utf8(bytes).map_err(|_| XfccError::DecodedNotUtf8(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";

    #[test]
    fn single_element_has_every_key() {
        let v = format!(
            "By=spiffe://mesh/sa/proxy;Hash={HASH};Subject=\"CN=client,O=Example\";URI=spiffe://mesh/sa/client;DNS=a.example;DNS=b.example"
        );
        let e = parse(v.as_bytes()).unwrap();
        assert_eq!(
            e,
            vec![Element {
                by: vec!["spiffe://mesh/sa/proxy".into()],
                hash: Some(HASH.into()),
                cert: None,
                chain: None,
                subject: Some("CN=client,O=Example".into()),
                uri: vec!["spiffe://mesh/sa/client".into()],
                dns: vec!["a.example".into(), "b.example".into()],
            }]
        );
    }

    #[test]
    fn two_elements_keep_header_order() {
        let e = parse(b"By=spiffe://first;Hash=aa,By=spiffe://second;Hash=bb").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].by, vec!["spiffe://first".to_string()]);
        assert_eq!(e[0].hash.as_deref(), Some("aa"));
        assert_eq!(e[1].by, vec!["spiffe://second".to_string()]);
        assert_eq!(e[1].hash.as_deref(), Some("bb"));
    }

    #[test]
    fn semicolon_and_comma_inside_quoted_subject_do_not_split() {
        let e = parse(b"Subject=\"CN=a,O=b;c\";URI=spiffe://x").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].subject.as_deref(), Some("CN=a,O=b;c"));
        assert_eq!(e[0].uri, vec!["spiffe://x".to_string()]);
    }

    #[test]
    fn escaped_quote_and_backslash_inside_quotes_are_unescaped() {
        let e = parse(br#"Subject="CN=say \"hi\", O=a\\b""#).unwrap();
        assert_eq!(e[0].subject.as_deref(), Some(r#"CN=say "hi", O=a\b"#));
    }

    #[test]
    fn other_backslash_escapes_are_kept_verbatim() {
        let e = parse(br#"Subject="CN=a\,b""#).unwrap();
        assert_eq!(e[0].subject.as_deref(), Some(r"CN=a\,b"));
    }

    #[test]
    fn escaped_quote_cannot_inject_a_cert_key() {
        let e = parse(br#"Subject="x\";Cert=-----BEGIN";Hash=aa"#).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].subject.as_deref(), Some(r#"x";Cert=-----BEGIN"#));
        assert_eq!(e[0].cert, None);
        assert_eq!(e[0].hash.as_deref(), Some("aa"));
    }

    #[test]
    fn duplicate_cert_in_one_element_is_an_error() {
        assert_eq!(parse(b"Cert=abc;Cert=def"), Err(XfccError::DuplicateKey("Cert".into())));
        assert_eq!(parse(b"Subject=\"a\";subject=\"b\""), Err(XfccError::DuplicateKey("Subject".into())));
    }

    #[test]
    fn same_single_key_in_two_elements_is_allowed() {
        let e = parse(b"Cert=abc,Cert=def").unwrap();
        assert_eq!(e[0].cert.as_deref(), Some("abc"));
        assert_eq!(e[1].cert.as_deref(), Some("def"));
    }

    #[test]
    fn repeatable_keys_collect_all_values() {
        let e = parse(b"By=a;By=b;URI=u1;URI=u2;DNS=d1").unwrap();
        assert_eq!(e[0].by, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(e[0].uri, vec!["u1".to_string(), "u2".to_string()]);
        assert_eq!(e[0].dns, vec!["d1".to_string()]);
    }

    #[test]
    fn unbalanced_quotes_are_an_error() {
        assert_eq!(parse(b"Subject=\"CN=a;Hash=aa"), Err(XfccError::UnbalancedQuote));
        assert_eq!(parse(br#"Subject="CN=a\""#), Err(XfccError::UnbalancedQuote));
    }

    #[test]
    fn text_after_closing_quote_is_an_error() {
        assert_eq!(parse(b"Subject=\"CN=a\"x;Hash=aa"), Err(XfccError::TextAfterClosingQuote));
    }

    #[test]
    fn quote_inside_unquoted_value_is_an_error() {
        assert_eq!(parse(b"By=a\"b\""), Err(XfccError::QuoteInUnquotedValue));
    }

    #[test]
    fn keys_are_case_insensitive() {
        let lower = parse(b"by=a;hash=h;subject=\"s\";uri=u;dns=d;cert=c").unwrap();
        let upper = parse(b"BY=a;HASH=h;SUBJECT=\"s\";URI=u;DNS=d;CERT=c").unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower[0].hash.as_deref(), Some("h"));
        assert_eq!(lower[0].cert.as_deref(), Some("c"));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let e = parse(b"Foo=bar;Hash=aa;X-Other=\"q;,\"").unwrap();
        assert_eq!(e, vec![Element { hash: Some("aa".into()), ..Element::default() }]);
    }

    #[test]
    fn pair_without_equals_is_an_error() {
        assert_eq!(parse(b"Hash=aa;justtext"), Err(XfccError::MissingEquals));
    }

    #[test]
    fn empty_key_is_an_error() {
        assert_eq!(parse(b"=value"), Err(XfccError::InvalidKey));
        assert_eq!(parse(b"\"Hash=aa\""), Err(XfccError::InvalidKey));
    }

    #[test]
    fn empty_element_is_an_error() {
        assert_eq!(parse(b"Hash=a,,Hash=b"), Err(XfccError::EmptyElement));
        assert_eq!(parse(b"Hash=a,"), Err(XfccError::EmptyElement));
        assert_eq!(parse(b",Hash=a"), Err(XfccError::EmptyElement));
        assert_eq!(parse(b"Hash=a, ,Hash=b"), Err(XfccError::EmptyElement));
    }

    #[test]
    fn empty_pair_is_an_error() {
        assert_eq!(parse(b"Hash=a;;By=b"), Err(XfccError::EmptyPair));
        assert_eq!(parse(b"Hash=a;"), Err(XfccError::EmptyPair));
    }

    #[test]
    fn empty_value_is_an_error() {
        assert_eq!(parse(b""), Err(XfccError::Empty));
        assert_eq!(parse(b"  \t "), Err(XfccError::Empty));
    }

    #[test]
    fn whitespace_around_pairs_is_trimmed() {
        let e = parse(b" Hash=aa ; By=b , Hash=cc ").unwrap();
        assert_eq!(e[0].hash.as_deref(), Some("aa"));
        assert_eq!(e[0].by, vec!["b".to_string()]);
        assert_eq!(e[1].hash.as_deref(), Some("cc"));
    }

    #[test]
    fn non_utf8_is_an_error() {
        assert_eq!(parse(b"Subject=\"\xff\""), Err(XfccError::NotUtf8));
    }

    #[test]
    fn cert_and_chain_are_url_decoded() {
        let e = parse(
            b"Hash=aa;Cert=\"-----BEGIN%20CERTIFICATE-----%0AMII+Cg%3D%3D%0A-----END%20CERTIFICATE-----%0A\";Chain=a%2Cb%3Bc",
        )
        .unwrap();
        assert_eq!(e[0].cert.as_deref(), Some("-----BEGIN CERTIFICATE-----\nMII+Cg==\n-----END CERTIFICATE-----\n"));
        assert_eq!(e[0].chain.as_deref(), Some("a,b;c"));
    }

    #[test]
    fn invalid_percent_escape_in_cert_is_an_error() {
        assert_eq!(parse(b"Cert=abc%2"), Err(XfccError::InvalidPercentEncoding("Cert".into())));
        assert_eq!(parse(b"Chain=%GG"), Err(XfccError::InvalidPercentEncoding("Chain".into())));
        assert_eq!(parse(b"Cert=%FF"), Err(XfccError::DecodedNotUtf8("Cert".into())));
    }

    #[test]
    fn hundred_kilobyte_values_finish_in_linear_time_without_panic() {
        let start = std::time::Instant::now();
        let n = 100 * 1024;
        let long_subject = format!("Subject=\"{}\"", "a;,\\\"".repeat(n / 5));
        assert_eq!(parse(long_subject.as_bytes()).unwrap().len(), 1);
        let many_pairs = "By=x;".repeat(n / 5) + "Hash=h";
        assert_eq!(parse(many_pairs.as_bytes()).unwrap()[0].by.len(), n / 5);
        let many_elements = "Hash=h,".repeat(n / 7) + "Hash=h";
        assert_eq!(parse(many_elements.as_bytes()).unwrap().len(), n / 7 + 1);
        let unbalanced = "\"".repeat(n - 1);
        assert_eq!(parse(unbalanced.as_bytes()), Err(XfccError::UnbalancedQuote));
        let backslashes = format!("Subject=\"{}", "\\".repeat(n));
        assert_eq!(parse(backslashes.as_bytes()), Err(XfccError::UnbalancedQuote));
        let separators = ";".repeat(n);
        assert_eq!(parse(separators.as_bytes()), Err(XfccError::EmptyPair));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
