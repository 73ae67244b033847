use serde_json::json;

use crate::App;

#[tokio::test]
async fn search_endpoints_validate_then_answer_503_until_search_is_configured() {
    let app = App::new().await;

    let search = app
        .post("/search", &app.analyst, json!({"query": "шум в лобби"}))
        .await;
    let answer = app
        .post(
            "/answers",
            &app.analyst,
            json!({"question": "Что говорят о цене?"}),
        )
        .await;
    let ask = app
        .post(
            "/questions",
            &app.analyst,
            json!({"question": "Что говорят о цене?"}),
        )
        .await;
    let question = app.get("/questions/1", &app.analyst).await;
    let index = app.get("/index", &app.analyst).await;

    for answer in [search, answer, ask, question, index] {
        let body = answer.problem(503, "search-unavailable");
        assert_eq!(body["detail"], "search is not configured");
    }
}

#[tokio::test]
async fn search_requests_name_the_field_at_fault() {
    let app = App::new().await;

    let blank = app
        .post("/search", &app.analyst, json!({"query": " "}))
        .await;
    let limit = app
        .post("/search", &app.analyst, json!({"query": "шум", "limit": 0}))
        .await;
    let dates = app
        .post(
            "/answers",
            &app.analyst,
            json!({"question": "шум?", "filters": {"date_from": "2026-05-02", "date_to": "2026-05-01"}}),
        )
        .await;
    let unknown = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум", "filters": {"colour": "red"}}),
        )
        .await;
    let corpus = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум", "corpus": "audio"}),
        )
        .await;

    assert_eq!(blank.problem(400, "validation")["field"], "query");
    assert_eq!(limit.problem(400, "validation")["field"], "limit");
    assert_eq!(
        dates.problem(400, "validation")["field"],
        "filters.date_from"
    );
    assert_eq!(
        unknown.problem(400, "validation")["field"],
        "filters.colour"
    );
    assert_eq!(corpus.problem(400, "validation")["field"], "corpus");
}

/// A stored design audit whose narrative reports are chunked and embedded, and its
/// transcript's windows, as the analyze stage does; returns how many chunks were stored.
async fn seed(app: &App) -> i64 {
    use common::analysis::chunk::{ChunkParams, split};
    use common::analysis::windows::{self, WindowParams};
    use common::db::chunk::{NewChunk, NewTranscriptChunk, replace_for_audit};
    use common::db::{audit, chunk, transcription};
    let mut conn = app.db.pool.get().await.unwrap();
    let persisted = audit::persist(&mut conn, &crate::support::design_submission("a.ogg"))
        .await
        .unwrap();
    let embedder = crate::embedder();
    let mut stored = 0;
    for id in persisted.audit_ids {
        let row = audit::get(&conn, id).await.unwrap().unwrap();
        if row.kind != "narrative" {
            continue;
        }
        let pieces = split(&row.audit_text, ChunkParams::default());
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        let vectors = embedder.embed(&texts).unwrap();
        let chunks: Vec<NewChunk> = pieces
            .iter()
            .zip(vectors)
            .map(|(p, embedding)| NewChunk {
                seq: p.seq,
                text: p.text.clone(),
                start_char: p.start_char as i32,
                end_char: p.end_char as i32,
                embedding,
            })
            .collect();
        stored += chunks.len() as i64;
        replace_for_audit(&conn, id, &chunks, embedder.model_id())
            .await
            .unwrap();
    }
    let t = transcription::get(&conn, persisted.transcription_id)
        .await
        .unwrap()
        .unwrap();
    let pieces = windows::split(&t.segments, WindowParams::default());
    let texts: Vec<&str> = pieces.iter().map(|w| w.text.as_str()).collect();
    let vectors = embedder.embed(&texts).unwrap();
    let windows: Vec<NewTranscriptChunk> = pieces
        .into_iter()
        .zip(vectors)
        .map(|(w, embedding)| NewTranscriptChunk {
            seq: w.seq,
            start_char: w.start_char as i32,
            end_char: w.end_char as i32,
            first_segment: w.first_segment as i32,
            last_segment: w.last_segment as i32,
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            speaker: w.speaker,
            text: w.text,
            embedding,
        })
        .collect();
    stored += windows.len() as i64;
    chunk::replace_for_transcription(&conn, t.id, &windows, embedder.model_id())
        .await
        .unwrap();
    stored
}

