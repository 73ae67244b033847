//! What was said, searchable: the analyze stage stores a transcript's windows once, with the
//! first report of its recording; search finds them beside the reports with their moments and
//! speakers, and fast answers state a fact the reports left out from the transcript, with its
//! time and speaker.

use std::collections::BTreeSet;

use common::analysis::stage::Outcome;
use common::db::analysis_job;
use common::quotes::hms;
use common::search::answer::{AnswerRequest, Answerer};
use common::search::{Corpus, HitKind, SearchRequest, Searcher};
use vox_tests::TestDb;

use super::analyze::{engines, setup_in, stage};

/// Stored windows of a transcription: (chunk id, seq, first and last segment, start and end
/// ms, speaker, text, start and end char), in order.
type WindowRow = (
    i64,
    i32,
    i32,
    i32,
    i64,
    i64,
    Option<String>,
    String,
    i32,
    i32,
);

async fn windows(db: &TestDb, transcription_id: i64) -> Vec<WindowRow> {
    let conn = db.pool.get().await.unwrap();
    conn.query(
        "SELECT chunk_id, seq, first_segment, last_segment, start_ms, end_ms, speaker, text,
                start_char, end_char
         FROM chunk WHERE transcription_id = $1 ORDER BY seq",
        &[&transcription_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(8),
            r.get(9),
        )
    })
    .collect()
}

fn analyzed_windows(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Analyzed {
            transcript_windows, ..
        } => transcript_windows,
        other => panic!("not analyzed: {other:?}"),
    }
}

