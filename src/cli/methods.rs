//! `token_endpoint_auth_method` values: those of IANA's OAuth Token Endpoint Authentication Methods registry,
//! and the advice `lint` and `check` give on any other value. The filter treats every value but the two
//! mutual-TLS methods as "not ours" and passes the client's requests unannotated, so a typo such as
//! `tls_clientauth` silently turns certificate authentication off for that client.

use crate::oauth::registration::{SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};

/// The registered methods (RFC 7591 §2, RFC 8705 §2.1 and §2.2, OpenID Connect Core §9).
pub const REGISTERED: [&str; 7] = [
    "none",
    "client_secret_post",
    "client_secret_basic",
    "client_secret_jwt",
    "private_key_jwt",
    TLS_CLIENT_AUTH,
    SELF_SIGNED_TLS_CLIENT_AUTH,
];

const MTLS: [&str; 2] = [TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH];

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            let deletion = row.get(j + 1).copied().unwrap_or(usize::MAX).saturating_add(1);
            let insertion = row.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            previous = row.get(j + 1).copied().unwrap_or(0);
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = substitution.min(deletion).min(insertion);
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

fn nearest<'a>(value: &str, among: &[&'a str]) -> Option<(&'a str, usize)> {
    let normalized = value.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    among.iter().map(|m| (*m, distance(&normalized, m))).min_by_key(|(_, d)| *d)
}

/// Advice on a `token_endpoint_auth_method` that is not a registered method; None for a registered one.
pub fn hint(value: &str) -> Option<String> {
    if REGISTERED.contains(&value) {
        return None;
    }
    let (mtls, mtls_distance) = nearest(value, &MTLS)?;
    let (any, any_distance) = nearest(value, &REGISTERED)?;
    let other =
        if any_distance < mtls_distance { format!(" (the nearest registered method is {any})") } else { String::new() };
    Some(format!(
        "{value:?} is not a method of IANA's OAuth Token Endpoint Authentication Methods registry, so the filter \
         treats it as a method that is not mutual TLS and passes this client's requests unannotated; the nearest \
         mTLS method is {mtls}{other}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_methods_get_no_advice() {
        for m in REGISTERED {
            assert_eq!(hint(m), None, "{m}");
        }
    }

    #[test]
    fn a_typo_of_an_mtls_method_is_named_with_the_method_meant() {
        for typo in ["tls_client_auth ", "tls_clientauth", "TLS_CLIENT_AUTH", "tls-client-auth"] {
            let advice = hint(typo).unwrap();
            assert!(advice.ends_with("the nearest mTLS method is tls_client_auth"), "{typo}: {advice}");
            assert!(advice.contains("passes this client's requests unannotated"), "{advice}");
        }
        assert!(hint("self_signed_tls_clientauth").unwrap().ends_with("is self_signed_tls_client_auth"));
    }

    #[test]
    fn a_typo_of_another_method_names_that_one_too() {
        let advice = hint("client_secret_basc").unwrap();
        assert!(advice.ends_with("(the nearest registered method is client_secret_basic)"), "{advice}");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("tls_client_auth", "tls_client_auth"), 0);
        assert_eq!(distance("tls_clientauth", "tls_client_auth"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
