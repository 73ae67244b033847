//! Fact recall of the offline engine with the real sentence encoder, on a few fixed
//! transcripts of the evaluation set (`tests/eval/README.md`): the script's turns as segments
//! with their roles, every report that fits, scored as the `report_quality` bench scores them.
//! These are floors on behaviour (a guest's plain statements reach the reports, in their
//! sections, as verbatim quotes), not figures tuned to the transcripts.
//!
//! Needs the prepared model (`infra/local/models/prepare_embedding.sh`;
//! `$VOX_MODELS_DIR/use-multilingual`, default `~/.cache/voxpersona/models`) and ONNX Runtime
//! from `infra/local/models/prepare.sh`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::analysis::offline::OfflineEngine;
use common::embed::{EmbedConfig, UseEmbedder};

#[path = "facts.rs"]
#[allow(dead_code)] // the bench uses all of it
mod facts;

use facts::{evaluate, load_set, reference_segments};

fn engine() -> &'static OfflineEngine {
    static E: OnceLock<OfflineEngine> = OnceLock::new();
    E.get_or_init(|| {
        let config = EmbedConfig::from_env().expect("VOX_MODELS_DIR / VOX_EMBED_THREADS");
        let embedder = UseEmbedder::load(&config)
            .expect("embedding model is prepared (infra/local/models/prepare_embedding.sh)");
        OfflineEngine::new(Arc::new(embedder)).expect("the offline contract compiles")
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Times come from the synthesized turns when they exist; the scoring does not need them.
fn no_dialogues() -> PathBuf {
    root().join("tests/eval/no-such-dir")
}

#[test]
fn two_thirds_of_what_guests_say_reach_the_reports_of_three_interviews() {
    let ids = [
        "ru_int_hotel_yaroslavl_quiet",
        "ru_int_restaurant_spb_short",
        "ru_int_spa_sochi",
    ];
    let set = load_set(&root(), Some(&ids)).unwrap();
    assert_eq!(set.len(), 3);
    for t in &set {
        let segments = reference_segments(t, &no_dialogues()).unwrap();
        let (tally, missed) = evaluate(engine(), t, segments, "text").unwrap();
        assert!(
            3 * tally.found >= 2 * tally.facts,
            "{}: {} of {} facts found; missed {missed:?}",
            t.id,
            tally.found,
            tally.facts
        );
        assert!(
            5 * tally.placed >= 4 * tally.found,
            "{}: {} of {} found facts in their sections",
            t.id,
            tally.placed,
            tally.found
        );
        assert_eq!(
            tally.verified, tally.quotes,
            "{}: a quote is not verbatim",
            t.id
        );
        assert!(tally.quotes > 0, "{}", t.id);
    }
}

#[test]
fn the_issues_hotel_guest_gets_every_stated_factor_counted() {
    // Location and quiet matter most, reviews of breakfasts, photos of rooms, poor sound
    // insulation: each is in its section and its category's count.
    let set = load_set(&root(), Some(&["ru_int_hotel_yaroslavl_quiet"])).unwrap();
    let t = &set[0];
    let segments = reference_segments(t, &no_dialogues()).unwrap();
    let (tally, missed) = evaluate(engine(), t, segments, "text").unwrap();
    assert_eq!(tally.found, tally.facts, "missed {missed:?}");
    assert_eq!(tally.metric_ok, tally.metric_facts);
}
