//! Search and answers end to end: reports made by the analyze stage (offline engine, real
//! sentence encoder) in PostgreSQL, a snapshot published to moto by the index writer and
//! served by the reader.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use common::analysis::stage::Outcome as AnalyzeOutcome;
use common::index::publish::{Indexer, Outcome, Settings};
use common::index::reader::{ReaderSettings, ServedIndex};
use common::search::answer::{AnswerRequest, Answerer, NOT_FOUND};
use common::search::deep::{self, Scope};
use common::search::{Hit, HitKind, SearchRequest, Searcher, Served, Source};
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

use super::analyze::{engines, setup_in, stage};

/// Analyses one report type for a recording made in `city` on `date`; returns its audit ids.
async fn analyze(
    db: &TestDb,
    scenario: &str,
    report_type: &str,
    building: &str,
    city: &str,
    date: &str,
) -> Vec<i64> {
    let job = setup_in(db, scenario, report_type, building, city, date).await;
    match stage(db).process(&job).await.unwrap() {
        AnalyzeOutcome::Analyzed { audit_ids, .. } => audit_ids,
        other => panic!("{report_type}/{building}: {other:?}"),
    }
}

fn searcher(db: &TestDb) -> Searcher {
    let (embedder, _) = engines();
    Searcher::new(db.pool.clone(), embedder)
}

async fn publish(db: &TestDb, aws: &LocalAws) -> Settings {
    let mut settings = Settings::new(aws.bucket.clone());
    settings.map_size = 256 << 20;
    settings.n_trees = 8;
    let indexer = Indexer::new(db.pool.clone(), aws.s3.clone(), settings.clone());
    match indexer.run(false).await.unwrap() {
        Outcome::Published(_) => settings,
        other => panic!("expected a new generation: {other:?}"),
    }
}

fn ids(hits: &[Hit]) -> Vec<i64> {
    hits.iter().map(|h| h.chunk_id).collect()
}

const QUERIES: &[&str] = &[
    "Освещение в лобби слишком холодное",
    "мебель в зоне ожидания протёрта",
    "акустика и шум в ресторане",
    "навигация к спа и указатели",
    "вывеска на фасаде не видна вечером",
    "цены в ресторане высокие",
    "розетки возле кровати и шум кондиционера",
    "чистота в раздевалке",
    "торшеры возле диванов",
    "вход теряется среди соседних зданий",
];