#[tokio::test]
async fn search_answers_and_deep_questions_cite_their_sources() {
    let app = App::with_search().await;
    let chunks = seed(&app).await;

    let found = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум в лобби", "limit": 5}),
        )
        .await;
    assert_eq!(found.status.as_u16(), 200, "{}", found.text());
    let body = found.json();
    assert!(body["generation"].is_null(), "no snapshot: an exact scan");
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert_eq!(hits[0]["rank"], 1);
    assert!(
        hits[0]["text"].as_str().unwrap().contains("шумно"),
        "{body}"
    );
    // The quote «В лобби слишком шумно.» is cited with its segment's times.
    let segments = hits[0]["source"]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{body}");
    assert_eq!(
        (
            segments[0]["start_ms"].as_i64(),
            segments[0]["end_ms"].as_i64()
        ),
        (Some(4_200), Some(9_800))
    );
    assert!(hits[0]["source"]["audit_id"].as_i64().is_some());
    assert_eq!(hits[0]["source"]["kind"], "report", "{body}");

    // What was said: the transcript window holding the sentence, with its moment.
    let said = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум в лобби", "limit": 3, "corpus": "transcripts"}),
        )
        .await;
    assert_eq!(said.status.as_u16(), 200, "{}", said.text());
    let body = said.json();
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{body}");
    for hit in hits {
        let source = &hit["source"];
        assert_eq!(source["kind"], "transcript", "{body}");
        assert!(source["audit_id"].is_null() && source["report_type"].is_null());
        assert!(source["start_ms"].as_i64().unwrap() <= source["end_ms"].as_i64().unwrap());
        assert!(source.get("speaker").is_some(), "{body}");
    }
    let source = &hits[0]["source"];
    assert!(source["start_ms"].as_i64() <= Some(4_200) && source["end_ms"].as_i64() >= Some(9_800));
    assert!(
        source["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["text"].as_str().unwrap().contains("шумно") && s.get("speaker").is_some()),
        "{body}"
    );

    let filtered = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум", "filters": {"city": "Москва"}}),
        )
        .await;
    assert_eq!(filtered.json()["hits"], json!([]));

    let none = app
        .post(
            "/answers",
            &app.analyst,
            json!({"question": "Какой курс биткоина на бирже сегодня?"}),
        )
        .await;
    assert_eq!(none.status.as_u16(), 200, "{}", none.text());
    let body = none.json();
    assert_eq!(body["found"], false);
    assert_eq!(body["answer"], common::search::answer::NOT_FOUND);
    assert_eq!(body["sources"], json!([]));

    let answer = app
        .post(
            "/answers",
            &app.analyst,
            json!({"question": "Шумно ли в лобби?", "index": "design"}),
        )
        .await;
    let body = answer.json();
    assert_eq!(body["routed_by"], "request");
    assert_eq!(body["found"], true, "{body}");
    let ranks: Vec<i64> = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rank"].as_i64().unwrap())
        .collect();
    for statement in body["statements"].as_array().unwrap() {
        for n in statement["sources"].as_array().unwrap() {
            assert!(ranks.contains(&n.as_i64().unwrap()), "{body}");
        }
        // Statements from a transcript say when they were said.
        assert!(statement.get("said").is_some(), "{body}");
    }

    // A deep question is a job, answered in process here; it is followed to the end.
    let asked = app
        .post(
            "/questions",
            &app.analyst,
            json!({"question": "Шумно ли в лобби?"}),
        )
        .await;
    assert_eq!(asked.status.as_u16(), 202, "{}", asked.text());
    let id = asked.json()["question_id"].as_i64().unwrap();
    let mut job = serde_json::Value::Null;
    for _ in 0..300 {
        job = app
            .get(&format!("/questions/{id}"), &app.analyst)
            .await
            .json();
        if job["status"] == "done" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        (job["done"].as_i64(), job["total"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(job["found"], true, "{job}");
    app.get("/questions/999999", &app.analyst)
        .await
        .problem(404, "not-found");

    let index = app.get("/index", &app.analyst).await;
    assert_eq!(index.status.as_u16(), 200);
    let body = index.json();
    assert!(body["generation"].is_null());
    assert_eq!(body["lag_chunks"], chunks);

    // Uploaders cannot search.
    app.post("/search", &app.uploader, json!({"query": "шум"}))
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn a_nul_character_in_a_filter_or_a_body_is_a_400_naming_the_field() {
    // PostgreSQL text cannot hold U+0000: refused before any query, not a 500.
    let app = App::new().await;
    let listed = app.get("/audits?city=%00", &app.analyst).await;
    let searched = app
        .post(
            "/search",
            &app.analyst,
            json!({"query": "шум", "filters": {"city": "Каз\u{0}ань"}}),
        )
        .await;
    // An escaped backslash before `u0000` is text, not a NUL.
    let literal = app
        .post("/search", &app.analyst, json!({"query": "путь C:\\u0000"}))
        .await;

    assert_eq!(listed.problem(400, "validation")["field"], "city");
    assert_eq!(searched.problem(400, "validation")["field"], "filters.city");
    literal.problem(503, "search-unavailable");
}
