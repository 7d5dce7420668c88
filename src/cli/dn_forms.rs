//! The forms a distinguished name is copied in by mistake, and the RFC 4514 string that was meant.
//!
//! `tls_client_auth_subject_dn` is an RFC 4514 string: the most specific RDN first (`CN=svc,O=Acme Corp,C=DE`).
//! The two usual copies of a certificate's subject are not: `openssl x509 -subject` prints the most significant
//! RDN first (`C = DE, O = Acme Corp, CN = svc`: it loads, and never matches), and OpenSSL's `-subj` form
//! `/C=DE/O=Acme Corp/CN=svc` is not a DN string at all (the registration does not load).

use crate::cert::dn::{Dn, Rdn};

/// countryName and domainComponent: the least specific attribute types, never first in an RFC 4514 string.
const LEAST_SPECIFIC: [&str; 2] = ["2.5.4.6", "0.9.2342.19200300.100.1.25"];

/// `text` without a leading `subject=` / `issuer=` (as `openssl x509 -subject` prints it).
fn without_label(text: &str) -> &str {
    let trimmed = text.trim();
    ["subject=", "issuer="]
        .iter()
        .find_map(|label| {
            let labelled = trimmed.get(..label.len()).is_some_and(|l| l.eq_ignore_ascii_case(label));
            labelled.then(|| trimmed.get(label.len()..)).flatten()
        })
        .map_or(trimmed, str::trim)
}

/// The RFC 4514 string of a DN in OpenSSL's `/C=DE/O=Acme Corp/CN=svc` form (`\` escapes the next character,
/// `+` joins the attributes of one RDN), or None when `text` is not in that form.
pub fn from_slash_form(text: &str) -> Option<String> {
    let text = without_label(text);
    let rest = text.strip_prefix('/')?;
    let mut rdns: Vec<Vec<(String, String)>> = Vec::new();
    let mut avas: Vec<(String, String)> = Vec::new();
    let (mut current, mut escaped) = (String::new(), false);
    let finish_ava = |current: &mut String, avas: &mut Vec<(String, String)>| -> Option<()> {
        let (kind, value) = current.split_once('=')?;
        avas.push((kind.trim().to_string(), value.to_string()));
        current.clear();
        Some(())
    };
    for c in rest.chars() {
        match (escaped, c) {
            (true, c) => {
                current.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '+') => finish_ava(&mut current, &mut avas)?,
            (false, '/') => {
                finish_ava(&mut current, &mut avas)?;
                rdns.push(std::mem::take(&mut avas));
            }
            (false, c) => current.push(c),
        }
    }
    finish_ava(&mut current, &mut avas)?;
    rdns.push(avas);
    let written: Vec<String> = rdns
        .iter()
        .rev()
        .map(|rdn| rdn.iter().map(|(k, v)| format!("{k}={}", escape(v))).collect::<Vec<_>>().join("+"))
        .collect();
    let rfc4514 = written.join(",");
    // Only a string the filter can read is offered.
    Dn::parse(&rfc4514).ok().map(|_| rfc4514)
}

/// An attribute value escaped for an RFC 4514 string (§2.4).
fn escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn reversed(dn: &Dn) -> Dn {
    Dn { rdns: dn.rdns.iter().rev().cloned().collect() }
}

/// A DN string that loads but lists its RDNs most significant first (it begins with C= or DC=, as `openssl x509
/// -subject` prints): the string in RFC 4514 order. None for any other string.
pub fn from_reversed_form(text: &str) -> Option<String> {
    let dn = Dn::parse(without_label(text)).ok()?;
    let first_written = dn.rdns.last()?.avas.first()?;
    let starts_least_specific = LEAST_SPECIFIC.contains(&first_written.oid.as_str());
    let ends_least_specific =
        dn.rdns.first().and_then(|r| r.avas.first()).is_some_and(|a| LEAST_SPECIFIC.contains(&a.oid.as_str()));
    (dn.rdns.len() >= 2 && starts_least_specific && !ends_least_specific).then(|| reversed(&dn).to_string())
}

/// `lint`'s advice on a registered `tls_client_auth_subject_dn` copied in one of the usual wrong forms.
pub fn lint_hint(text: &str) -> Option<String> {
    if let Some(rfc4514) = from_slash_form(text) {
        return Some(format!(
            "{text:?} is in OpenSSL's /C=../CN=.. form, not an RFC 4514 string, so the registration does not load; \
             in RFC 4514 (most specific RDN first, comma-separated) it is {rfc4514:?}"
        ));
    }
    from_reversed_form(text).map(|rfc4514| {
        format!(
            "{text:?} lists the RDNs most significant first, as `openssl x509 -subject` prints them; RFC 4514 (and \
             the filter) list the most specific first, so it matches no certificate with that subject: use \
             {rfc4514:?} (`openssl x509 -noout -subject -nameopt RFC2253` prints it)"
        )
    })
}

/// What is wrong with a registered DN that does not match the leaf's subject, and the string that would.
pub fn mismatch_hint(registered: &Dn, subject: &Dn) -> String {
    let what = if reversed(registered).matches(subject) {
        "the registered DN has the leaf's RDNs in the reverse order (the order `openssl x509 -subject` prints)"
            .to_string()
    } else if registered.rdns.len() != subject.rdns.len() {
        format!("the registered DN has {} RDN(s), the leaf's subject {}", registered.rdns.len(), subject.rdns.len())
    } else {
        let count = subject.rdns.len();
        let differing = registered.rdns.iter().zip(&subject.rdns).enumerate().rev().find(|(_, (r, s))| !r.matches(s));
        match differing {
            Some((i, (r, s))) => {
                format!("RDN {} of {count} differs: registered {:?}, the leaf's {:?}", count - i, one(r), one(s))
            }
            None => "the names differ".to_string(),
        }
    };
    format!("{what}; the string that matches this certificate is {:?}", subject.to_string())
}