#[tokio::test]
async fn snapshot_search_equals_an_exact_scan_and_filters_exclude_what_they_should() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    analyze(
        &db,
        "design",
        "structured-audit",
        "restaurant",
        "Москва",
        "2026-05-20",
    )
    .await;
    analyze(
        &db,
        "interview",
        "common-factors",
        "hotel",
        "Казань",
        "2026-04-02",
    )
    .await;
    let settings = publish(&db, &aws).await;
    let cache = tempfile::tempdir().unwrap();
    let mut reader_settings = ReaderSettings::from(&settings);
    reader_settings.cache_dir = Some(cache.path().to_path_buf());
    let served = ServedIndex::open(aws.s3.clone(), reader_settings)
        .await
        .unwrap();
    let snapshot = served.current().expect("a published generation is served");
    let searcher = searcher(&db);

    // The snapshot gives what an exact scan of every stored embedding gives (recall@10 = 1 on
    // this small set), in every configuration.
    let mut overlap = 0usize;
    let mut total = 0usize;
    for config in [
        None,
        Some("design"),
        Some("structured-audit"),
        Some("interview"),
    ] {
        for q in QUERIES {
            let mut request = SearchRequest::new(*q);
            request.config = config.map(Into::into);
            let indexed = searcher
                .search(Some(Served::from(&*snapshot)), &request)
                .await
                .unwrap();
            let exact = searcher.search(None, &request).await.unwrap();
            assert!(!exact.hits.is_empty(), "{q:?} in {config:?}");
            assert!(indexed.hits.iter().all(|h| h.source == Source::Index));
            assert!(exact.hits.iter().all(|h| h.source == Source::Fresh));
            assert_eq!(indexed.freshness.fresh_scanned, 0);
            let a: BTreeSet<i64> = ids(&indexed.hits).into_iter().collect();
            let b: BTreeSet<i64> = ids(&exact.hits).into_iter().collect();
            overlap += a.intersection(&b).count();
            total += b.len();
            // Scores are cosine similarities, best first.
            let scores: Vec<f32> = indexed.hits.iter().map(|h| h.score).collect();
            assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
            assert_eq!(ids(&indexed.hits), ids(&exact.hits), "{q:?} in {config:?}");
        }
    }
    let recall = overlap as f64 / total as f64;
    println!("recall@10 of the snapshot against an exact scan: {recall:.3} ({total} results)");
    assert!(recall >= 0.999, "recall {recall}");

    // Hits carry their report, recording and the segments their quotes come from.
    let request = SearchRequest::new("Освещение в лобби слишком холодное");
    let results = searcher
        .search(Some(Served::from(&*snapshot)), &request)
        .await
        .unwrap();
    let top = &results.hits[0];
    assert!(top.text.to_lowercase().contains("освещ"), "{}", top.text);
    assert!(top.recording_id.is_some() && top.object_key.is_some());
    assert_eq!(top.bucket.as_deref(), Some("b"));
    assert!(results.hits.iter().any(|h| !h.segments.is_empty()));
    for h in results.hits.iter().filter(|h| h.kind == HitKind::Report) {
        for s in &h.segments {
            assert!(s.start_ms < s.end_ms);
            // The segment holds (part of) a quote of the chunk.
            let quoted = common::analysis::quotes::extract(&h.text);
            let seg = s.text.to_lowercase().replace('ё', "е");
            assert!(
                quoted.iter().any(|q| {
                    let q = q.to_lowercase().replace('ё', "е");
                    q.split_whitespace().any(|w| w.len() > 6 && seg.contains(w))
                }),
                "segment {:?} for quotes {quoted:?}",
                s.text
            );
        }
    }

    // Filters exclude what they should, through the snapshot's candidate sets, in both
    // corpora: a transcript window passes a report-type filter when its recording has a
    // report of that type.
    let conn = db.pool.get().await.unwrap();
    let structured: BTreeSet<i64> = conn
        .query(
            "SELECT a.transcription_id FROM audit a
             JOIN report_type rt ON rt.report_type_id = a.report_type_id
             WHERE rt.code = 'structured-audit'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(conn);
    type Case = (
        &'static str,
        Box<dyn Fn(&mut SearchRequest)>,
        Box<dyn Fn(&Hit) -> bool>,
    );
    let cases: Vec<Case> = vec![
        (
            "city",
            Box::new(|r| r.filters.city = Some("москва".into())),
            Box::new(|h| h.city.as_deref() == Some("Москва")),
        ),
        (
            "building",
            Box::new(|r| r.filters.building = Some("restaurant".into())),
            Box::new(|h| h.building == "restaurant"),
        ),
        (
            "dates",
            Box::new(|r| {
                r.filters.date_from = NaiveDate::from_ymd_opt(2026, 3, 20);
                r.filters.date_to = NaiveDate::from_ymd_opt(2026, 4, 30);
            }),
            Box::new(|h| h.audit_date == NaiveDate::from_ymd_opt(2026, 4, 2).unwrap()),
        ),
        (
            "scenario",
            Box::new(|r| r.filters.scenario = Some("interview".into())),
            Box::new(|h| h.scenario == "interview"),
        ),
        (
            "report type",
            Box::new(|r| r.filters.report_type = Some("structured-audit".into())),
            Box::new(move |h| match h.kind {
                HitKind::Report => h.report_type.as_deref() == Some("structured-audit"),
                HitKind::Transcript => structured.contains(&h.transcription_id),
            }),
        ),
    ];
    for (name, filter, ok) in &cases {
        let mut request = SearchRequest::new("освещение и мебель");
        request.limit = 50;
        filter(&mut request);
        let results = searcher
            .search(Some(Served::from(&*snapshot)), &request)
            .await
            .unwrap();
        assert!(!results.hits.is_empty(), "{name}: nothing found");
        assert!(
            results.hits.iter().all(ok.as_ref()),
            "{name}: a hit out of the filter"
        );
        for kind in [HitKind::Report, HitKind::Transcript] {
            assert!(
                results.hits.iter().any(|h| h.kind == kind),
                "{name}: no {kind:?} hit passes the filter"
            );
        }
        let unfiltered = searcher
            .search(
                Some(Served::from(&*snapshot)),
                &SearchRequest {
                    filters: Default::default(),
                    ..request.clone()
                },
            )
            .await
            .unwrap();
        assert!(
            unfiltered.hits.iter().any(|h| !ok(h)),
            "{name}: the filter had nothing to exclude"
        );
    }
    let mut nobody = SearchRequest::new("освещение");
    nobody.filters.employee = Some("Никто Никтович".into());
    let none = searcher
        .search(Some(Served::from(&*snapshot)), &nobody)
        .await
        .unwrap();
    assert!(none.hits.is_empty());
    let mut place = SearchRequest::new("освещение");
    place.filters.place = Some("гранд отель".into());
    let found = searcher
        .search(Some(Served::from(&*snapshot)), &place)
        .await
        .unwrap();
    assert!(!found.hits.is_empty());
    assert!(
        found
            .hits
            .iter()
            .all(|h| h.place.as_deref() == Some("Гранд Отель"))
    );
    place.filters.place = Some("Другое место".into());
    let elsewhere = searcher.search(None, &place).await.unwrap();
    assert!(elsewhere.hits.is_empty());

    // A report stored after the snapshot is found at once (scanned exactly), and a report
    // deleted after it is gone from the results.
    analyze(
        &db,
        "design",
        "audit-compliance",
        "hotel",
        "Казань",
        "2026-06-01",
    )
    .await;
    let mut fresh = SearchRequest::new("освещение в лобби");
    fresh.filters.report_type = Some("audit-compliance".into());
    let results = searcher
        .search(Some(Served::from(&*snapshot)), &fresh)
        .await
        .unwrap();
    assert!(!results.hits.is_empty());
    assert!(results.hits.iter().all(|h| h.source == Source::Fresh));
    assert!(results.freshness.fresh_scanned > 0);
    assert_eq!(
        results.freshness.generation,
        Some(snapshot.manifest.generation)
    );

    let conn = db.pool.get().await.unwrap();
    let moscow: Vec<i64> = conn
        .query(
            "SELECT a.audit_id FROM audit a JOIN city c ON c.city_id = a.city_id
             WHERE c.city_name = 'Москва'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!moscow.is_empty());
    conn.execute("DELETE FROM audit WHERE audit_id = ANY ($1)", &[&moscow])
        .await
        .unwrap();
    let mut request = SearchRequest::new("освещение и мебель");
    request.limit = 50;
    let after = searcher
        .search(Some(Served::from(&*snapshot)), &request)
        .await
        .unwrap();
    assert!(!after.hits.is_empty());
    assert!(
        after
            .hits
            .iter()
            .all(|h| h.audit_id.is_none_or(|a| !moscow.contains(&a)))
    );
    // A transcript whose reports are all gone has no metadata left to filter by: its windows
    // drop out with them.
    assert!(
        after
            .hits
            .iter()
            .all(|h| h.city.as_deref() != Some("Москва"))
    );

    // Full-text fusion brings a chunk naming the exact word to the top.
    let mut hybrid = SearchRequest::new("торшеры");
    hybrid.hybrid = true;
    let fused = searcher
        .search(Some(Served::from(&*snapshot)), &hybrid)
        .await
        .unwrap();
    assert!(
        fused.hits[0].text.contains("торшер"),
        "{}",
        fused.hits[0].text
    );

    // Bad requests name the field.
    let mut bad = SearchRequest::new("лобби");
    bad.config = Some("nope".into());
    let err = searcher.search(None, &bad).await.unwrap_err().to_string();
    assert!(err.starts_with("config"), "{err}");
}

