//! What the chart says, decided from the results and independent of drawing: titles, bars and their labels.

use crate::results::{Goal, Meta, Results, Variant};

/// How a bar's note is emphasized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// A plain difference to A.
    Plain,
    /// B − A: what any proxy-wasm filter costs, the floor of the filter's cost.
    Floor,
    /// C − A: what the filter costs, the number to make small; also a goal that was met.
    Cost,
    /// A goal that was not met.
    Missed,
}

/// One variant's bar in a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub letter: String,
    /// The bar's length; `None` draws "no data" instead.
    pub value: Option<f64>,
    /// Printed at the end of the bar.
    pub label: String,
    /// Printed under the label.
    pub note: Option<(String, Tone)>,
    /// A tick across the bar (p50 on the latency bars).
    pub tick: Option<f64>,
}

/// One panel: horizontal bars, one per variant, top to bottom in letter order.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub subtitle: String,
    pub axis: String,
    /// A's value, drawn as a dashed line across the panel.
    pub reference: Option<f64>,
    pub bars: Vec<Bar>,
}

/// The whole figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub machine: String,
    /// Per variant: its letter and its name.
    pub rows: Vec<(String, String)>,
    pub cpu: Panel,
    pub latency: Panel,
    /// The second row, when API requests, memory per worker or cold starts ran: one panel each, its bars
    /// labelled by their `letter`.
    pub traffic: Vec<Panel>,
    pub footnotes: Vec<String>,
}

pub const TITLE: &str = "make bench: what RFC 8705 client authentication costs Envoy (oauth-mtls-filter)";

impl Figure {
    pub fn of(results: &Results) -> Figure {
        Figure {
            title: TITLE.to_string(),
            machine: machine_line(&results.meta),
            rows: results.token_variants().map(|v| (v.letter.clone(), v.name.clone())).collect(),
            cpu: cpu_panel(results),
            latency: latency_panel(results),
            traffic: [api_panel(results), memory_panel(results), cold_start_panel(results)]
                .into_iter()
                .flatten()
                .collect(),
            footnotes: footnotes(results),
        }
    }
}

fn at_rate(meta: &Meta) -> String {
    match meta.rate {
        Some(rate) => format!("at {} req/s", thousands(rate)),
        None => "at the fixed rate".to_string(),
    }
}

/// Server CPU per request at the fixed rate, with the floor B − A and the filter's cost C − A called out.
pub fn cpu_panel(results: &Results) -> Panel {
    let a = results.variant("A").and_then(|a| a.cpu_us);
    let ran = |letter| results.variant(letter).is_some();
    let mut subtitle = Vec::new();
    if a.is_some() && ran("C") {
        subtitle.push("C − A: what the filter costs");
    }
    if a.is_some() && ran("B") {
        subtitle.push("B − A: what any proxy-wasm filter costs");
    }
    if a.is_some() {
        subtitle.push("dashed: A");
    }
    Panel {
        title: format!("Server CPU per POST /token {}", at_rate(&results.meta)),
        subtitle: subtitle.join(" · "),
        axis: "CPU µs per request (lower is better)".to_string(),
        reference: a,
        bars: timed_token_variants(results).into_iter().map(cpu_bar).collect(),
    }
}

/// The token variants of the CPU and latency panels: those with a timed run when any has one (a variant only
/// counted under callgrind, like R-crl, has no bar there), else all of them, each labelled "no data".
fn timed_token_variants(results: &Results) -> Vec<&Variant> {
    let timed = |v: &&Variant| v.cpu_us.is_some() || v.p99_ms.is_some();
    let all: Vec<&Variant> = results.token_variants().collect();
    if all.iter().any(timed) {
        all.into_iter().filter(timed).collect()
    } else {
        all
    }
}

