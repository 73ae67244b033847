use common::db::recording;
use common::db::transcription::{self, Coverage, Segment, UncoveredSpeech};
use vox_tests::TestDb;

use crate::support::new_transcription;

#[tokio::test]
async fn a_transcription_is_stored_with_its_segments_and_read_back() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let new = new_transcription(
        "audit 1.ogg",
        "Входная группа хорошо освещена. В лобби слишком шумно.",
    );

    let (id, created) = transcription::get_or_create(&conn, &new).await.unwrap();
    let stored = transcription::get(&conn, id).await.unwrap().unwrap();

    assert!(created);
    assert_eq!(stored.text, new.text);
    assert_eq!(stored.audio_file_name, "audit 1.ogg");
    assert_eq!(stored.number_audio, Some(7));
    assert_eq!(stored.segments, new.segments);
    assert!(transcription::exists(&conn, id).await.unwrap());
    assert!(
        transcription::get(&conn, id + 1000)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_same_file_and_text_is_reused_and_a_different_text_is_not() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let new = new_transcription("a.ogg", "Первый текст.");

    let (first, _) = transcription::get_or_create(&conn, &new).await.unwrap();
    let (again, created_again) = transcription::get_or_create(&conn, &new).await.unwrap();
    let changed = new_transcription("a.ogg", "Другой текст.");
    let (other, created_other) = transcription::get_or_create(&conn, &changed).await.unwrap();

    assert_eq!(first, again);
    assert!(!created_again);
    assert_ne!(first, other);
    assert!(created_other);
    // Reuse does not duplicate the segments.
    assert_eq!(
        transcription::get(&conn, first)
            .await
            .unwrap()
            .unwrap()
            .segments
            .len(),
        2
    );
}

#[tokio::test]
async fn a_transcription_of_a_recording_is_stored_once_per_recording() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let recording_id: i64 = conn
        .query_one(
            "INSERT INTO recording (bucket, object_key, etag) VALUES ('b', 'k.ogg', 'e')
             RETURNING recording_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut new = new_transcription("k.ogg", "Текст.");
    new.recording_id = Some(recording_id);

    let (a, created) = transcription::get_or_create(&conn, &new).await.unwrap();
    new.text = "Текст, распознанный повторно.".into();
    let (b, created_again) = transcription::get_or_create(&conn, &new).await.unwrap();

    assert!(created && !created_again);
    assert_eq!(a, b);
}

#[tokio::test]
async fn segments_running_backwards_or_with_unknown_speakers_are_rejected() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let mut new = new_transcription("b.ogg", "Текст.");
    new.segments = vec![Segment {
        start_ms: 500,
        end_ms: 100,
        text: "x".into(),
        speaker: None,
        ..Default::default()
    }];

    let err = transcription::get_or_create(&conn, &new)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("segment 0 runs from 500 ms to 100 ms"),
        "{err}"
    );

    new.segments = vec![Segment {
        start_ms: 0,
        end_ms: 100,
        text: "x".into(),
        speaker: Some("Гость".into()),
        ..Default::default()
    }];
    let err = transcription::get_or_create(&conn, &new)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Гость"), "{err}");

    let count: i64 = conn
        .query_one("SELECT count(*) FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn uncovered_speech_is_stored_and_shown_with_the_recording() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let recording_id: i64 = conn
        .query_one(
            "INSERT INTO recording (bucket, object_key, etag) VALUES ('b', 'gap.ogg', 'e')
             RETURNING recording_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before = recording::get(&conn, recording_id).await.unwrap().unwrap();
    let mut new = new_transcription("gap.ogg", "Текст.");
    new.recording_id = Some(recording_id);
    let lost = vec![
        UncoveredSpeech {
            start_ms: 12_000,
            end_ms: 14_500,
        },
        UncoveredSpeech {
            start_ms: 40_000,
            end_ms: 41_500,
        },
    ];
    new.coverage = Some(Coverage::new(50_000, lost.clone()));

    let (id, _) = transcription::get_or_create(&conn, &new).await.unwrap();
    let stored = transcription::get(&conn, id).await.unwrap().unwrap();
    let shown = recording::get(&conn, recording_id).await.unwrap().unwrap();

    assert_eq!(before.speech_coverage, None);
    let coverage = stored.coverage.expect("coverage stored");
    assert_eq!(coverage.uncovered, lost);
    assert_eq!((coverage.speech_ms, coverage.uncovered_ms), (50_000, 4_000));
    assert!((coverage.coverage - 0.92).abs() < 1e-9);
    assert_eq!(shown.speech_coverage, Some(coverage));
}

#[tokio::test]
async fn coverage_whose_regions_do_not_add_up_is_rejected() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let mut new = new_transcription("c.ogg", "Текст.");
    let mut coverage = Coverage::new(
        10_000,
        vec![UncoveredSpeech {
            start_ms: 1_000,
            end_ms: 3_000,
        }],
    );
    coverage.uncovered_ms = 500;
    new.coverage = Some(coverage);

    let err = transcription::get_or_create(&conn, &new)
        .await
        .unwrap_err()
        .to_string();

    assert!(err.contains("coverage"), "{err}");
    let none = new_transcription("d.ogg", "Текст.");
    let (id, _) = transcription::get_or_create(&conn, &none).await.unwrap();
    // An engine that does not measure coverage stores none, and reads back none.
    assert_eq!(
        transcription::get(&conn, id)
            .await
            .unwrap()
            .unwrap()
            .coverage,
        None
    );
}
