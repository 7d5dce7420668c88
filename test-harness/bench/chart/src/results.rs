//! results.json of `make bench`, reduced to what the chart shows; absent and null values are `None`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the chart draws: the run's machine and settings, one row per measured variant in letter order, and,
/// when they ran, the memory per worker, the cold starts and the goals with their verdicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub meta: Meta,
    pub variants: Vec<Variant>,
    /// By setup (A, B, C, F).
    pub memory: BTreeMap<String, Memory>,
    /// By variant (B, C), then by kind of update (`config`, `module`).
    pub cold_start: BTreeMap<String, BTreeMap<String, Cold>>,
    pub goals: Vec<Goal>,
}

/// One setup's memory per worker (`summary.memory.<setup>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Memory {
    pub name: Option<String>,
    /// What a worker uses (heap allocated + anonymous memory outside the heap), and what that adds over A's.
    pub uses_kib_per_worker: Option<f64>,
    pub added_uses_kib_per_worker: Option<f64>,
}

/// One kind of listener update for one variant (`summary.cold_start.<variant>.<kind>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Cold {
    pub served_ms: Option<f64>,
    pub vm_start_ms: Option<f64>,
}

/// A goal and whether the run met it (`summary.goals[]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Goal {
    pub id: String,
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// The `meta` object: the machine and the settings of the run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub cpu_model: Option<String>,
    pub cpus: Option<u32>,
    pub kernel: Option<String>,
    pub envoy_version: Option<String>,
    pub duration: Option<f64>,
    pub reps: Option<u32>,
    pub rate: Option<f64>,
    pub rate_connections: Option<u32>,
    pub started: Option<String>,
    /// Later runs whose figures replaced some of this run's (`bench.py --merge`).
    pub merged: Vec<Merged>,
}

/// A later run merged into the results (`meta.merged[]`): when it ran, on which commit, and what it replaced.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Merged {
    pub started: Option<String>,
    pub commit: Option<String>,
    pub replaced: Vec<String>,
}

/// One variant's medians (`summary.variants.<letter>`); the `*_vs_a` values exist only when A ran too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variant {
    pub letter: String,
    pub name: String,
    /// What its requests are: `token` (also when absent), `api` or `bound`.
    pub kind: String,
    pub instructions: Option<f64>,
    /// Instructions per request minus those of `reference`, the same requests without what this variant adds.
    pub instructions_vs_ref: Option<f64>,
    pub reference: Option<String>,
    /// Server CPU µs per request at the fixed rate.
    pub cpu_us: Option<f64>,
    /// Median over repetitions of (this variant's CPU µs − A's) in the same repetition.
    pub cpu_us_vs_a: Option<f64>,
    /// Median over repetitions of this variant's CPU / A's.
    pub cpu_ratio_vs_a: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p99_ms_vs_a: Option<f64>,
    pub refresh: Option<Refresh>,
}

/// F only: a full registry refresh during a fixed-rate run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Refresh {
    pub refresh_seconds: Option<f64>,
    pub p99_during_ms: Option<f64>,
    pub p99_outside_ms: Option<f64>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    meta: Meta,
    summary: Summary,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    variants: BTreeMap<String, Row>,
    #[serde(default)]
    memory: BTreeMap<String, Memory>,
    #[serde(default)]
    cold_start: BTreeMap<String, BTreeMap<String, Cold>>,
    #[serde(default)]
    goals: Vec<Goal>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Row {
    name: Option<String>,
    kind: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    instructions_per_req: Option<f64>,
    instructions_minus_ref: Option<f64>,
    cpu_us_fixed: Option<f64>,
    #[serde(rename = "cpu_minus_A_us")]
    cpu_minus_a_us: Option<f64>,
    #[serde(rename = "cpu_ratio_A")]
    cpu_ratio_a: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    #[serde(rename = "p99_minus_A_ms")]
    p99_minus_a_ms: Option<f64>,
    registry: Option<Refresh>,
}