fn cpu_bar(v: &Variant) -> Bar {
    let ratio = v.cpu_ratio_vs_a.map(|r| format!(" (×{r:.2})")).unwrap_or_default();
    let note = match (v.letter.as_str(), v.cpu_us_vs_a) {
        ("A", _) | (_, None) => None,
        ("B", Some(d)) => Some((format!("wasm floor B − A: {} µs{ratio}", signed_us(d)), Tone::Floor)),
        ("C", Some(d)) => Some((format!("filter cost C − A: {} µs{ratio}", signed_us(d)), Tone::Cost)),
        (_, Some(d)) => Some((format!("{} µs vs A{ratio}", signed_us(d)), Tone::Plain)),
    };
    Bar {
        letter: v.letter.clone(),
        value: v.cpu_us,
        label: v.cpu_us.map(|c| format!("{} µs", us(c))).unwrap_or_else(|| "no data".to_string()),
        note,
        tick: None,
    }
}

/// p99 latency at the fixed rate, p50 as a tick.
pub fn latency_panel(results: &Results) -> Panel {
    let a = results.variant("A").and_then(|a| a.p99_ms);
    let dashed = if a.is_some() { " · dashed: A" } else { "" };
    Panel {
        title: format!("p99 latency of POST /token {}", at_rate(&results.meta)),
        subtitle: format!("oha, latency-corrected · black tick: p50{dashed}"),
        axis: "latency ms (lower is better)".to_string(),
        reference: a,
        bars: timed_token_variants(results).into_iter().map(latency_bar).collect(),
    }
}

fn latency_bar(v: &Variant) -> Bar {
    let p50 = v.p50_ms.map(|p| format!("p50 {} ms", ms(p)));
    let vs_a = match (v.letter.as_str(), v.p99_ms_vs_a) {
        ("A", _) | (_, None) => None,
        (_, Some(d)) => Some(format!("{} ms vs A", signed_ms(d))),
    };
    let note = match (vs_a, p50) {
        (Some(d), Some(p)) => Some(format!("{d} · {p}")),
        (d, p) => d.or(p),
    };
    Bar {
        letter: v.letter.clone(),
        value: v.p99_ms,
        label: v.p99_ms.map(|p| format!("{} ms", ms(p))).unwrap_or_else(|| "no data".to_string()),
        note: note.map(|n| (n, Tone::Plain)),
        tick: v.p50_ms,
    }
}

/// The API variants in the order they are read: the reference, the empty filter, the passthrough; then the
/// bound-token ones.
const API_VARIANTS: [&str; 6] = ["A-api", "B-api", "G", "H0", "H", "H-ext"];

/// The verdict on a goal as a note's tail and tone: "goal ≤ 15k: met" (green) or "not met" (red).
fn verdict(goal: Option<&Goal>, text: &str) -> (String, Tone) {
    match goal.and_then(|g| g.met) {
        Some(true) => (format!("goal {text}: met"), Tone::Cost),
        Some(false) => (format!("goal {text}: not met"), Tone::Missed),
        None => (String::new(), Tone::Plain),
    }
}

fn goal<'a>(results: &'a Results, id: &str) -> Option<&'a Goal> {
    results.goals.iter().find(|g| g.id == id)
}

