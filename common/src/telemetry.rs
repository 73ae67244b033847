//! Logging: JSON lines through `tracing` in Lambda, readable lines on a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. `RUST_LOG` sets the filter (default `info`);
/// `VOX_LOG_FORMAT=json|text` overrides the format, which otherwise is JSON inside Lambda
/// and text elsewhere. Logs go to stderr so that command output on stdout stays clean.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("VOX_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, a binary embedding another) is harmless: keep the first.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