#[tokio::test]
async fn answers_cite_their_sources_or_say_the_reports_do_not_answer() {
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    analyze(
        &db,
        "interview",
        "common-factors",
        "hotel",
        "Казань",
        "2026-04-02",
    )
    .await;
    let answerer = Answerer::new(searcher(&db), None);

    let answer = answerer
        .answer(
            None,
            &AnswerRequest::new("Что не так с освещением в лобби?"),
        )
        .await
        .unwrap();
    println!(
        "{}",
        serde_json::to_string_pretty(&answer.statements).unwrap()
    );
    assert!(answer.found, "{answer:?}");
    // Routed: by a description that fits, or to every report type.
    assert!(
        ["similarity", "default"].contains(&answer.route.chosen_by.as_str()),
        "{:?}",
        answer.route
    );
    assert!(answer.route.score.is_some());
    assert!(!answer.statements.is_empty());
    let cited: BTreeSet<usize> = answer.sources.iter().map(|h| h.rank).collect();
    for s in &answer.statements {
        assert!(!s.sources.is_empty(), "{s:?}");
        assert!(s.sources.iter().all(|n| cited.contains(n)), "{s:?}");
        assert!(answer.text.contains(&format!("[{}]", s.sources[0])));
    }
    // The lighting passage is among the first statements (the encoder ranks a line on the
    // lobby's interior about as close), once, citing every source it is in.
    let light: Vec<_> = answer
        .statements
        .iter()
        .filter(|s| s.text.to_lowercase().contains("освещение слишком"))
        .collect();
    assert_eq!(light.len(), 1, "{:?}", answer.statements);
    assert!(
        answer.statements[..3]
            .iter()
            .any(|s| std::ptr::eq(s, light[0])),
        "{:?}",
        answer.statements
    );

    let none = answerer
        .answer(
            None,
            &AnswerRequest::new("Какой курс биткоина на бирже сегодня?"),
        )
        .await
        .unwrap();
    assert!(!none.found, "{:?}", none.statements);
    assert_eq!(none.text, NOT_FOUND);
    assert!(none.sources.is_empty() && none.statements.is_empty());

    let mut chosen = AnswerRequest::new("Почему гостья выбрала этот отель?");
    chosen.config = Some("interview".into());
    let answer = answerer.answer(None, &chosen).await.unwrap();
    assert_eq!(answer.route.chosen_by, "request");
    assert_eq!(answer.route.config, "interview");
    assert!(answer.sources.iter().all(|h| h.scenario == "interview"));

    let err = answerer
        .answer(None, &AnswerRequest::new(" "))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("question"), "{err}");
}

