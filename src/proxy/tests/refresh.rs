//! The registry: refresh, sliced loads, buckets and what a lookup reads.

use super::*;

#[test]
fn registry_clients_are_served_after_a_refresh() {
    let w = registry_worker("");
    let fake = Fake::new();
    assert_eq!(authenticate(&w, &fake, "a"), Some(401), "nothing loaded yet");
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("registry"));
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    let call = fake.calls.borrow()[0].clone();
    assert_eq!(
        (call.cluster.as_str(), call.authority.as_str(), call.path.as_str()),
        ("registry", "registry.local", "/clients")
    );
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "b"), None);
    assert_eq!(fake.counter("oauth_mtls.registry.clients"), 2);
    let stored: usize = fake
        .shared
        .borrow()
        .iter()
        .filter(|(k, _)| k.starts_with("test/registry/v2/4/") || k.ends_with("/meta"))
        .map(|(_, (v, _))| v.len())
        .sum();
    assert_eq!(fake.counter("oauth_mtls.registry.bytes"), stored as i64);
}

#[test]
fn registry_churn_does_not_grow_shared_data() {
    let w = registry_worker("");
    let fake = Fake::new();
    let mut sizes = Vec::new();
    for round in 0..20 {
        let ids: Vec<String> = (round * 10..round * 10 + 10).map(|i| format!("client-{i:04}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        refresh(&w, &fake, Fake::ok(200, &registry_doc(&ids)));
        fake.advance_s(12);
        sizes.push((fake.shared.borrow().len(), fake.counter("oauth_mtls.registry.bytes")));
    }
    // A fixed set of keys (buckets, meta, lease), whatever clients come and go.
    assert!(sizes.iter().all(|(keys, _)| *keys == sizes[0].0), "{sizes:?}");
    assert!(sizes.iter().all(|(_, bytes)| (*bytes - sizes[0].1).abs() < sizes[0].1 / 10), "{sizes:?}");
}

#[test]
fn registry_clients_load_on_every_worker_from_shared_data() {
    let fetching = Fake::new();
    let w1 = registry_worker("");
    refresh(&w1, &fetching, Fake::ok(200, &registry_doc(&["a"])));
    let other = Fake::worker_of(&fetching);
    let w2 = registry_worker("");
    assert_eq!(authenticate(&w2, &other, "a"), None);
}

#[test]
fn only_one_worker_fetches_at_a_time() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    w1.on_tick(&f1);
    w2.on_tick(&f2);
    assert_eq!(f1.calls.borrow().len() + f2.calls.borrow().len(), 1);
}

#[test]
fn removed_clients_disappear_after_the_next_refresh() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "b"), Some(401));
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("unknown client"));
}

#[test]
fn garbage_and_outages_keep_the_last_good_copy_until_max_stale() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, "<html>oops</html>"));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    fake.advance_s(10);
    refresh(&w, &fake, CallResponse::default());
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_failed"), 2);
    fake.advance_s(50);
    assert_eq!(authenticate(&w, &fake, "a"), Some(401));
    let d = fake.reply_json()["error_description"].as_str().unwrap().to_string();
    assert!(d.contains("stale"), "{d}");
}

#[test]
fn etag_is_sent_and_not_modified_refreshes_the_age() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a"])) });
    fake.advance_s(55);
    refresh(&w, &fake, Fake::ok(304, ""));
    assert!(fake.last_call().unwrap().headers.contains(&("if-none-match".into(), "\"v1\"".into())));
    fake.advance_s(30);
    assert_eq!(authenticate(&w, &fake, "a"), None, "a 304 counts as a successful refresh");
}

#[test]
fn inline_clients_work_while_the_registry_is_down() {
    let w = registry_worker(&format!(
        r#", "clients": [{{"client_id": "inline", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "{DN}"}}]"#
    ));
    let fake = Fake::new();
    refresh(&w, &fake, CallResponse::default());
    assert_eq!(authenticate(&w, &fake, "inline"), None);
}

