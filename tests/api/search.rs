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
}

/// A stored design audit whose narrative reports are chunked and embedded as the analyze
/// stage does; returns how many chunks were stored.
async fn seed(app: &App) -> i64 {
    use common::analysis::chunk::{ChunkParams, split};
    use common::db::audit;
    use common::db::chunk::{NewChunk, replace_for_audit};
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