#[tokio::test]
async fn a_deep_question_reads_every_recording_in_scope_with_progress() {
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Москва",
        "2026-05-20",
    )
    .await;
    analyze(
        &db,
        "design",
        "structured-audit",
        "restaurant",
        "Сочи",
        "2026-05-21",
    )
    .await;
    let answerer = Answerer::new(searcher(&db), None);
    let conn = db.pool.get().await.unwrap();

    let scope = Scope {
        config: Some("design".into()),
        filters: common::search::Filters {
            building: Some("hotel".into()),
            ..Default::default()
        },
    };
    let id = deep::create(&conn, "Что не так с освещением в лобби?", &scope)
        .await
        .unwrap();
    let job = deep::get(&conn, id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.progress()), ("pending", 0.0));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let answer = answerer
        .run_deep(id, "test-worker", &move |done, total| {
            log.lock().unwrap().push((done, total))
        })
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(0, 2), (1, 2), (2, 2)]);
    assert!(answer.found, "{answer:?}");
    let recordings: BTreeSet<i64> = answer.sources.iter().map(|h| h.transcription_id).collect();
    assert_eq!(recordings.len(), 2, "both hotel recordings are cited");
    assert!(answer.sources.iter().all(|h| h.building == "hotel"));

    let job = deep::get(&conn, id).await.unwrap().unwrap();
    assert_eq!(job.status, "done");
    assert_eq!((job.total_items, job.done_items), (Some(2), 2));
    assert_eq!(job.progress(), 1.0);
    assert_eq!(job.result.as_ref(), Some(&answer));
    // Running a finished question again returns its answer.
    let again = answerer.run_deep(id, "other", &|_, _| {}).await.unwrap();
    assert_eq!(again, answer);

    let id = deep::create(
        &conn,
        "Какой курс биткоина на бирже сегодня?",
        &Scope::default(),
    )
    .await
    .unwrap();
    let none = answerer.run_deep(id, "w", &|_, _| {}).await.unwrap();
    assert!(!none.found);
    assert_eq!(none.text, NOT_FOUND);

    let err = answerer
        .run_deep(999_999, "w", &|_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("999999"), "{err}");
    let bad = Scope {
        config: Some("nope".into()),
        ..Default::default()
    };
    let err = deep::create(&conn, "вопрос", &bad).await.unwrap_err();
    assert!(err.to_string().starts_with("config"), "{err}");

    // A stored scope that does not parse is an error naming it, never "every report".
    conn.execute(
        "UPDATE question_job SET scope = '{\"bogus\": 1}' WHERE question_job_id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let err = deep::get(&conn, id).await.unwrap_err().to_string();
    assert!(err.starts_with("scope"), "{err}");
}

/// A server speaking OpenAI's chat protocol whose reply cites sources 1 and 2 (and a source it
/// was never given), or says there is no answer.
async fn chat_server(reply: &str) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "gpt-test",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }],
            })),
        )
        .mount(&server)
        .await;
    server
}

