//! Drawing a `Figure` with plotters: a PNG through the bitmap backend, text in the registered font.

use std::fmt;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::figure::{Bar, Figure, Panel, Tone};
use crate::font::FAMILY;

/// The PNG's size in pixels (taller by TRAFFIC when the second row is drawn).
pub const WIDTH: u32 = 1400;
pub const HEIGHT: u32 = 760;
/// The second row: API requests, memory per worker, cold start.
pub const TRAFFIC: u32 = 330;
/// The second row's label column (each bar's letter) in each of its panels.
const TRAFFIC_LABELS: u32 = 84;

/// Title and machine line.
const HEADER: u32 = 76;
const FOOTNOTE_LINE: u32 = 18;
/// Where the latency panel starts; left of it the row labels and the CPU panel.
const SPLIT: u32 = 880;
/// The row labels' column (letter and name of each variant).
const ROW_LABELS: u32 = 290;
/// Pixels between the end of a bar and its label, and kept free after the label.
const LABEL_GAP: i32 = 8;
const LABEL_END: f64 = 6.0;
const PANEL_TOP: u32 = 56;
const PANEL_RIGHT: u32 = 24;
const X_AXIS: u32 = 50;

const INK: RGBColor = RGBColor(33, 33, 33);
const MUTED: RGBColor = RGBColor(105, 105, 105);
const GRID: RGBColor = RGBColor(228, 228, 228);
const FLOOR: RGBColor = RGBColor(70, 100, 140);
const COST: RGBColor = RGBColor(20, 110, 70);
const MISSED: RGBColor = RGBColor(185, 40, 40);

/// Why the PNG could not be drawn or written.
#[derive(Debug)]
pub struct DrawError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for DrawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot draw {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for DrawError {}

/// The figure's height: HEIGHT for the token-request panels, TRAFFIC more for a second row (only that row, under
/// the header and above the footnotes, when no token request was measured).
pub fn height(figure: &Figure) -> u32 {
    match (figure.cpu.bars.is_empty(), figure.traffic.is_empty()) {
        (false, true) | (true, true) => HEIGHT,
        (false, false) => HEIGHT + TRAFFIC,
        (true, false) => HEADER + TRAFFIC + footer(figure),
    }
}

/// The footnotes' height.
fn footer(figure: &Figure) -> u32 {
    14 + FOOTNOTE_LINE * u32::try_from(figure.footnotes.len()).unwrap_or(0)
}

/// Draws `figure` into a WIDTH×`height` PNG at `path` (the font must be registered: `font::load`).
pub fn draw(figure: &Figure, path: &Path) -> Result<(), DrawError> {
    let fail = |message: String| DrawError { path: path.to_path_buf(), message };
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        return Err(fail("the chart is a PNG: its file name must end in .png".to_string()));
    }
    let root = BitMapBackend::new(path, (WIDTH, height(figure))).into_drawing_area();
    paint(&root, figure).map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// A variant's bar colour: the references (A, H0) grey, B the empty wasm filter, the ext_authz alternatives (E,
/// H-ext) orange, the filter (C, D, F, G, H) green; "A-api", "C module" as their first letter.
pub fn colour(letter: &str) -> RGBColor {
    let key = letter.split([' ', '-']).next().unwrap_or(letter);
    match (key, letter) {
        (_, "H-ext") | ("E", _) => RGBColor(225, 120, 60),
        ("A", _) | ("H0", _) => RGBColor(160, 160, 160),
        ("B", _) => RGBColor(140, 165, 195),
        ("C" | "D" | "F" | "G" | "H", _) => RGBColor(60, 160, 110),
        _ => RGBColor(120, 120, 120),
    }
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&INK)
}

fn bold(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size, FontStyle::Bold).into_font()).color(&INK)
}