#[test]
fn a_registry_document_is_loaded_over_several_ticks_at_a_faster_tick() {
    let w = registry_worker("");
    w.set_load_budget(ONE_AT_A_TIME);
    let fake = Fake::new();
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    assert!(w.is_loading());
    assert_eq!(fake.tick_period_ms.get(), Some(LOAD_TICK_MS));
    assert!(fake.logs.borrow().iter().any(|l| l.contains("registry: loading a") && l.contains("byte document")));
    let ticks = finish_load(&w, &fake);
    // 3 registrations one a tick, one more to find the end of the document, 4 buckets one a tick, the switch.
    assert_eq!(ticks, 3 + 1 + 4 + 1);
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert_eq!(authenticate(&w, &fake, "c"), None);
    let log = fake.logs.borrow().join("\n");
    assert!(
        log.contains(&format!(
            "registry: loaded 3 clients (0 refused) from {} bytes",
            registry_doc(&["a", "b", "c"]).len()
        )),
        "{log}"
    );
    assert!(log.contains("over 9 ticks"), "{log}");
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_ok"), 1);
    assert_eq!(lease_holder(&fake), None, "the lease is released when the load ends");
}

#[test]
fn the_last_good_registry_serves_until_the_new_document_has_been_read() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    fake.advance_s(12);
    w.set_load_budget(ONE_AT_A_TIME);
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "c", "d", "e"])));
    for _ in 0..4 {
        w.on_tick(&fake);
        assert_eq!(authenticate(&w, &fake, "b"), None, "b is still registered while the document is read");
        assert_eq!(authenticate(&w, &fake, "c"), Some(401), "c is not registered yet");
    }
    finish_load(&w, &fake);
    assert_eq!(authenticate(&w, &fake, "b"), Some(401));
    assert_eq!(authenticate(&w, &fake, "c"), None);
}

#[test]
fn a_document_that_breaks_midway_keeps_the_last_good_registry_untouched() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    let before = registry_buckets(&fake);
    fake.advance_s(12);
    w.set_load_budget(ONE_AT_A_TIME);
    let mut broken = registry_doc(&["x1", "x2", "x3", "x4", "x5"]);
    broken.truncate(broken.len() - 20);
    start_refresh(&w, &fake, Fake::ok(200, &broken));
    let ticks = finish_load(&w, &fake);
    assert!(ticks >= 4, "the break is found only after several slices ({ticks})");
    assert_eq!(registry_buckets(&fake), before, "no bucket was written");
    assert_eq!(fake.counter("oauth_mtls.registry.refresh_failed"), 1);
    assert!(fake
        .logs
        .borrow()
        .iter()
        .any(|l| l.contains("refresh failed, keeping the last good copy: registry document is not JSON")));
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert_eq!(lease_holder(&fake), None);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "x1"), Some(401));
}

#[test]
fn no_refresh_starts_while_a_load_is_in_progress() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    w1.set_load_budget(ONE_AT_A_TIME);
    start_refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    for _ in 0..3 {
        f1.advance_s(30);
        f2.advance_s(30);
        w1.on_tick(&f1);
        w2.on_tick(&f2);
    }
    assert_eq!(f1.calls.borrow().len() + f2.calls.borrow().len(), 1, "nobody fetched during the load");
    finish_load(&w1, &f1);
    f2.advance_s(12);
    w2.on_tick(&f2);
    assert_eq!(f2.calls.borrow().len(), 1, "the next refresh is due after the load");
}

#[test]
fn a_worker_whose_lease_was_taken_over_stops_its_load() {
    let w = registry_worker("");
    w.set_load_budget(ONE_AT_A_TIME);
    let fake = Fake::new();
    start_refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b", "c"])));
    w.on_tick(&fake);
    let other = Lease { expires_ms: fake.now.get() + 60_000, owner: 7 };
    fake.shared_set("test/registry/v2/lease", &other.encode(), None).unwrap();
    w.on_tick(&fake);
    assert!(!w.is_loading());
    assert_eq!(fake.tick_period_ms.get(), Some(TICK_MS));
    assert!(fake.logs.borrow().iter().any(|l| l.contains("another worker took over the refresh lease")));
    assert_eq!(lease_holder(&fake), Some(other), "the other worker's lease is left alone");
}

#[test]
fn a_steady_state_lookup_reads_only_the_registry_metadata() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(authenticate(&w, &fake, "nobody"), Some(401));
    bucket_reads(&fake);
    for _ in 0..3 {
        assert_eq!(authenticate(&w, &fake, "a"), None);
        assert_eq!(authenticate(&w, &fake, "nobody"), Some(401));
    }
    assert_eq!(bucket_reads(&fake), 0);
    authenticate(&w, &fake, "a");
    assert_eq!(fake.reads.borrow().keys().cloned().collect::<Vec<_>>(), vec!["test/registry/v2/meta".to_string()]);
}