/// Why results.json could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io { path: PathBuf, source: std::io::Error },
    Json { path: PathBuf, source: serde_json::Error },
    NoVariants { path: PathBuf },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            ReadError::Json { path, source } => {
                write!(f, "{} is not a bench results.json: {source}", path.display())
            }
            ReadError::NoVariants { path } => {
                write!(f, "{} has no variant under summary.variants: nothing to draw", path.display())
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads and parses the results.json at `path` (a file with no variant but memory or cold starts is drawn too).
pub fn read(path: &Path) -> Result<Results, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    let results = parse(&text).map_err(|source| ReadError::Json { path: path.to_path_buf(), source })?;
    if results.variants.is_empty() && results.memory.is_empty() && results.cold_start.is_empty() {
        return Err(ReadError::NoVariants { path: path.to_path_buf() });
    }
    Ok(results)
}

/// Parses the text of a results.json (the `runs` array and unknown fields are ignored).
pub fn parse(text: &str) -> Result<Results, serde_json::Error> {
    let file: File = serde_json::from_str(text)?;
    let Summary { variants, memory, cold_start, goals } = file.summary;
    let variants = variants
        .into_iter()
        .map(|(letter, row)| Variant {
            name: row.name.unwrap_or_default(),
            kind: row.kind.unwrap_or_else(|| "token".to_string()),
            instructions: row.instructions_per_req,
            instructions_vs_ref: row.instructions_minus_ref,
            reference: row.reference,
            cpu_us: row.cpu_us_fixed,
            cpu_us_vs_a: row.cpu_minus_a_us,
            cpu_ratio_vs_a: row.cpu_ratio_a,
            p50_ms: row.p50_ms,
            p99_ms: row.p99_ms,
            p99_ms_vs_a: row.p99_minus_a_ms,
            refresh: row.registry,
            letter,
        })
        .collect();
    Ok(Results { meta: file.meta, variants, memory, cold_start, goals })
}