fn left(style: TextStyle<'static>) -> TextStyle<'static> {
    style.pos(Pos::new(HPos::Left, VPos::Center))
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn paint<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figure: &Figure) -> Drawn<DB> {
    root.fill(&WHITE)?;
    root.draw_text(&figure.title, &left(bold(22.0)), (20, 22))?;
    root.draw_text(&figure.machine, &left(font(14.0).color(&MUTED)), (20, 52))?;

    let footer = footer(figure);
    let total = height(figure);
    let (_, below_header) = root.split_vertically(HEADER);
    let (body, _) = below_header.split_vertically(total.saturating_sub(HEADER + footer));
    let top_shown = !figure.cpu.bars.is_empty() || figure.traffic.is_empty();
    let top_height = match (top_shown, figure.traffic.is_empty()) {
        (true, true) => total,
        (true, false) => total.saturating_sub(TRAFFIC),
        (false, _) => HEADER + footer,
    };
    let (top, bottom) = body.split_vertically(top_height.saturating_sub(HEADER + footer));

    if top_shown {
        let (cpu_area, latency_area) = top.split_horizontally(SPLIT);
        let rows = panel(root, &cpu_area, &figure.cpu, ROW_LABELS)?;
        panel(root, &latency_area, &figure.latency, 24)?;

        let name_width = ROW_LABELS.saturating_sub(62);
        for ((letter, name), y) in figure.rows.iter().zip(rows) {
            root.draw_text(letter, &left(bold(24.0)), (22, y))?;
            let style = left(font(15.0));
            let lines = wrap(name, name_width, |s| root.estimate_text_size(s, &style).map_or(0, |(w, _)| w));
            let count = i32::try_from(lines.len()).unwrap_or(1);
            for (i, line) in (0..).zip(&lines) {
                root.draw_text(line, &style, (52, y + 19 * i - 19 * (count - 1) / 2))?;
            }
        }
    }

    if !figure.traffic.is_empty() {
        let (x0, y0) = bottom.get_base_pixel();
        let rule = vec![(x0 + 20, y0 + 8), (x0 + WIDTH as i32 - 20, y0 + 8)];
        root.draw(&PathElement::new(rule, GRID.stroke_width(2)))?;
        for (area, p) in bottom.split_evenly((1, figure.traffic.len())).iter().zip(&figure.traffic) {
            let centres = panel(root, area, p, TRAFFIC_LABELS)?;
            let (ax, _) = area.get_base_pixel();
            for (bar, y) in p.bars.iter().zip(centres) {
                root.draw_text(&bar.letter, &left(bold(14.0)), (ax + 14, y))?;
            }
        }
    }

    let mut y = i32::try_from(total.saturating_sub(footer) + 10).unwrap_or(0);
    for note in &figure.footnotes {
        root.draw_text(note, &left(font(13.0).color(&MUTED)), (20, y + 8))?;
        y += FOOTNOTE_LINE as i32;
    }
    Ok(())
}

/// Draws one panel in `area` and returns the pixel row (y) of each bar's centre.
fn panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    label_area: u32,
) -> Result<Vec<i32>, DrawingAreaErrorKind<DB::ErrorType>> {
    let n = panel.bars.len().max(1) as f64;
    let plot_width = f64::from(area.dim_in_pixel().0.saturating_sub(label_area + PANEL_RIGHT)).max(1.0);
    let x_max =
        x_max(panel, plot_width, |text, style| root.estimate_text_size(text, style).map_or(0.0, |(w, _)| f64::from(w)));

    let mut chart = ChartBuilder::on(area)
        .margin_top(PANEL_TOP)
        .margin_right(PANEL_RIGHT)
        .x_label_area_size(X_AXIS)
        .y_label_area_size(label_area)
        .build_cartesian_2d(0.0..x_max, -0.5..(n - 0.5))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(6)
        .x_max_light_lines(0)
        .bold_line_style(GRID)
        .axis_style(MUTED)
        .x_label_formatter(&|v| axis_number(*v, x_max))
        .label_style(font(13.0).color(&MUTED))
        .x_desc(panel.axis.as_str())
        .axis_desc_style(font(14.0))
        .draw()?;

    let (xs, ys) = chart.plotting_area().get_pixel_range();
    root.draw_text(&panel.title, &left(bold(17.0)), (xs.start, ys.start - 38))?;
    root.draw_text(&panel.subtitle, &left(font(13.0).color(&MUTED)), (xs.start, ys.start - 16))?;

    let row_pixels = f64::from(ys.end - ys.start) / n;
    let half = 0.30_f64.min(26.0 / row_pixels.max(1.0));
    let row = |i: i32| n - 1.0 - f64::from(i);
    for (i, bar) in (0..).zip(&panel.bars) {
        let y = row(i);
        if let Some(v) = bar.value {
            chart.draw_series([Rectangle::new([(0.0, y - half), (v, y + half)], colour(&bar.letter).filled())])?;
        }
        if let Some(t) = bar.tick {
            let tick = half * 1.2;
            chart.draw_series([PathElement::new(vec![(t, y - tick), (t, y + tick)], INK.stroke_width(3))])?;
        }
    }
    if let Some(a) = panel.reference {
        chart.plotting_area().draw(&DashedPathElement::new(
            vec![(a, -0.5), (a, n - 0.5)],
            6,
            4,
            INK.stroke_width(1),
        ))?;
    }
    let mut centres = Vec::new();
    for (i, bar) in (0..).zip(&panel.bars) {
        let (x, y) = chart.backend_coord(&(bar.value.unwrap_or(0.0), row(i)));
        centres.push(y);
        bar_text(root, bar, (x + LABEL_GAP, y))?;
    }
    Ok(centres)
}