fn one(rdn: &Rdn) -> String {
    Dn { rdns: vec![rdn.clone()] }.to_string()
}

/// Advice on a registered DN the filter refuses to load, when it is in OpenSSL's `/C=../CN=..` form.
pub fn load_hint(text: &str, subject: &Dn) -> Option<String> {
    let rfc4514 = from_slash_form(text)?;
    let matches = Dn::parse(&rfc4514).is_ok_and(|dn| dn.matches(subject));
    Some(if matches {
        format!(
            "{text:?} is in OpenSSL's /C=../CN=.. form; in RFC 4514 it is {rfc4514:?}, which matches this \
             certificate"
        )
    } else {
        format!(
            "{text:?} is in OpenSSL's /C=../CN=.. form; in RFC 4514 it is {rfc4514:?}; the string that matches this \
             certificate is {:?}",
            subject.to_string()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap()
    }

    #[test]
    fn the_slash_form_is_turned_around_and_comma_separated() {
        assert_eq!(from_slash_form("/C=DE/O=Acme Corp/CN=svc").as_deref(), Some("CN=svc,O=Acme Corp,C=DE"));
        assert_eq!(from_slash_form("subject=/C=DE/CN=svc").as_deref(), Some("CN=svc,C=DE"));
        assert_eq!(
            from_slash_form("/C=GB/O=Example Bank/OU=Payments+CN=x").as_deref(),
            Some("OU=Payments+CN=x,O=Example Bank,C=GB")
        );
        assert_eq!(from_slash_form("/C=GB/CN=Widget, Inc. \\/ x").as_deref(), Some("CN=Widget\\, Inc. / x,C=GB"));
        assert_eq!(from_slash_form("CN=svc,O=Acme"), None);
        assert_eq!(from_slash_form("/nonsense"), None);
    }

    #[test]
    fn a_dn_beginning_with_the_country_is_reversed() {
        assert_eq!(from_reversed_form("C = DE, O = Acme Corp, CN = svc").as_deref(), Some("CN=svc,O=Acme Corp,C=DE"));
        assert_eq!(from_reversed_form("subject=C = DE, CN = svc").as_deref(), Some("CN=svc,C=DE"));
        assert_eq!(from_reversed_form("DC=org,DC=example,CN=svc").as_deref(), Some("CN=svc,DC=example,DC=org"));
        for fine in ["CN=svc,O=Acme Corp,C=DE", "CN = svc, O = Acme Corp, C = DE", "C=DE", "O=Acme,CN=svc"] {
            assert_eq!(from_reversed_form(fine), None, "{fine}");
        }
    }

    #[test]
    fn lint_hints_name_the_form_and_the_rfc_4514_string() {
        let hint = lint_hint("C = DE, O = Acme Corp, CN = svc").unwrap();
        assert!(hint.contains("as `openssl x509 -subject` prints them"), "{hint}");
        assert!(hint.contains("use \"CN=svc,O=Acme Corp,C=DE\""), "{hint}");
        let hint = lint_hint("/C=DE/O=Acme Corp/CN=svc").unwrap();
        assert!(hint.contains("does not load; in RFC 4514 (most specific RDN first, comma-separated) it is \"CN=svc,O=Acme Corp,C=DE\""), "{hint}");
        assert_eq!(lint_hint("CN=svc,O=Acme Corp,C=DE"), None);
    }

    #[test]
    fn a_mismatch_says_what_differs_and_what_would_match() {
        let subject = dn("CN=svc,O=Acme Corp,C=DE");
        let hint = mismatch_hint(&dn("C=DE,O=Acme Corp,CN=svc"), &subject);
        assert_eq!(
            hint,
            "the registered DN has the leaf's RDNs in the reverse order (the order `openssl x509 -subject` prints); \
             the string that matches this certificate is \"CN=svc,O=Acme Corp,C=DE\""
        );
        assert!(mismatch_hint(&dn("CN=svc,C=DE"), &subject)
            .starts_with("the registered DN has 2 RDN(s), the leaf's subject 3;"));
        let hint = mismatch_hint(&dn("CN=svc,O=Acme Inc,C=DE"), &subject);
        assert!(
            hint.starts_with("RDN 2 of 3 differs: registered \"O=Acme Inc\", the leaf's \"O=Acme Corp\";"),
            "{hint}"
        );
    }

    #[test]
    fn a_slash_form_registration_is_explained_against_the_certificate() {
        let subject = dn("CN=svc,O=Acme Corp,C=DE");
        let hint = load_hint("/C=DE/O=Acme Corp/CN=svc", &subject).unwrap();
        assert!(hint.ends_with("it is \"CN=svc,O=Acme Corp,C=DE\", which matches this certificate"), "{hint}");
        let hint = load_hint("/C=DE/CN=other", &subject).unwrap();
        assert!(hint.ends_with("the string that matches this certificate is \"CN=svc,O=Acme Corp,C=DE\""), "{hint}");
        assert_eq!(load_hint("CN=svc,,", &subject), None);
    }
}