#[tokio::test]
async fn windows_are_stored_once_and_what_only_the_transcript_holds_is_found_and_answered() {
    let db = TestDb::new().await.unwrap();
    let first = setup_in(
        &db,
        "interview",
        "common-factors",
        "hotel",
        "Казань",
        "2026-04-02",
    )
    .await;
    let conn = db.pool.get().await.unwrap();
    // Two voices: the employee asks, the guest answers, turn by turn.
    conn.execute(
        "UPDATE transcription_segment
         SET speaker = CASE WHEN seq % 2 = 0 THEN 'Сотрудник' ELSE 'Клиент' END
         WHERE transcription_id = $1",
        &[&first.transcription_id],
    )
    .await
    .unwrap();
    let second = analysis_job::create_for_transcription(
        &conn,
        first.recording_id,
        first.transcription_id,
        "interview",
        "hotel",
        &["links".to_owned()],
    )
    .await
    .unwrap()
    .into_iter()
    .find(|j| j.report_type == "links")
    .expect("a links job");
    let stage = stage(&db);

    // The first job stores the windows with its reports; the second finds them stored.
    let made = analyzed_windows(stage.process(&first).await.unwrap());
    assert!(made > 0);
    let stored = windows(&db, first.transcription_id).await;
    assert_eq!(stored.len(), made);
    assert_eq!(analyzed_windows(stage.process(&second).await.unwrap()), 0);
    assert_eq!(windows(&db, first.transcription_id).await, stored);

    // Every window is whole segments of the transcript, in order, overlapping its neighbour.
    let text: String = conn
        .query_one(
            "SELECT transcription_text FROM transcription WHERE transcription_id = $1",
            &[&first.transcription_id],
        )
        .await
        .unwrap()
        .get(0);
    let chars: Vec<char> = text.chars().collect();
    let segments: Vec<(i32, i64, i64, String, Option<String>)> = conn
        .query(
            "SELECT seq, start_ms, end_ms, text, speaker FROM transcription_segment
             WHERE transcription_id = $1 ORDER BY seq",
            &[&first.transcription_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    for (k, w) in stored.iter().enumerate() {
        let (_, seq, first_seg, last_seg, start_ms, end_ms, _, text, start, end) = w;
        assert_eq!(*seq as usize, k);
        assert_eq!(*start_ms, segments[*first_seg as usize].1);
        assert_eq!(*end_ms, segments[*last_seg as usize].2);
        assert!(
            end_ms - start_ms <= 60_000 || first_seg == last_seg,
            "{w:?}"
        );
        let slice: String = chars[*start as usize..*end as usize].iter().collect();
        assert_eq!(&slice, text);
        if k > 0 {
            assert!(
                *first_seg <= stored[k - 1].3,
                "window {k} overlaps the one before"
            );
        }
    }
    assert_eq!(stored.last().unwrap().3 as usize, segments.len() - 1);

    // The job delivered again changes no window.
    conn.execute(
        "UPDATE analysis_job SET status = 'queued', finished_at = NULL
         WHERE analysis_job_id = $1",
        &[&first.analysis_job_id],
    )
    .await
    .unwrap();
    let _ = stage.process(&first).await.unwrap();
    assert_eq!(windows(&db, first.transcription_id).await, stored);

    // A guest's sentence no report holds: found among the transcripts, at its moment.
    let reports: Vec<String> = conn
        .query(
            "SELECT lower(audit) FROM audit WHERE transcription_id = $1",
            &[&first.transcription_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missed: Vec<&(i32, i64, i64, String, Option<String>)> = segments
        .iter()
        .filter(|s| s.4.as_deref() == Some("Клиент") && s.3.split_whitespace().count() >= 7)
        .filter(|s| !reports.iter().any(|r| r.contains(&s.3.to_lowercase())))
        .collect();
    assert!(!missed.is_empty(), "every guest sentence is in a report");
    let (embedder, _) = engines();
    let searcher = Searcher::new(db.pool.clone(), embedder);
    let answerer = Answerer::new(searcher.clone(), None);
    let mut answered = 0;
    for said in missed.iter().take(3) {
        let (_, start_ms, end_ms, sentence, _) = said;
        let mut request = SearchRequest::new(sentence.as_str());
        request.corpus = Some(Corpus::Transcripts);
        let results = searcher.search(None, &request).await.unwrap();
        let top = &results.hits[0];
        assert_eq!(top.kind, HitKind::Transcript);
        assert_eq!(top.audit_id, None);
        assert_eq!(top.report_type, None);
        assert_eq!(top.transcription_id, first.transcription_id);
        assert!(top.start_ms.unwrap() <= *start_ms && top.end_ms.unwrap() >= *end_ms);
        assert_eq!(
            top.city.as_deref(),
            Some("Казань"),
            "metadata of its recording"
        );
        assert!(top.object_key.is_some());
        let segment = top
            .segments
            .iter()
            .find(|s| s.start_ms == *start_ms)
            .expect("the window's segments include the sentence's");
        assert_eq!(segment.speaker.as_deref(), Some("Клиент"));

        // Both corpora by default: the transcript window is among the hits.
        let both = searcher
            .search(None, &SearchRequest::new(sentence.as_str()))
            .await
            .unwrap();
        let kinds: BTreeSet<String> = both.hits.iter().map(|h| format!("{:?}", h.kind)).collect();
        assert!(kinds.contains("Transcript"), "{kinds:?}");

        // The fast answer states it from the transcript with its time and speaker.
        let answer = answerer
            .answer(None, &AnswerRequest::new(sentence.as_str()))
            .await
            .unwrap();
        let stated = answer
            .statements
            .iter()
            .find(|s| s.said.as_ref().is_some_and(|m| m.start_ms == *start_ms));
        if let Some(s) = stated {
            answered += 1;
            let moment = s.said.as_ref().unwrap();
            assert_eq!(moment.speaker.as_deref(), Some("Клиент"));
            assert!(s.text.contains(&hms(*start_ms)), "{}", s.text);
            assert!(s.text.contains("Клиент"), "{}", s.text);
            let source = answer
                .sources
                .iter()
                .find(|h| s.sources.contains(&h.rank) && h.kind == HitKind::Transcript)
                .expect("a transcript source is cited");
            assert_eq!(source.transcription_id, first.transcription_id);
        }
    }
    assert!(
        answered >= 2,
        "{answered} of 3 guest sentences answered with their moment"
    );

    // Asked what the employee asked, the answer states the guest's reply first, not the
    // question: a question shows where a topic came up, the reply what was said of it.
    let (asked, reply) = segments
        .windows(2)
        .find(|p| {
            p[0].4.as_deref() == Some("Сотрудник")
                && p[0].3.trim_end().ends_with('?')
                && p[1].4.as_deref() == Some("Клиент")
                && p[1].3.split_whitespace().count() >= 5
        })
        .map(|p| (&p[0], &p[1]))
        .expect("an employee's question with the guest's reply");
    let answer = answerer
        .answer(None, &AnswerRequest::new(asked.3.as_str()))
        .await
        .unwrap();
    let first = answer.statements.first().expect("an answer");
    assert!(!first.text.contains("?»"), "{}", answer.text);
    assert!(
        answer.statements.iter().any(|s| s
            .said
            .as_ref()
            .is_some_and(|m| m.start_ms == reply.1 && m.speaker.as_deref() == Some("Клиент"))),
        "the reply at {} is stated: {}",
        hms(reply.1),
        answer.text
    );

    // Reports only: no transcript hit.
    let mut reports_only = SearchRequest::new(missed[0].3.as_str());
    reports_only.corpus = Some(Corpus::Reports);
    let results = searcher.search(None, &reports_only).await.unwrap();
    assert!(results.hits.iter().all(|h| h.kind == HitKind::Report));
}