fn model(server: &wiremock::MockServer) -> Arc<dyn common::llm::ChatModel> {
    let mut settings = common::llm::ChatSettings::new("gpt-test", format!("{}/v1", server.uri()));
    settings.api_key = Some(common::llm::ApiKey::new("sk-test"));
    Arc::new(common::llm::OpenAiChat::new(settings).unwrap())
}

#[tokio::test]
async fn a_model_answers_only_from_the_sources_it_was_given() {
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    let server = chat_server(
        "- Освещение в лобби холодное и слепит [1][2].\n- Лампы стоит заменить на тёплые [2, 99].",
    )
    .await;
    let answerer = Answerer::new(searcher(&db), Some(model(&server)));
    let mut request = AnswerRequest::new("Что не так с освещением в лобби?");
    request.config = Some("design".into());
    let answer = answerer.answer(None, &request).await.unwrap();
    assert!(answer.found);
    assert_eq!(answer.engine, "openai:gpt-test");
    assert_eq!(answer.statements.len(), 2);
    assert_eq!(answer.statements[0].sources, vec![1, 2]);
    assert_eq!(answer.statements[1].sources, vec![2], "99 was never given");
    let ranks: Vec<usize> = answer.sources.iter().map(|h| h.rank).collect();
    assert_eq!(ranks, vec![1, 2]);

    // The model saw the question and numbered sources with their text.
    let sent = &server.received_requests().await.unwrap()[0];
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    let user = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(user.contains("Что не так с освещением в лобби?"));
    assert!(user.contains("[1] ") && user.contains("[2] "));
    assert!(user.contains(answer.sources[0].text.trim()));
    // Transcript windows are among the numbered sources, described by their moment.
    assert!(
        user.contains("расшифровка записи, 00:"),
        "no transcript source in: {user}"
    );

    let server = chat_server("НЕТ ОТВЕТА").await;
    let answerer = Answerer::new(searcher(&db), Some(model(&server)));
    let none = answerer
        .answer(None, &AnswerRequest::new("Какой курс биткоина?"))
        .await
        .unwrap();
    assert!(!none.found);
    assert_eq!(none.text, NOT_FOUND);
    assert!(none.sources.is_empty());
}

/// The same answer through Amazon Bedrock: a server speaking Converse (signed requests), the
/// system prompt in Converse's `system`, the sources in the user's message.
#[tokio::test]
async fn a_bedrock_model_answers_only_from_the_sources_it_was_given() {
    use wiremock::matchers::{method, path};
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/model/amazon.nova-test-v1%3A0/converse"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"text": "- Освещение в лобби холодное и слепит [1][2]."}
                ]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 900, "outputTokens": 20, "totalTokens": 920},
                "metrics": {"latencyMs": 300},
            })),
        )
        .mount(&server)
        .await;
    let mut settings = common::llm::BedrockSettings::new("amazon.nova-test-v1:0");
    settings.endpoint_url = Some(server.uri());
    let sdk = common::aws::local(&vox_tests::aws::moto_url()).await;
    let model = Arc::new(common::llm::BedrockChat::new(settings, &sdk).unwrap());
    let answerer = Answerer::new(searcher(&db), Some(model));
    let mut request = AnswerRequest::new("Что не так с освещением в лобби?");
    request.config = Some("design".into());

    let answer = answerer.answer(None, &request).await.unwrap();

    assert!(answer.found);
    assert_eq!(answer.engine, "bedrock:amazon.nova-test-v1:0");
    assert_eq!(answer.statements.len(), 1);
    assert_eq!(answer.statements[0].sources, vec![1, 2]);
    let sent = &server.received_requests().await.unwrap()[0];
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert!(
        body["system"][0]["text"]
            .as_str()
            .unwrap()
            .contains("квадратных скобках"),
        "{body}"
    );
    let user = body["messages"][0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(body["messages"][0]["role"], "user");
    assert!(user.contains("Что не так с освещением в лобби?"));
    assert!(user.contains("[1] ") && user.contains("[2] "));
    assert_eq!(body["inferenceConfig"]["maxTokens"], 1500);
}

