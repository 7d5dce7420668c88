//! Self-signed clients whose JWK Set is at a jwks_uri: fetch, rotation, maximum age.

use super::*;

#[test]
fn jwks_uri_is_fetched_on_first_use_and_authenticates() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    assert_eq!(fake.header("x-mtls-auth-method").as_deref(), Some("self_signed_tls_client_auth"));
    // Cached in shared data: the next request needs no fetch.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None);
    assert_eq!(fake.calls.borrow().len(), 1);
}

#[test]
fn jwks_uri_rotation_works_after_min_refresh_without_restart() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    // The client rotates to a new certificate; within min refresh the old set answers.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some(&jwks_doc(SELF_SIGNED_2))), Some(401));
    assert_eq!(fake.calls.borrow().len(), 1, "no refetch within jwks_min_refresh_seconds");
    fake.advance_s(5);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some(&jwks_doc(SELF_SIGNED_2))), None);
    assert_eq!(fake.calls.borrow().len(), 2);
}

#[test]
fn a_failing_jwks_uri_keeps_the_last_good_set() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    fake.advance_s(6);
    // A miss triggers a refetch, which fails: the old set still serves the old certificate.
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, Some("garbage")), Some(401));
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None);
}

#[test]
fn a_key_removed_from_a_jwks_uri_set_stops_authenticating_within_the_maximum_age_though_it_is_used_all_along() {
    let (w, fake) = (jwks_worker(), Fake::new()); // default jwks_max_age_seconds: 300
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    // The client's set drops the leaked certificate; the leaked one keeps being presented every 10 s.
    let mut first_refusal = None;
    for step in 1..=40 {
        fake.advance_s(10);
        if self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_2))).is_some() {
            first_refusal = Some(step * 10);
            break;
        }
    }
    assert_eq!(first_refusal, Some(240), "renewed when due (4/5 of 300 s), and refused from then on");
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_2, None), None, "the new certificate authenticates");
}

#[test]
fn a_jwks_uri_copy_past_its_maximum_age_that_cannot_be_fetched_authenticates_no_one() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, Some(&jwks_doc(SELF_SIGNED_1))), None);
    fake.advance_s(240);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), None, "due: the renewal fails, the copy still serves");
    fake.advance_s(60);
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), Some(401), "expired: fetched again, failed, refused");
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("older than its maximum age"), "{d}");
}

#[test]
fn a_jwks_uri_cache_control_max_age_is_honoured_within_the_configured_bounds() {
    let (w, fake) = (jwks_worker(), Fake::new()); // min refresh 5 s, max age 300 s
                                                  // One request; a fetch it makes is answered with the set and `max-age`. Returns whether it fetched.
    let request = |max_age: u64| {
        token_request(&fake, &[]).peer(SELF_SIGNED_1, false);
        let calls = fake.calls.borrow().len();
        let mut f = RequestFilter::new(w.clone());
        send(&mut f, &fake, &[b"client_id=ss"]);
        let fetched = fake.calls.borrow().len() > calls;
        if fetched {
            let response = CallResponse { max_age_seconds: Some(max_age), ..Fake::ok(200, &jwks_doc(SELF_SIGNED_1)) };
            f.on_call_response(&fake, fake.last_call().unwrap().token, response);
        }
        assert_eq!(fake.reply_status(), None, "authenticated");
        fetched
    };
    assert!(request(20));
    fake.advance_s(15);
    assert!(!request(0), "fresh for 4/5 of its own 20 s");
    fake.advance_s(1);
    assert!(request(1_000_000), "due at 16 s");
    fake.advance_s(239);
    assert!(!request(0));
    fake.advance_s(1);
    assert!(request(0), "a longer max-age is cut to jwks_max_age_seconds (due at 240 s)");
    fake.advance_s(5);
    assert!(request(0), "max-age 0 is raised to jwks_min_refresh_seconds (due at 4 s)");
}

#[test]
fn a_jwks_uri_that_never_answered_says_so() {
    let (w, fake) = (jwks_worker(), Fake::new());
    assert_eq!(self_signed(&w, &fake, SELF_SIGNED_1, None), Some(401));
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("could not be fetched"), "{d}");
}

#[test]
fn a_paused_request_whose_body_never_came_is_logged_as_a_configuration_error() {
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    let f = {
        let mut f = RequestFilter::new(dn_worker());
        assert_eq!(f.on_request_headers(&fake, false), Action::Pause);
        f
    };
    f.on_log(&fake);
    assert!(fake.logs.borrow().iter().any(|l| l.contains("allow_on_headers_stop_iteration")));
}