#[test]
fn after_a_change_a_lookup_reads_only_its_own_bucket_once() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    authenticate(&w, &fake, "a");
    fake.advance_s(12);
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "c"])));
    bucket_reads(&fake);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 1);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 0);
}

#[test]
fn an_unchanged_document_keeps_every_decoded_client() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a", "b"])));
    authenticate(&w, &fake, "a");
    fake.advance_s(12);
    // Same registrations in another order, without an ETag: every bucket encodes the same, none is written.
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["b", "a"])));
    bucket_reads(&fake);
    assert_eq!(authenticate(&w, &fake, "a"), None);
    assert_eq!(bucket_reads(&fake), 0);
}

#[test]
fn another_workers_cache_follows_a_change() {
    let f1 = Fake::new();
    let f2 = Fake::worker_of(&f1);
    let (w1, w2) = (registry_worker(""), registry_worker(""));
    refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a", "b"])));
    assert_eq!(authenticate(&w2, &f2, "b"), None);
    f1.advance_s(12);
    refresh(&w1, &f1, Fake::ok(200, &registry_doc(&["a"])));
    f2.now.set(f1.now.get());
    assert_eq!(authenticate(&w2, &f2, "b"), Some(401));
}

#[test]
fn a_bucket_of_another_layout_makes_registry_clients_unavailable_not_unknown() {
    let w = registry_worker("");
    let fake = Fake::new();
    refresh(&w, &fake, Fake::ok(200, &registry_doc(&["a"])));
    let key = format!("test/registry/v2/4/{}", registry::bucket_of("a", 4));
    let mut value = fake.shared.borrow()[&key].0.clone();
    value[3] = crate::registry::bucket::LAYOUT + 1;
    fake.shared_set(&key, &value, None).unwrap();
    assert_eq!(authenticate(&w, &fake, "a"), Some(401));
    assert_eq!(fake.counter("oauth_mtls.rejected.registry_unavailable"), 1);
    assert!(fake.reply_json()["error_description"].as_str().unwrap().contains("layout version 3"));
}

#[test]
fn a_new_bucket_count_is_loaded_beside_the_old_buckets_which_are_then_emptied() {
    let fake = Fake::new();
    let four = registry_worker("");
    refresh(&four, &fake, CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a", "b"])) });
    let eight = worker(
        r#"{"unknown_client": "reject", "registry": {"cluster": "registry", "authority": "registry.local", "path": "/clients",
             "refresh_seconds": 10, "max_stale_seconds": 60, "buckets": 8}}"#,
    );
    eight.set_load_budget(ONE_AT_A_TIME);
    fake.advance_s(12);
    start_refresh(
        &eight,
        &fake,
        CallResponse { etag: Some("\"v1\"".into()), ..Fake::ok(200, &registry_doc(&["a", "b"])) },
    );
    assert!(
        !fake.last_call().unwrap().headers.iter().any(|(n, _)| n == "if-none-match"),
        "a 304 would leave 8 buckets unwritten"
    );
    while eight.is_loading() {
        // Both configurations serve throughout: the metadata names the count whose buckets are complete.
        assert_eq!(authenticate(&eight, &fake, "b"), None);
        assert_eq!(authenticate(&four, &fake, "b"), None);
        eight.on_tick(&fake);
    }
    assert_eq!(authenticate(&four, &fake, "b"), None);
    let shared = fake.shared.borrow();
    assert!(shared.iter().filter(|(k, _)| k.starts_with("test/registry/v2/4/")).all(|(_, (v, _))| v.is_empty()));
    assert!(shared.iter().any(|(k, (v, _))| k.starts_with("test/registry/v2/8/") && !v.is_empty()));
}

#[test]
fn registry_bytes_in_shared_data_stay_under_twice_the_document() {
    let w = registry_worker(r#", "jwks_cluster": "jwks""#);
    let fake = Fake::new();
    let ids: Vec<String> = (0..2000).map(|i| format!("bench-{i:06}")).collect();
    let items: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"client_id":"{id}","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN={id},OU=Gen1,O=Example Bank,C=GB"}}"#))
        .collect();
    let doc = format!(r#"{{"clients":[{}]}}"#, items.join(","));
    refresh(&w, &fake, Fake::ok(200, &doc));
    let gauge = fake.counter("oauth_mtls.registry.bytes");
    assert_eq!(fake.counter("oauth_mtls.registry.clients"), 2000);
    assert!(gauge > 0 && gauge < 2 * doc.len() as i64, "{gauge} bytes for a {}-byte document", doc.len());
}