/// The end of the x axis: every bar's label and note fit between the end of the bar and the panel's edge
/// (`measure` gives a text's width in pixels), and the longest bar keeps at least 30 % of the width.
fn x_max(panel: &Panel, plot_width: f64, measure: impl Fn(&str, &TextStyle) -> f64) -> f64 {
    let mut x_max = panel.reference.filter(|a| a.is_finite() && *a > 0.0).unwrap_or(0.0);
    for bar in &panel.bars {
        let (label_style, note_style) = bar_styles(bar);
        let text = bar.note.as_ref().map_or(0.0, |(note, _)| measure(note, &note_style));
        let text = text.max(measure(&bar.label, &label_style)) + f64::from(LABEL_GAP) + LABEL_END;
        let room = (plot_width - text).max(plot_width * 0.3);
        for v in [bar.value, bar.tick].into_iter().flatten().filter(|v| v.is_finite() && *v > 0.0) {
            x_max = x_max.max(v * plot_width / room);
        }
    }
    if x_max > 0.0 {
        x_max
    } else {
        1.0
    }
}

/// An axis tick on an axis ending at `x_max`: three significant digits of the axis' scale, trailing zeros
/// dropped (0.30000000000000004 → "0.3", 200 → "200", 0.0004 on a 0.001 axis → "0.0004").
pub fn axis_number(v: f64, x_max: f64) -> String {
    let magnitude = if x_max > 0.0 { x_max.log10().floor() } else { 0.0 };
    let decimals = (2.0 - magnitude).clamp(0.0, 9.0) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s.as_str() };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The styles of a bar's label (bold, or muted for "no data") and of its note (coloured by its tone).
fn bar_styles(bar: &Bar) -> (TextStyle<'static>, TextStyle<'static>) {
    let label = if bar.value.is_some() { left(bold(15.0)) } else { left(font(15.0).color(&MUTED)) };
    let note = match bar.note.as_ref().map(|(_, tone)| tone) {
        Some(Tone::Floor) => left(bold(13.0).color(&FLOOR)),
        Some(Tone::Cost) => left(bold(13.0).color(&COST)),
        Some(Tone::Missed) => left(bold(13.0).color(&MISSED)),
        Some(Tone::Plain) | None => left(font(13.0).color(&MUTED)),
    };
    (label, note)
}

/// The label at the end of a bar and, under it, its note (the difference to A).
fn bar_text<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, bar: &Bar, (x, y): (i32, i32)) -> Drawn<DB> {
    let (label, note_style) = bar_styles(bar);
    match &bar.note {
        None => root.draw_text(&bar.label, &label, (x, y)),
        Some((note, _)) => {
            root.draw_text(&bar.label, &label, (x, y - 9))?;
            root.draw_text(note, &note_style, (x, y + 10))
        }
    }
}

