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

#[path = "questions.rs"]
#[allow(dead_code)] // the retrieval benchmark uses all of it
mod questions;

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

#[test]
fn retrieval_questions_are_valid() {
    // Each question's answer is in its turn, its paraphrase avoids the turn's content words
    // (load_questions checks both and fails with every problem it finds).
    let set = questions::load_questions(&root()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(set.len() >= 50, "{} questions", set.len());
    let clips: std::collections::BTreeSet<&str> = set.iter().map(|q| q.clip.as_str()).collect();
    assert!(clips.len() >= 12, "{} scripts", clips.len());
    let mut kinds = std::collections::BTreeSet::new();
    for clip in &clips {
        let script = questions::script(&root(), clip).unwrap();
        kinds.insert(script.kind().to_owned());
        let n = set.iter().filter(|q| q.clip == *clip).count();
        assert!((3..=5).contains(&n), "{clip}: {n} questions");
    }
    assert!(
        kinds.contains("audit") && kinds.contains("interview"),
        "{kinds:?}"
    );
    for q in &set {
        let said = &questions::turns(&root(), &q.clip).unwrap()[q.turn - 1].1;
        assert!(questions::states(&q.answer, said), "{}: {}", q.clip, q.text);
    }
}

#[test]
fn retrieval_question_checks_name_the_file_and_the_question() {
    let root = tempfile::tempdir().unwrap();
    let dialogues = root.path().join("infra/local/speech/dialogues");
    let dir = root.path().join("tests/eval/questions");
    std::fs::create_dir_all(&dialogues).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dialogues.join("ru_audit_x.txt"),
        "# kind: audit\nS1: Начинаю осмотр.\nS1: Рекомендую добавить ковры за стойкой.\n",
    )
    .unwrap();
    let q = |turn: usize, paraphrase: &str, answer: &str| {
        format!(
            "[[question]]\nturn = {turn}\ntext = \"Что добавить у ресепшена?\"\n\
             paraphrase = \"{paraphrase}\"\nanswer = {answer}\n"
        )
    };
    let good = q(2, "Чем застелить пол у приёмной?", r#"[["ковры"]]"#);
    std::fs::write(dir.join("ru_audit_x.toml"), &good).unwrap();
    let set = questions::load_questions(root.path()).unwrap();
    assert_eq!((set.len(), set[0].turn), (1, 2));

    let bad = [
        q(3, "Чем застелить пол?", r#"[["ковры"]]"#),
        q(2, "Что добавить у приёмной?", r#"[["ковры"]]"#),
        q(2, "Чем застелить пол?", r#"[["ковры"], ["панели"]]"#),
        q(2, "Чем застелить пол?", r#"[["панели"]]"#),
    ];
    std::fs::write(dir.join("ru_audit_x.toml"), bad.concat()).unwrap();
    let e = format!("{:#}", questions::load_questions(root.path()).unwrap_err());
    for wanted in [
        "4 problem(s)",
        "ru_audit_x.toml: question 1",
        "turn 3 is not one of the script's turns 1..=2",
        "question 2",
        "shares content stems [\"добав\"]",
        "question 3",
        "answer sets [[\"панели\"]] are not stated in turn 2",
        "question 4",
        "no answer set is stated",
    ] {
        assert!(e.contains(wanted), "{wanted:?} not in {e}");
    }

    std::fs::write(dir.join("ru_audit_none.toml"), &good).unwrap();
    let e = format!("{:#}", questions::load_questions(root.path()).unwrap_err());
    assert!(e.contains("ru_audit_none.toml: no script"), "{e}");
}
