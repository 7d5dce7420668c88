//! The TrueType font the chart's text is drawn with: a file read at run time and registered with plotters.

use std::fmt;
use std::path::{Path, PathBuf};

use plotters::style::{register_font, FontStyle};

/// Debian's fonts-dejavu-core.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Environment variable naming another regular TTF/OTF file.
pub const FONT_ENV: &str = "BENCH_CHART_FONT";
/// The family name the chart asks plotters for.
pub const FAMILY: &str = "sans-serif";

/// Why the font could not be loaded.
#[derive(Debug)]
pub enum FontError {
    Unreadable { path: PathBuf, source: std::io::Error },
    NotAFont { path: PathBuf },
}

impl fmt::Display for FontError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FontError::Unreadable { path, source } => write!(
                f,
                "cannot read the font {} ({source}): install it (apt-get install fonts-dejavu-core) or set \
                 {FONT_ENV} to a TrueType font file",
                path.display()
            ),
            FontError::NotAFont { path } => {
                write!(f, "{} is not a TrueType/OpenType font (set {FONT_ENV} to one)", path.display())
            }
        }
    }
}

impl std::error::Error for FontError {}

/// The regular font file: `$BENCH_CHART_FONT` when set and not empty, else DejaVu Sans.
pub fn regular_path() -> PathBuf {
    match std::env::var_os(FONT_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_FONT),
    }
}

/// The bold face beside a regular one, by name: `DejaVuSans.ttf` → `DejaVuSans-Bold.ttf`.
pub fn bold_path(regular: &Path) -> Option<PathBuf> {
    let stem = regular.file_stem()?.to_str()?;
    let ext = regular.extension()?.to_str()?;
    Some(regular.with_file_name(format!("{stem}-Bold.{ext}")))
}

/// Registers `regular` as the chart's family, and its bold face when one lies beside it (otherwise plotters
/// draws bold text with the regular face).
pub fn load(regular: &Path) -> Result<(), FontError> {
    register(regular, FontStyle::Normal)?;
    if let Some(bold) = bold_path(regular).filter(|p| p.is_file()) {
        register(&bold, FontStyle::Bold)?;
    }
    Ok(())
}

fn register(path: &Path, style: FontStyle) -> Result<(), FontError> {
    let bytes = std::fs::read(path).map_err(|source| FontError::Unreadable { path: path.to_path_buf(), source })?;
    // plotters keeps registered fonts for the life of the process: the bytes must live as long.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FAMILY, style, bytes).map_err(|_| FontError::NotAFont { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bold_face_is_looked_for_beside_the_regular_one() {
        assert_eq!(
            bold_path(Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")),
            Some(PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"))
        );
        assert_eq!(bold_path(Path::new("/fonts/NoExtension")), None);
    }

    #[test]
    fn a_missing_font_is_an_error_that_says_how_to_get_one() {
        let err = load(Path::new("/nonexistent/DejaVuSans.ttf")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot read the font /nonexistent/DejaVuSans.ttf"), "{msg}");
        assert!(msg.contains("apt-get install fonts-dejavu-core") && msg.contains(FONT_ENV), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_font_is_an_error() {
        let dir = std::env::temp_dir().join(format!("bench-chart-notafont-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Fake.ttf");
        std::fs::write(&path, b"not a font").unwrap();
        let err = load(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, FontError::NotAFont { .. }), "{err}");
    }
}
