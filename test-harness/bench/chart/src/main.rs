//! `bench-chart <results.json> <chart.png>`: the chart of `make bench`, drawn with plotters.
//!
//! Two panels over the token-request variants that ran (A..F, any subset): server CPU µs per request at the
//! fixed rate, with the filter's cost C − A and the proxy-wasm floor B − A called out, and p99 latency at that
//! rate (p50 as a tick); A is the dashed reference of both. Under them, when they ran, a second row: instructions
//! per API request (A-api, B-api, G; H0, H, H-ext) with G − B and H − H0 against their goals, the RSS each worker
//! adds over Envoy without a filter (B, C, F), and the cold start from a listener update to its first request
//! (B and C, a new configuration or a new module), each goal's verdict in its bar's note. Text is drawn with a TrueType font read at run time:
//! `$BENCH_CHART_FONT`, else /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf (Debian's fonts-dejavu-core).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod figure;
mod font;
mod render;
mod results;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: bench-chart <results.json> <chart.png>";

/// Why no chart was written.
#[derive(Debug)]
enum Failure {
    Usage,
    Read(results::ReadError),
    Font(font::FontError),
    Draw(render::DrawError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage => f.write_str(USAGE),
            Failure::Read(e) => e.fmt(f),
            Failure::Font(e) => e.fmt(f),
            Failure::Draw(e) => e.fmt(f),
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let [input, output] = args else {
        return Err(Failure::Usage);
    };
    let results = results::read(&PathBuf::from(input)).map_err(Failure::Read)?;
    font::load(&font::regular_path()).map_err(Failure::Font)?;
    render::draw(&figure::Figure::of(&results), &PathBuf::from(output)).map_err(Failure::Draw)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bench-chart: {e}");
            ExitCode::FAILURE
        }
    }
}