#[tokio::test]
async fn the_analyze_function_answers_deep_questions_from_its_queue() {
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    let conn = db.pool.get().await.unwrap();
    let id = deep::create(&conn, "Что не так с освещением в лобби?", &Scope::default())
        .await
        .unwrap();
    let event = || {
        let mut event = SqsEvent::default();
        for (mid, body) in [
            ("q", format!(r#"{{"question_job_id": {id}}}"#)),
            ("bad", r#"{"question_job_id": "x"}"#.to_owned()),
        ] {
            let mut m = SqsMessage::default();
            m.message_id = Some(mid.into());
            m.body = Some(body);
            event.records.push(m);
        }
        event
    };
    let failed = |r: aws_lambda_events::sqs::SqsBatchResponse| -> Vec<String> {
        r.batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    };

    // A worker without an answerer leaves the question for one that has it.
    let stage = stage(&db);
    assert_eq!(
        failed(analyze::handle_sqs(&stage, event()).await),
        ["q", "bad"]
    );
    assert_eq!(
        deep::get(&conn, id).await.unwrap().unwrap().status,
        "pending"
    );

    let answerer = Answerer::new(searcher(&db), None);
    let response = analyze::handle_sqs_with(&stage, Some(&answerer), event()).await;
    assert_eq!(failed(response), ["bad"]);
    let job = deep::get(&conn, id).await.unwrap().unwrap();
    assert_eq!(job.status, "done");
    assert!(job.result.unwrap().found);
}

/// Whether full-text fusion helps: hit@5 (a chunk holding the wanted passage among the first
/// five) for keyword queries (the two longest words of a quoted passage, as a user types
/// them) and for paraphrases, by vector search alone and fused with full-text search.
#[tokio::test]
async fn full_text_fusion_is_measured_against_vector_search() {
    let db = TestDb::new().await.unwrap();
    analyze(
        &db,
        "design",
        "structured-audit",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    analyze(
        &db,
        "design",
        "audit-compliance",
        "hotel",
        "Казань",
        "2026-03-14",
    )
    .await;
    analyze(
        &db,
        "interview",
        "common-factors",
        "hotel",
        "Казань",
        "2026-04-02",
    )
    .await;
    let searcher = searcher(&db);
    let conn = db.pool.get().await.unwrap();
    let texts: Vec<String> = conn
        .query("SELECT text FROM chunk", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut passages: Vec<String> = texts
        .iter()
        .flat_map(|t| common::analysis::quotes::extract(t))
        .collect();
    passages.sort();
    passages.dedup();
    let keyword = |p: &str| {
        let mut words: Vec<&str> = p
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 6)
            .collect();
        words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
        words.truncate(2);
        words.join(" ")
    };
    let mut cases: Vec<(String, String, &str)> = passages
        .iter()
        .map(|p| (keyword(p), p.clone(), "keywords"))
        .filter(|(q, _, _)| !q.is_empty())
        .collect();
    for (q, wanted) in [
        (
            "Освещение в лобби слишком холодное",
            "Освещение слишком холодное",
        ),
        ("мебель в зоне ожидания протёрта", "обивка кресел протёрта"),
        ("акустика и шум в ресторане", "Акустика в ресторане плохая"),
        ("навигация к спа и указатели", "указатели маленькие"),
        (
            "вывеска на фасаде не видна вечером",
            "вывеску почти не видно",
        ),
        ("розетки возле кровати", "нет розеток"),
        ("торшеры возле диванов", "торшеры возле диванов"),
    ] {
        cases.push((q.into(), wanted.into(), "paraphrases"));
    }
    for kind in ["keywords", "paraphrases"] {
        let mut hits = [0usize; 2];
        let mut n = 0;
        for (query, wanted, _) in cases.iter().filter(|c| c.2 == kind) {
            n += 1;
            for (i, hybrid) in [false, true].into_iter().enumerate() {
                let mut request = SearchRequest::new(query.as_str());
                request.limit = 5;
                request.hybrid = hybrid;
                let results = searcher.search(None, &request).await.unwrap();
                if results
                    .hits
                    .iter()
                    .any(|h| h.text.contains(wanted.as_str()))
                {
                    hits[i] += 1;
                }
            }
        }
        let rate = |h: usize| h as f64 / n as f64;
        println!(
            "{kind}: {n} queries, hit@5 vector {:.2}, hybrid {:.2}",
            rate(hits[0]),
            rate(hits[1])
        );
        assert!(
            n > 0 && hits[0] > 0 && hits[1] > 0,
            "{kind}: {hits:?} of {n}"
        );
    }
}