/// Instructions per API request (G and H against their references), when any API variant ran.
pub fn api_panel(results: &Results) -> Option<Panel> {
    let ran: Vec<&Variant> = API_VARIANTS.iter().filter_map(|l| results.variant(l)).collect();
    if ran.is_empty() {
        return None;
    }
    let ins = |letter: &str| results.variant(letter).and_then(|v| v.instructions);
    let diff = |a: &str, b: &str| ins(a).zip(ins(b)).map(|(a, b)| a - b);
    let bars = ran
        .iter()
        .map(|v| {
            let note = match v.letter.as_str() {
                "B-api" => {
                    diff("B-api", "A-api").map(|d| (format!("wasm floor B − A: {}", kilo(d, true)), Tone::Floor))
                }
                "G" => diff("G", "B-api").map(|d| {
                    let (goal, tone) = verdict(goal(results, "G"), "≤ +15k");
                    (joined(&format!("G − B: {}", kilo(d, true)), &goal), tone)
                }),
                "H0" => diff("H0", "A-api").map(|d| (format!("jwt_authn: {} vs A", kilo(d, true)), Tone::Plain)),
                "H" => diff("H", "H0").map(|d| {
                    let (goal, tone) = verdict(goal(results, "H"), "≤ +40k");
                    (joined(&format!("H − H0: {}", kilo(d, true)), &goal), tone)
                }),
                "H-ext" => diff("H-ext", "H0").map(|d| {
                    let (goal, tone) = verdict(goal(results, "H-ext"), "H ≤ ¼ of it");
                    (joined(&format!("H-ext − H0: {}", kilo(d, true)), &goal), tone)
                }),
                _ => None,
            };
            Bar {
                letter: v.letter.clone(),
                value: v.instructions.map(|i| i / 1000.0),
                label: v.instructions.map(|i| kilo(i, false)).unwrap_or_else(|| "no data".to_string()),
                note,
                tick: None,
            }
        })
        .collect();
    Some(Panel {
        title: "Instructions per GET /api/ request".to_string(),
        subtitle: "G: passthrough · H: bound-token check · callgrind, server side".to_string(),
        axis: "thousand instructions per request".to_string(),
        reference: None,
        bars,
    })
}

/// The memory each worker adds over Envoy without a filter, when the memory runs ran: heap allocated plus
/// anonymous memory outside the heap (V8, linear memories, stacks), each the slope over --concurrency.
pub fn memory_panel(results: &Results) -> Option<Panel> {
    if results.memory.is_empty() {
        return None;
    }
    let added = |setup: &str| results.memory.get(setup).and_then(|m| m.added_uses_kib_per_worker);
    let bars: Vec<Bar> = ["B", "C", "F"]
        .iter()
        .filter(|s| results.memory.contains_key(**s))
        .map(|setup| {
            let value = added(setup).map(|k| k / 1024.0);
            let note = match *setup {
                "C" => added("B").zip(added("C")).filter(|(b, _)| *b > 0.0).map(|(b, c)| {
                    let (goal, tone) = verdict(goal(results, "memory"), "≤ 1.5× B");
                    (joined(&format!("{:.2}× B", c / b), &goal), tone)
                }),
                "F" => Some(("C with 100,000 registry clients".to_string(), Tone::Plain)),
                _ => None,
            };
            Bar {
                letter: (*setup).to_string(),
                value: value.map(|v| v.max(0.0)),
                label: value.map(|v| format!("{v:+.2} MiB")).unwrap_or_else(|| "no data".to_string()),
                note,
                tick: None,
            }
        })
        .collect();
    let a = results.memory.get("A").and_then(|m| m.uses_kib_per_worker);
    Some(Panel {
        title: "Memory added per worker".to_string(),
        subtitle: match a {
            Some(a) => format!("heap + outside it, over no filter's {:.2} MiB per worker", a / 1024.0),
            None => "heap + outside it, over no filter's".to_string(),
        },
        axis: "MiB per worker".to_string(),
        reference: None,
        bars,
    })
}

/// From a listener update (filesystem LDS) to the first request served by it, when the cold starts ran.
pub fn cold_start_panel(results: &Results) -> Option<Panel> {
    if results.cold_start.is_empty() {
        return None;
    }
    let mut bars = Vec::new();
    for kind in ["config", "module"] {
        for variant in ["B", "C"] {
            let Some(c) = results.cold_start.get(variant).and_then(|k| k.get(kind)) else { continue };
            let vm = (kind == "module").then_some(c.vm_start_ms).flatten().map(|v| format!("VM {} ms/worker", ms(v)));
            let note = if variant == "C" {
                let (goal, tone) = verdict(goal(results, &format!("cold-{kind}")), "≤ 2× B");
                let goal = goal.replacen("goal ", "", 1);
                Some((joined(&vm.unwrap_or_default(), &goal), tone))
            } else {
                vm.map(|v| (v, Tone::Plain))
            };
            bars.push(Bar {
                letter: format!("{variant} {kind}"),
                value: c.served_ms,
                label: c.served_ms.map(|v| format!("{} ms", ms(v))).unwrap_or_else(|| "no data".to_string()),
                note: note.filter(|(n, _)| !n.is_empty()),
                tick: None,
            });
        }
    }
    Some(Panel {
        title: "Cold start: LDS update to first request".to_string(),
        subtitle: "config: new plugin configuration · module: new module, new VMs".to_string(),
        axis: "ms (median)".to_string(),
        reference: None,
        bars,
    })
}