impl Results {
    /// The variant with this letter, if it ran.
    pub fn variant(&self, letter: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.letter == letter)
    }

    /// The variants measured on token requests (the top panels).
    pub fn token_variants(&self) -> impl Iterator<Item = &Variant> {
        self.variants.iter().filter(|v| v.kind == "token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(r: &Results) -> Vec<&str> {
        r.variants.iter().map(|v| v.letter.as_str()).collect()
    }

    #[test]
    fn variants_come_in_letter_order_whatever_the_json_order() {
        let r = parse(r#"{"summary": {"variants": {"C": {}, "A": {}, "B": {}}}}"#).unwrap();
        assert_eq!(letters(&r), ["A", "B", "C"]);
    }

    #[test]
    fn a_subset_of_variants_gives_only_those_rows() {
        let r = parse(
            r#"{"summary": {"variants": {
                "A": {"name": "no filter", "cpu_us_fixed": 226.0, "p99_ms": 15.5},
                "C": {"name": "filter, tls_client_auth (subject DN)", "cpu_us_fixed": 320.0,
                      "cpu_minus_A_us": 94.0, "cpu_ratio_A": 1.42, "p50_ms": 0.97, "p99_ms": 23.1,
                      "p99_minus_A_ms": 7.2}}}}"#,
        )
        .unwrap();
        assert_eq!(letters(&r), ["A", "C"]);
        assert!(r.variant("B").is_none());
        let c = r.variant("C").unwrap();
        assert_eq!(c.name, "filter, tls_client_auth (subject DN)");
        assert_eq!(
            (c.cpu_us, c.cpu_us_vs_a, c.cpu_ratio_vs_a, c.p50_ms, c.p99_ms, c.p99_ms_vs_a),
            (Some(320.0), Some(94.0), Some(1.42), Some(0.97), Some(23.1), Some(7.2))
        );
    }

    #[test]
    fn null_values_are_none() {
        let r = parse(
            r#"{"summary": {"variants": {"D": {"name": "d", "cpu_us_fixed": null, "p50_ms": null,
                "p99_ms": null, "cpu_minus_A_us": null, "registry": null}}}}"#,
        )
        .unwrap();
        let d = r.variant("D").unwrap();
        assert_eq!((d.cpu_us, d.p50_ms, d.p99_ms, d.cpu_us_vs_a), (None, None, None, None));
        assert!(d.refresh.is_none());
    }

    #[test]
    fn absent_values_are_none_and_a_missing_name_is_empty() {
        let r = parse(r#"{"summary": {"variants": {"B": {}}}}"#).unwrap();
        assert_eq!(
            r.variant("B").unwrap(),
            &Variant { letter: "B".into(), kind: "token".into(), ..Variant::default() }
        );
    }

    #[test]
    fn meta_is_read_and_may_be_absent_or_partial() {
        let r = parse(
            r#"{"meta": {"cpu_model": "AMD EPYC", "cpus": 2, "envoy_version": "1.40.0", "rate": 2000,
                "reps": 3, "duration": 10.0, "started": null},
                "summary": {"variants": {"A": {}}}}"#,
        )
        .unwrap();
        assert_eq!(r.meta.cpu_model.as_deref(), Some("AMD EPYC"));
        assert_eq!((r.meta.cpus, r.meta.reps, r.meta.rate), (Some(2), Some(3), Some(2000.0)));
        assert_eq!((r.meta.kernel.as_ref(), r.meta.started.as_ref()), (None, None));
        let bare = parse(r#"{"summary": {"variants": {"A": {}}}}"#).unwrap();
        assert_eq!(bare.meta, Meta::default());
    }

    #[test]
    fn merged_runs_are_read() {
        let r = parse(
            r#"{"meta": {"merged": [{"started": "2026-12-01T09:00:00+0000", "commit": null,
                "replaced": ["instructions", "cold start"], "wasm_bytes": 790796}]},
                "summary": {"variants": {"A": {}}}}"#,
        )
        .unwrap();
        let replaced = vec!["instructions".to_string(), "cold start".to_string()];
        assert_eq!(
            r.meta.merged,
            vec![Merged { started: Some("2026-12-01T09:00:00+0000".into()), commit: None, replaced }]
        );
    }

    #[test]
    fn the_registry_refresh_of_f_is_read() {
        let r = parse(
            r#"{"summary": {"variants": {"F": {"registry": {"json_bytes": 15100014,
                "refresh_seconds": 0.8, "p99_during_ms": 326.7, "p99_outside_ms": null}}}}}"#,
        )
        .unwrap();
        let refresh = r.variant("F").unwrap().refresh.clone().unwrap();
        assert_eq!(refresh, Refresh { refresh_seconds: Some(0.8), p99_during_ms: Some(326.7), p99_outside_ms: None });
    }

    #[test]
    fn runs_and_unknown_fields_are_ignored() {
        let r = parse(
            r#"{"meta": {"wasm_bytes": 1}, "runs": [{"variant": "A"}],
                "summary": {"reps": [1], "variants": {"A": {"rss_mib": 67.4, "cpu_us_fixed": 221.0}}}}"#,
        )
        .unwrap();
        assert_eq!(r.variant("A").unwrap().cpu_us, Some(221.0));
    }

    #[test]
    fn a_file_without_summary_is_an_error() {
        assert!(parse(r#"{"meta": {}}"#).is_err());
    }

    #[test]
    fn a_file_without_variants_is_an_error_that_says_so() {
        let dir = std::env::temp_dir().join(format!("bench-chart-novariants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        std::fs::write(&path, r#"{"summary": {"variants": {}}}"#).unwrap();
        let err = read(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, ReadError::NoVariants { .. }));
        assert!(err.to_string().contains("no variant under summary.variants"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = read(Path::new("/nonexistent/results.json")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read /nonexistent/results.json:"), "{err}");
    }
}
