//! Named crash points for the chaos check (`infra/local/chaos_check.sh`).
//!
//! With `VOX_CHAOS_ABORT_AT=<step>` set, the process aborts (SIGABRT: no destructor runs,
//! no temp file is removed, no lease given up, exactly what `kill -9` leaves) the first time
//! it reaches that step. Unset, as everywhere but that check, a point costs one load of a
//! cached value. The steps, in pipeline order: `claimed`, `window-saved`,
//! `transcript-stored`, `audits-stored`, `chunks-stored`, `index-uploaded`,
//! `manifest-swapped`.

use std::sync::OnceLock;

/// Every step a crash can be injected at, in pipeline order.
pub const STEPS: [&str; 7] = [
    "claimed",
    "window-saved",
    "transcript-stored",
    "audits-stored",
    "chunks-stored",
    "index-uploaded",
    "manifest-swapped",
];

fn target() -> Option<&'static str> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var("VOX_CHAOS_ABORT_AT").ok())
        .as_deref()
}

/// Aborts the process here when `VOX_CHAOS_ABORT_AT` names `step`.
pub fn point(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "unknown chaos step {step}");
    if target() == Some(step) {
        eprintln!("chaos: aborting at {step} (VOX_CHAOS_ABORT_AT)");
        std::process::abort();
    }
}