fn joined(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a} · {b}"),
    }
}

/// Instructions in thousands: 212,440 → "212k", 19,544 → "19.5k" (signed: "+19.5k").
pub fn kilo(v: f64, signed: bool) -> String {
    let k = v / 1000.0;
    let s = if k.abs() >= 100.0 { format!("{k:.0}k") } else { format!("{k:.1}k") };
    if signed && v >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// The machine and the run's settings, from `meta`; parts that are absent are left out.
pub fn machine_line(meta: &Meta) -> String {
    let mut parts = Vec::new();
    match (&meta.cpu_model, meta.cpus) {
        (Some(m), Some(n)) => parts.push(format!("{m} ({n} CPUs)")),
        (Some(m), None) => parts.push(m.clone()),
        (None, Some(n)) => parts.push(format!("{n} CPUs")),
        (None, None) => {}
    }
    if let Some(k) = &meta.kernel {
        parts.push(format!("Linux {k}"));
    }
    if let Some(e) = &meta.envoy_version {
        parts.push(format!("Envoy {e}"));
    }
    let mut run = Vec::new();
    if let Some(d) = meta.duration {
        run.push(format!("{} s per run", trim(d)));
    }
    if let Some(r) = meta.reps {
        run.push(format!("{r} repetition{}, medians", if r == 1 { "" } else { "s" }));
    }
    if !run.is_empty() {
        parts.push(run.join(", "));
    }
    match (meta.rate, meta.rate_connections) {
        (Some(r), Some(c)) => parts.push(format!("fixed rate {} req/s over {c} connections", thousands(r))),
        (Some(r), None) => parts.push(format!("fixed rate {} req/s", thousands(r))),
        _ => {}
    }
    if let Some(s) = &meta.started {
        parts.push(format!("started {s}"));
    }
    parts.join(" · ")
}

/// How to read the numbers, and F's registry refresh when it ran.
pub fn footnotes(results: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    if results.variant("A").is_some() && results.variants.len() > 1 {
        notes.push(
            "\"vs A\" and × A are medians of the per-repetition differences and ratios to A (as in results.md), \
             so they can differ from the distance between two bars."
                .to_string(),
        );
    }
    match (results.variant("E").is_some(), results.variant("H-ext").is_some()) {
        (true, true) => notes.push(
            "The CPU of E and H-ext is Envoy's plus the bench-authz process's (both on the server's CPU).".to_string(),
        ),
        (true, false) => {
            notes.push("E's CPU is Envoy's plus the bench-authz process's (both on the server's CPU).".to_string())
        }
        _ => {}
    }
    if let Some(r) = results.variant("F").and_then(|f| f.refresh.as_ref()) {
        let during = match (r.p99_during_ms, r.p99_outside_ms) {
            (Some(d), Some(o)) => {
                format!("; p99 of requests sent during it {} ms vs {} ms outside", ms(d), ms(o))
            }
            _ => String::new(),
        };
        let applied = r.refresh_seconds.map(|s| format!("applied in {s:.2} s")).unwrap_or_default();
        notes.push(format!("F, a full refresh of the registry during a fixed-rate run: {applied}{during}."));
    }
    for later in &results.meta.merged {
        let when = later.started.as_deref().unwrap_or("another time");
        let commit = later.commit.as_deref().map(|c| format!(" on commit {c}")).unwrap_or_default();
        notes.push(format!(
            "{} from a later run ({when}{commit}): see results.md.",
            capitalized(&later.replaced.join(", "))
        ));
    }
    notes.push("Measured on a shared machine: indicative numbers.".to_string());
    notes
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// µs: whole from 100, one decimal from 1, two below.
pub fn us(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn signed_us(v: f64) -> String {
    let s = us(v);
    if v >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// ms: whole from 100, one decimal from 10, two from 0.1, four below.
pub fn ms(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn signed_ms(v: f64) -> String {
    let s = ms(v);
    if v >= 0.0 {
        format!("+{s}")
    } else {
        s
    }
}

/// A whole number with thousands separators: 100000 → "100,000".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// 10.0 → "10", 2.5 → "2.5".
fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::parse;

    fn results(json: &str) -> Results {
        parse(json).unwrap()
    }

    fn note(bar: &Bar) -> Option<(&str, Tone)> {
        bar.note.as_ref().map(|(s, t)| (s.as_str(), *t))
    }

    const ABC: &str = r#"{"meta": {"rate": 2000}, "summary": {"variants": {
        "A": {"name": "no filter", "cpu_us_fixed": 221.0, "cpu_minus_A_us": 0.0, "cpu_ratio_A": 1.0,
              "p50_ms": 0.75, "p99_ms": 2.64, "p99_minus_A_ms": 0.0},
        "B": {"name": "empty proxy-wasm filter", "cpu_us_fixed": 265.5, "cpu_minus_A_us": 51.0,
              "cpu_ratio_A": 1.2376, "p50_ms": 0.84, "p99_ms": 3.76, "p99_minus_A_ms": 1.12},
        "C": {"name": "filter, tls_client_auth (subject DN)", "cpu_us_fixed": 337.5, "cpu_minus_A_us": 123.0,
              "cpu_ratio_A": 1.573, "p50_ms": 1.02, "p99_ms": 28.93, "p99_minus_A_ms": 26.81},
        "D": {"name": "filter, self_signed_tls_client_auth", "cpu_us_fixed": 322.0, "cpu_minus_A_us": 101.0,
              "cpu_ratio_A": 1.457, "p50_ms": 0.99, "p99_ms": 4.49, "p99_minus_A_ms": -0.5}}}}"#;

    #[test]
    fn c_minus_a_is_called_the_filter_cost_and_b_minus_a_the_wasm_floor() {
        let p = cpu_panel(&results(ABC));
        let notes: Vec<_> = p.bars.iter().map(note).collect();
        assert_eq!(
            notes,
            [
                None,
                Some(("wasm floor B − A: +51.0 µs (×1.24)", Tone::Floor)),
                Some(("filter cost C − A: +123 µs (×1.57)", Tone::Cost)),
                Some(("+101 µs vs A (×1.46)", Tone::Plain)),
            ]
        );
    }

    #[test]
    fn a_is_the_dashed_reference_of_both_panels() {
        let r = results(ABC);
        assert_eq!(cpu_panel(&r).reference, Some(221.0));
        assert_eq!(latency_panel(&r).reference, Some(2.64));
    }

    #[test]
    fn without_a_there_is_no_reference_and_no_difference() {
        let r = results(r#"{"summary": {"variants": {"C": {"cpu_us_fixed": 320.0, "p99_ms": 23.1, "p50_ms": 0.97}}}}"#);
        let cpu = cpu_panel(&r);
        assert_eq!((cpu.reference, note(&cpu.bars[0])), (None, None));
        let lat = latency_panel(&r);
        assert_eq!((lat.reference, note(&lat.bars[0])), (None, Some(("p50 0.97 ms", Tone::Plain))));
    }

    #[test]
    fn a_variant_only_counted_under_callgrind_has_no_bar_beside_timed_ones() {
        let r = results(
            r#"{"summary": {"variants": {"C": {"cpu_us_fixed": 320.0, "p99_ms": 23.1},
                "R-crl": {"instructions_per_req": 376258}}}}"#,
        );
        let letters = |p: Panel| p.bars.into_iter().map(|b| b.letter).collect::<Vec<_>>();
        assert_eq!(letters(cpu_panel(&r)), vec!["C"]);
        assert_eq!(letters(latency_panel(&r)), vec!["C"]);
    }

    #[test]
    fn a_null_value_is_a_bar_without_length_labelled_no_data() {
        let r = results(r#"{"summary": {"variants": {"E": {"cpu_us_fixed": null, "p99_ms": null}}}}"#);
        let (cpu, lat) = (cpu_panel(&r), latency_panel(&r));
        assert_eq!((cpu.bars[0].value, cpu.bars[0].label.as_str()), (None, "no data"));
        assert_eq!((lat.bars[0].value, lat.bars[0].label.as_str(), lat.bars[0].tick), (None, "no data", None));
    }

    #[test]
    fn latency_bars_carry_p99_the_difference_to_a_and_p50_as_a_tick() {
        let p = latency_panel(&results(ABC));
        let c = &p.bars[2];
        assert_eq!((c.value, c.tick, c.label.as_str()), (Some(28.93), Some(1.02), "28.9 ms"));
        assert_eq!(note(c), Some(("+26.8 ms vs A · p50 1.02 ms", Tone::Plain)));
        assert_eq!(note(&p.bars[3]), Some(("-0.50 ms vs A · p50 0.99 ms", Tone::Plain)));
    }

    #[test]
    fn subtitles_explain_only_what_is_drawn() {
        let r = results(ABC);
        assert_eq!(
            cpu_panel(&r).subtitle,
            "C − A: what the filter costs · B − A: what any proxy-wasm filter costs · dashed: A"
        );
        assert_eq!(latency_panel(&r).subtitle, "oha, latency-corrected · black tick: p50 · dashed: A");
        let a_and_c = results(r#"{"summary": {"variants": {"A": {"cpu_us_fixed": 1.0}, "C": {}}}}"#);
        assert_eq!(cpu_panel(&a_and_c).subtitle, "C − A: what the filter costs · dashed: A");
        let no_a = results(r#"{"summary": {"variants": {"B": {}, "C": {}}}}"#);
        assert_eq!(cpu_panel(&no_a).subtitle, "");
        assert_eq!(latency_panel(&no_a).subtitle, "oha, latency-corrected · black tick: p50");
    }

    #[test]
    fn the_vs_a_footnote_appears_only_when_a_ran_with_another_variant() {
        assert!(footnotes(&results(ABC)).iter().any(|n| n.starts_with("\"vs A\"")));
        let no_a = results(r#"{"summary": {"variants": {"C": {}}}}"#);
        assert!(!footnotes(&no_a).iter().any(|n| n.starts_with("\"vs A\"")));
        let only_a = results(r#"{"summary": {"variants": {"A": {}}}}"#);
        assert!(!footnotes(&only_a).iter().any(|n| n.starts_with("\"vs A\"")));
    }

    #[test]
    fn panel_titles_name_the_fixed_rate() {
        let r = results(ABC);
        assert_eq!(cpu_panel(&r).title, "Server CPU per POST /token at 2,000 req/s");
        assert_eq!(latency_panel(&r).title, "p99 latency of POST /token at 2,000 req/s");
        let no_rate = results(r#"{"summary": {"variants": {"A": {}}}}"#);
        assert_eq!(latency_panel(&no_rate).title, "p99 latency of POST /token at the fixed rate");
    }

    #[test]
    fn the_machine_line_joins_what_meta_has() {
        let r = results(
            r#"{"meta": {"cpu_model": "AMD EPYC", "cpus": 2, "kernel": "6.18", "envoy_version": "1.40.0",
                "duration": 10.0, "reps": 3, "rate": 2000, "rate_connections": 16,
                "started": "2026-11-28T12:47:22+0000"}, "summary": {"variants": {"A": {}}}}"#,
        );
        assert_eq!(
            machine_line(&r.meta),
            "AMD EPYC (2 CPUs) · Linux 6.18 · Envoy 1.40.0 · 10 s per run, 3 repetitions, medians \
             · fixed rate 2,000 req/s over 16 connections · started 2026-11-28T12:47:22+0000"
        );
        assert_eq!(
            machine_line(&Meta { cpus: Some(4), reps: Some(1), ..Meta::default() }),
            "4 CPUs · 1 repetition, medians"
        );
        assert_eq!(machine_line(&Meta::default()), "");
    }

    #[test]
    fn the_registry_refresh_of_f_is_a_footnote_when_f_ran() {
        let with_f = results(
            r#"{"summary": {"variants": {"F": {"registry": {"refresh_seconds": 0.8153,
                "p99_during_ms": 326.7, "p99_outside_ms": 5.84}}}}}"#,
        );
        assert!(footnotes(&with_f).iter().any(|n| n
            == "F, a full refresh of the registry during a fixed-rate run: applied in 0.82 s; p99 of requests \
                sent during it 327 ms vs 5.84 ms outside."));
        assert!(!footnotes(&results(ABC)).iter().any(|n| n.starts_with("F,")));
    }

    #[test]
    fn a_merged_run_is_a_footnote_saying_what_it_replaced() {
        let merged = results(
            r#"{"meta": {"merged": [{"started": "2026-12-01T09:00:00+0000", "commit": "d5242b5",
                "replaced": ["instructions", "cold start"]}]}, "summary": {"variants": {"A": {}}}}"#,
        );
        assert!(footnotes(&merged).iter().any(|n| {
            n
            == "Instructions, cold start from a later run (2026-12-01T09:00:00+0000 on commit d5242b5): see results.md."
        }));
        assert!(!footnotes(&results(ABC)).iter().any(|n| n.contains("later run")));
    }

    #[test]
    fn the_e_footnote_appears_only_when_e_ran() {
        assert!(!footnotes(&results(ABC)).iter().any(|n| n.starts_with("E's")));
        let with_e = results(r#"{"summary": {"variants": {"E": {}}}}"#);
        assert!(footnotes(&with_e).iter().any(|n| n.starts_with("E's CPU")));
    }

    const TRAFFIC: &str = r#"{"summary": {
        "variants": {
            "A": {"name": "no filter", "cpu_us_fixed": 221.0},
            "A-api": {"name": "no filter", "kind": "api", "ref": "A-api", "instructions_per_req": 172888},
            "B-api": {"name": "empty proxy-wasm filter", "kind": "api", "instructions_per_req": 192872},
            "G": {"name": "filter, passthrough", "kind": "api", "instructions_per_req": 212416},
            "H0": {"name": "jwt_authn alone", "kind": "bound", "instructions_per_req": 683094},
            "H": {"name": "jwt_authn + filter", "kind": "bound", "instructions_per_req": 786438}},
        "memory": {"A": {"uses_kib_per_worker": 2048.0, "added_uses_kib_per_worker": 0.0},
                   "B": {"added_uses_kib_per_worker": 1024.0}, "C": {"added_uses_kib_per_worker": 1280.0}},
        "cold_start": {"B": {"config": {"served_ms": 40.0}, "module": {"served_ms": 60.0, "vm_start_ms": 1.5}},
                       "C": {"config": {"served_ms": 50.0}, "module": {"served_ms": 90.0, "vm_start_ms": 2.25}}},
        "goals": [{"id": "G", "met": false}, {"id": "H", "met": false}, {"id": "memory", "met": true},
                  {"id": "cold-config", "met": true}, {"id": "cold-module", "met": true}]}}"#;

    #[test]
    fn the_top_panels_show_only_token_requests() {
        let f = Figure::of(&results(TRAFFIC));
        assert_eq!(f.rows, [("A".to_string(), "no filter".to_string())]);
        assert_eq!(f.cpu.bars.len(), 1);
    }

    #[test]
    fn api_requests_memory_and_cold_starts_are_a_second_row_of_three_panels() {
        let f = Figure::of(&results(TRAFFIC));
        let titles: Vec<&str> = f.traffic.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Instructions per GET /api/ request",
                "Memory added per worker",
                "Cold start: LDS update to first request"
            ]
        );
        assert!(Figure::of(&results(ABC)).traffic.is_empty());
    }

    #[test]
    fn the_api_panel_says_g_minus_b_and_h_minus_h0_against_their_goals() {
        let p = api_panel(&results(TRAFFIC)).unwrap();
        let letters: Vec<&str> = p.bars.iter().map(|b| b.letter.as_str()).collect();
        assert_eq!(letters, ["A-api", "B-api", "G", "H0", "H"]);
        assert_eq!((p.bars[2].value, p.bars[2].label.as_str()), (Some(212.416), "212k"));
        assert_eq!(note(&p.bars[1]), Some(("wasm floor B − A: +20.0k", Tone::Floor)));
        assert_eq!(note(&p.bars[2]), Some(("G − B: +19.5k · goal ≤ +15k: not met", Tone::Missed)));
        assert_eq!(note(&p.bars[3]), Some(("jwt_authn: +510k vs A", Tone::Plain)));
        assert_eq!(note(&p.bars[4]), Some(("H − H0: +103k · goal ≤ +40k: not met", Tone::Missed)));
    }

    #[test]
    fn the_memory_panel_shows_what_each_worker_adds_and_c_against_b() {
        let p = memory_panel(&results(TRAFFIC)).unwrap();
        let c = &p.bars[1];
        assert_eq!((c.letter.as_str(), c.value, c.label.as_str()), ("C", Some(1.25), "+1.25 MiB"));
        assert_eq!(note(c), Some(("1.25× B · goal ≤ 1.5× B: met", Tone::Cost)));
        assert!(p.subtitle.starts_with("heap + outside it, over no filter's 2.00 MiB per worker"), "{}", p.subtitle);
    }

    #[test]
    fn the_cold_start_panel_has_each_kind_of_update_for_b_and_c() {
        let p = cold_start_panel(&results(TRAFFIC)).unwrap();
        let letters: Vec<&str> = p.bars.iter().map(|b| b.letter.as_str()).collect();
        assert_eq!(letters, ["B config", "C config", "B module", "C module"]);
        assert_eq!(note(&p.bars[1]), Some(("≤ 2× B: met", Tone::Cost)));
        assert_eq!(note(&p.bars[2]), Some(("VM 1.50 ms/worker", Tone::Plain)));
        assert_eq!(note(&p.bars[3]), Some(("VM 2.25 ms/worker · ≤ 2× B: met", Tone::Cost)));
    }

    #[test]
    fn kilo_prints_thousands() {
        assert_eq!(
            (kilo(212_440.0, false), kilo(19_544.0, true), kilo(-600.0, true)),
            ("212k".into(), "+19.5k".into(), "-0.6k".into())
        );
    }

    #[test]
    fn numbers_are_printed_to_a_readable_precision() {
        assert_eq!(
            (us(337.51), us(51.04), us(2.97), us(0.4)),
            ("338".into(), "51.0".into(), "3.0".into(), "0.40".into())
        );
        assert_eq!((ms(0.7512), ms(28.93), ms(326.7)), ("0.75".into(), "28.9".into(), "327".into()));
        assert_eq!((ms(0.0009), ms(0.0)), ("0.0009".into(), "0.00".into()));
        assert_eq!(
            (thousands(2000.0), thousands(100000.0), thousands(999.0)),
            ("2,000".into(), "100,000".into(), "999".into())
        );
    }
}