/// Splits `text` at spaces into lines at most `width` wide as `measure` says (a word wider than `width`
/// stays whole on its own line).
pub fn wrap(text: &str, width: u32, measure: impl Fn(&str) -> u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if line.is_empty() || measure(&candidate) <= width {
            line = candidate;
        } else {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figure::Figure;
    use crate::results::parse;

    /// A fresh directory under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("bench-chart-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A, C and E only, E with null values, as a run that lost E's numbers would write them.
    const SUBSET_WITH_NULLS: &str = r#"{"meta": {"cpu_model": "AMD EPYC", "cpus": 2, "rate": 2000},
        "summary": {"variants": {
            "A": {"name": "no filter", "cpu_us_fixed": 226.0, "cpu_minus_A_us": 0.0, "p50_ms": 0.78,
                  "p99_ms": 15.6},
            "C": {"name": "filter, tls_client_auth (subject DN)", "cpu_us_fixed": 320.1, "cpu_minus_A_us": 94.0,
                  "cpu_ratio_A": 1.42, "p50_ms": 0.97, "p99_ms": 23.1, "p99_minus_A_ms": 7.2},
            "E": {"name": "ext_authz gRPC (Rust/tonic)", "cpu_us_fixed": null, "cpu_minus_A_us": null,
                  "p50_ms": null, "p99_ms": null}}}}"#;

    #[test]
    fn a_figure_is_drawn_as_a_png_of_the_chart_size() {
        crate::font::load(Path::new(crate::font::DEFAULT_FONT)).unwrap();
        let dir = TempDir::new("render");
        let path = dir.0.join("chart.png");
        draw(&Figure::of(&parse(SUBSET_WITH_NULLS).unwrap()), &path).unwrap();

        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG signature");
        let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
    }

    #[test]
    fn a_chart_file_not_named_png_is_refused() {
        let dir = TempDir::new("notpng");
        let path = dir.0.join("chart.txt");
        let err = draw(&Figure::of(&parse(SUBSET_WITH_NULLS).unwrap()), &path).unwrap_err();
        assert!(err.to_string().ends_with("its file name must end in .png"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn a_png_that_cannot_be_written_is_an_error_naming_it() {
        crate::font::load(Path::new(crate::font::DEFAULT_FONT)).unwrap();
        let path = Path::new("/nonexistent-dir/chart.png");
        let err = draw(&Figure::of(&parse(SUBSET_WITH_NULLS).unwrap()), path).unwrap_err();
        assert!(err.to_string().starts_with("cannot draw /nonexistent-dir/chart.png: "), "{err}");
    }

    fn chars(s: &str) -> u32 {
        s.chars().count() as u32
    }

    fn bar(value: f64, label: &str) -> Bar {
        Bar { letter: "C".into(), value: Some(value), label: label.into(), note: None, tick: None }
    }

    fn panel(bars: Vec<Bar>, reference: Option<f64>) -> Panel {
        Panel { title: String::new(), subtitle: String::new(), axis: String::new(), reference, bars }
    }

    /// 10 pixels per character.
    fn width(text: &str, _: &TextStyle) -> f64 {
        10.0 * text.chars().count() as f64
    }

    #[test]
    fn the_axis_leaves_room_for_the_label_of_the_longest_bar() {
        // 400 px wide; "300 µs" is 60 px, + 8 px before and 6 after: the bar may take 326 px of 400.
        let x = x_max(&panel(vec![bar(300.0, "300 µs")], None), 400.0, width);
        assert!((x - 300.0 * 400.0 / 326.0).abs() < 1e-9, "{x}");
    }

    #[test]
    fn a_shorter_bar_with_a_longer_note_can_set_the_axis() {
        let mut short = bar(250.0, "250 µs");
        short.note = Some(("a note of thirty characters...".into(), Tone::Cost));
        let x = x_max(&panel(vec![bar(300.0, "300 µs"), short], None), 400.0, width);
        assert!((x - 250.0 * 400.0 / (400.0 - 314.0_f64).max(120.0)).abs() < 1e-9, "{x}");
    }

    #[test]
    fn an_axis_without_any_value_still_has_a_length() {
        let empty = Bar { value: None, ..bar(0.0, "no data") };
        assert_eq!(x_max(&panel(vec![empty], None), 400.0, width), 1.0);
        assert_eq!(x_max(&panel(vec![], Some(2.0)), 400.0, width), 2.0);
    }

    #[test]
    fn axis_numbers_have_no_float_noise() {
        assert_eq!(axis_number(0.30000000000000004, 0.5), "0.3");
        assert_eq!(axis_number(200.0, 550.0), "200");
        assert_eq!(axis_number(2.5, 40.0), "2.5");
        assert_eq!(axis_number(-0.0001, 40.0), "0");
        assert_eq!(axis_number(0.0004, 0.0012), "0.0004");
    }

    #[test]
    fn wrap_breaks_at_spaces_to_fit_the_width() {
        assert_eq!(
            wrap("filter, tls_client_auth (subject DN)", 24, chars),
            ["filter, tls_client_auth", "(subject DN)"]
        );
    }

    #[test]
    fn wrap_keeps_a_short_text_on_one_line_and_a_long_word_whole() {
        assert_eq!(wrap("no filter", 24, chars), ["no filter"]);
        assert_eq!(wrap("self_signed_tls_client_auth x", 10, chars), ["self_signed_tls_client_auth", "x"]);
        assert!(wrap("", 10, chars).is_empty());
    }
}
