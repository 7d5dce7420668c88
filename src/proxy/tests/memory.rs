//! The memory budget (issue 10): floods of distinct maximal inputs stay within it.

use super::*;

#[test]
fn a_flood_of_distinct_large_certificates_stays_within_the_memory_budget_and_the_client_is_still_served() {
    let w = worker(&format!(
        r#"{{"memory_budget_bytes": 1048576, "clients": [{{"client_id": "dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]}}"#
    ));
    let fake = Fake::new();
    for n in 0..2000 {
        token_request(&fake, &[]).peer(&distinct_pem(n, 6000), false);
        send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]);
        assert_eq!(fake.reply_status(), Some(401));
        assert!(w.cached_bytes() <= 1 << 20, "{} bytes after {n} certificates", w.cached_bytes());
    }
    token_request(&fake, &[]).peer(LEAF, true);
    assert_eq!(send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=dn"]), Action::Continue);
    assert_eq!(fake.header("x-mtls-client-id").as_deref(), Some("dn"));
}

#[test]
fn a_certificate_too_large_for_its_part_of_the_budget_is_decoded_again_not_kept() {
    let w = worker(r#"{"memory_budget_bytes": 1048576}"#);
    let fake = Fake::new();
    // 1 MiB budget: certificates get 512 KiB, and no entry may weigh more than 8 KiB.
    token_request(&fake, &[]).peer(&distinct_pem(1, 20_000), false);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=x"]);
    send(&mut RequestFilter::new(w.clone()), &fake, &[b"client_id=x"]);
    assert!(w.cached_bytes() < 1000, "{}", w.cached_bytes());
    let pem_reads = fake.property_reads.borrow().iter().filter(|p| *p == "connection.peer_certificate").count();
    assert_eq!(pem_reads, 2, "read again on the same connection");
}

#[test]
fn a_flood_of_distinct_long_unknown_client_ids_stays_within_the_memory_budget() {
    let w = registry_worker(r#", "memory_budget_bytes": 1048576, "max_body_bytes": 1048576"#);
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    for n in 0..300 {
        // Long enough to be kept (under the 6 KiB an entry may weigh), many enough to fill the budget 4 times.
        let id = format!("{n}{}", "x".repeat(5000));
        assert_eq!(authenticate(&w, &fake, &id), Some(401));
        assert!(w.cached_bytes() <= 1 << 20, "{} bytes after {n} ids", w.cached_bytes());
    }
    let huge = "y".repeat(1_000_000);
    assert_eq!(authenticate(&w, &fake, &huge), Some(401));
    assert!(w.cached_bytes() <= 1 << 20);
    assert_eq!(authenticate(&w, &fake, "a"), None, "the registered client is still served");
}

#[test]
fn the_memory_gauges_are_summed_over_workers() {
    let w1 = dn_worker();
    let fake = Fake::new();
    token_request(&fake, &[]).peer(LEAF, true);
    send(&mut RequestFilter::new(w1.clone()), &fake, &[b"client_id=dn"]);
    w1.report_memory(&fake, Some(3 << 16));
    let w2 = dn_worker();
    w2.report_memory(&fake, Some(2 << 16));
    let cached = i64::try_from(w1.cached_bytes()).unwrap();
    assert!(cached > 0);
    assert_eq!(fake.counter("oauth_mtls.memory.cached_bytes"), cached);
    assert_eq!(fake.counter("oauth_mtls.memory.vm_bytes"), 5 << 16);
    w1.report_memory(&fake, Some(4 << 16));
    assert_eq!(fake.counter("oauth_mtls.memory.vm_bytes"), 6 << 16, "a worker adds its change, not its value");
}
