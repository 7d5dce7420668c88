//! `oauth-mtls`: explains the filter's verdicts and validates its configuration, from the same pure core.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read = |path: &str| {
        if path == "-" {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .map(|_| bytes)
                .map_err(|e| format!("stdin: {e}"))
        } else {
            std::fs::read(path).map_err(|e| format!("{path}: {e}"))
        }
    };
    let out = oauth_mtls_filter::cli::run(&args, &read);
    let text = out.text;
    if out.status == 2 {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    std::process::exit(out.status);
}
