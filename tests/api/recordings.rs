use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use common::db::audit;
use common::db::recording::{self, Claim, ObjectIdentity};
use serde_json::{Value, json};

use crate::App;
use crate::support::design_submission;

fn new_recording() -> Value {
    json!({
        "file_name": "Аудит лобби 12.ogg",
        "content_type": "audio/ogg",
        "size_bytes": 11,
        "scenario": "Дизайн",
        "building": "Гостиница",
        "report_types": ["structured-audit", "Соответствие программе аудита"],
        "employee": "  анна   смирнова ",
        "place": "гранд отель казань",
        "zones": ["лобби", "Фасад", "лобби"],
        "city": "казань",
        "date": "2026-03-14",
        "number": 12,
        "language": "ru"
    })
}

/// A client for the presigned request: plain HTTP to the emulator.
fn http_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_announced_recording_uploads_with_the_presigned_put_and_is_adopted_by_transcribe() {
    let app = App::with_s3().await;
    let aws = app.aws.as_ref().unwrap();

    let created = app
        .post("/recordings", &app.uploader, new_recording())
        .await;

    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let id = body["recording_id"].as_i64().unwrap();
    assert_eq!(
        created.headers[header::LOCATION],
        format!("/recordings/{id}").as_str()
    );
    assert_eq!(body["status"], "awaiting_upload");
    let key = body["object_key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("recordings/") && key.ends_with("/_12.ogg"),
        "{key}"
    );
    let upload = &body["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["content-type"], "audio/ogg");
    assert_eq!(upload["headers"]["content-length"], "11");
    // The signature binds the size and the media type, not only the key.
    let url = upload["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
        "{url}"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        upload["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires - chrono::Utc::now();
    assert!(ttl > chrono::Duration::minutes(14) && ttl <= chrono::Duration::minutes(15));

    // The stored intent holds the normalised metadata transcribe will use.
    let conn = app.db.pool.get().await.unwrap();
    let row = recording::get(&conn, id).await.unwrap().unwrap();
    assert_eq!(row.bucket, aws.bucket);
    assert_eq!(row.etag, "");
    assert_eq!(
        row.metadata,
        json!({
            "scenario": "design", "building": "hotel",
            "report_types": ["structured-audit", "audit-compliance"],
            "employee": "Анна Смирнова", "place": "Гранд Отель Казань",
            "zones": ["Лобби", "Фасад"], "city": "Казань", "client": null,
            "date": "2026-03-14", "number": 12, "language": "ru"
        })
    );

    // The upload, as a browser or phone would send it.
    let client = http_client();
    let mut put = client.put(upload["url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    let response = put.body(b"OggS-audio!".to_vec()).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );

    let head = aws.s3.head(&aws.bucket, &key).await.unwrap();
    assert_eq!(head.size, 11);
    assert_eq!(head.content_type.as_deref(), Some("audio/ogg"));
    let notifications = aws.drain(&aws.transcribe, 10).await.unwrap();
    assert!(
        notifications.iter().any(|n| n.contains("ObjectCreated")),
        "{notifications:?}"
    );

    // The notification's object is the intent's recording, with its metadata.
    let claim = recording::claim(
        &conn,
        &ObjectIdentity {
            bucket: aws.bucket.clone(),
            key: key.clone(),
            etag: head.etag,
            version_id: String::new(),
        },
        "w1",
        Duration::from_secs(60),
        3,
    )
    .await
    .unwrap();
    let Claim::Claimed {
        recording_id,
        metadata,
        ..
    } = claim
    else {
        panic!("{claim:?}")
    };
    assert_eq!(recording_id, id);
    assert_eq!(metadata["place"], "Гранд Отель Казань");
    let status = app.get(&format!("/recordings/{id}"), &app.uploader).await;
    assert_eq!(status.json()["status"], "transcribing");
}

#[tokio::test]
async fn invalid_recordings_are_refused_naming_the_field() {
    let app = App::new().await;
    let with = |field: &str, value: Value| {
        let mut body = new_recording();
        body[field] = value;
        body
    };
    let cases = [
        (with("scenario", json!("аудит-трейл")), "scenario"),
        (with("building", json!("казино")), "building"),
        (with("building", json!("non-building")), "building"),
        (with("report_types", json!(["links"])), "report_types"),
        (
            with("report_types", json!(["no-such-report"])),
            "report_types",
        ),
        (with("size_bytes", json!(0)), "size_bytes"),
        (with("size_bytes", json!(60_000_000)), "size_bytes"),
        (with("content_type", json!("text/html")), "content_type"),
        (with("file_name", json!(" ")), "file_name"),
        (with("date", json!("14.03.2026")), "date"),
        (with("number", json!(-1)), "number"),
        (with("language", json!("de")), "language"),
        (with("colour", json!("red")), "colour"),
    ];

    for (body, field) in cases {
        let answer = app.post("/recordings", &app.uploader, body).await;
        assert_eq!(
            answer.problem(400, "validation")["field"],
            field,
            "{}",
            answer.text()
        );
    }
    let mut missing = new_recording();
    missing.as_object_mut().unwrap().remove("scenario");
    let answer = app.post("/recordings", &app.uploader, missing).await;
    assert_eq!(answer.problem(400, "validation")["field"], "scenario");

    let conn = app.db.pool.get().await.unwrap();
    let rows: i64 = conn
        .query_one("SELECT count(*) FROM recording", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "a refused request must not leave a row");
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large_are_refused() {
    let app = App::new().await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        Request::post("/recordings")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.uploader))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };

    let form = app
        .send(send("application/x-www-form-urlencoded", b"a=1".to_vec()))
        .await;
    let broken = app
        .send(send("application/json", b"{\"file_name\": ".to_vec()))
        .await;
    let huge = app
        .send(send("application/json", vec![b' '; 2 * 1024 * 1024]))
        .await;

    form.problem(415, "unsupported-media-type");
    broken.problem(400, "malformed-body");
    huge.problem(413, "payload-too-large");
}

#[tokio::test]
async fn recordings_are_listed_newest_first_by_status_a_page_at_a_time() {
    let app = App::new().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = app
            .post("/recordings", &app.uploader, new_recording())
            .await;
        ids.push(created.json()["recording_id"].as_i64().unwrap());
    }
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "UPDATE recording SET status = 'failed', last_error = 'not audio' WHERE recording_id = $1",
        &[&ids[1]],
    )
    .await
    .unwrap();

    let first = app.get("/recordings?limit=2", &app.analyst).await.json();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/recordings?limit=2&cursor={cursor}"),
            &app.analyst,
        )
        .await
        .json();
    let failed = app
        .get("/recordings?status=failed", &app.uploader)
        .await
        .json();

    let page_ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["recording_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(page_ids(&first), vec![ids[2], ids[1]]);
    assert_eq!(page_ids(&second), vec![ids[0]]);
    assert!(second.get("next_cursor").is_none());
    assert_eq!(page_ids(&failed), vec![ids[1]]);
    assert_eq!(failed["items"][0]["last_error"], "not audio");

    let bad_status = app.get("/recordings?status=lost", &app.analyst).await;
    let bad_cursor = app.get("/recordings?cursor=zzz", &app.analyst).await;
    let audit_cursor = app
        .get(
            &format!("/recordings?cursor={}", "YXVkaXRzOjQy"),
            &app.analyst,
        )
        .await;
    let bad_limit = app.get("/recordings?limit=0", &app.analyst).await;
    let not_a_number = app.get("/recordings?limit=many", &app.analyst).await;
    assert_eq!(bad_status.problem(400, "validation")["field"], "status");
    assert_eq!(bad_cursor.problem(400, "validation")["field"], "cursor");
    assert_eq!(audit_cursor.problem(400, "validation")["field"], "cursor");
    assert_eq!(bad_limit.problem(400, "validation")["field"], "limit");
    assert_eq!(not_a_number.problem(400, "validation")["field"], "limit");
}

#[tokio::test]
async fn an_uploader_sees_only_the_recordings_it_created() {
    let app = App::new().await;
    let conn = app.db.pool.get().await.unwrap();
    let (_, other) = api::keys::create(&conn, "second uploader", api::auth::Role::Uploader)
        .await
        .unwrap();
    // A recording put into the bucket directly has no creator.
    let direct = recording::create_intent(
        &conn,
        "audio",
        "recordings/direct.ogg",
        "audio/ogg",
        10,
        &json!({}),
        None,
    )
    .await
    .unwrap()
    .recording_id;
    drop(conn);
    let mine = app
        .post("/recordings", &app.uploader, new_recording())
        .await
        .json()["recording_id"]
        .as_i64()
        .unwrap();
    let theirs = app
        .post("/recordings", &other, new_recording())
        .await
        .json()["recording_id"]
        .as_i64()
        .unwrap();

    let listed = |page: Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["recording_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        listed(app.get("/recordings", &app.uploader).await.json()),
        vec![mine]
    );
    assert_eq!(
        listed(app.get("/recordings", &other).await.json()),
        vec![theirs]
    );
    assert_eq!(
        listed(app.get("/recordings", &app.analyst).await.json()),
        vec![theirs, mine, direct]
    );
    let own = app.get(&format!("/recordings/{mine}"), &app.uploader).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["recording_id"], mine);
    // Another uploader's recording, and one without a creator, are not found (not 403: an
    // uploader does not learn which ids exist).
    app.get(&format!("/recordings/{theirs}"), &app.uploader)
        .await
        .problem(404, "not-found");
    app.get(&format!("/recordings/{direct}"), &app.uploader)
        .await
        .problem(404, "not-found");
    for key in [&app.analyst, &app.admin] {
        let seen = app.get(&format!("/recordings/{theirs}"), key).await;
        assert_eq!(seen.status, 200, "{}", seen.text());
    }
}

#[tokio::test]
async fn a_recording_shows_its_transcription_jobs_and_produced_reports() {
    let app = App::new().await;
    let created = app
        .post("/recordings", &app.uploader, new_recording())
        .await;
    let id = created.json()["recording_id"].as_i64().unwrap();
    let mut conn = app.db.pool.get().await.unwrap();
    let mut submission = design_submission("lobby.ogg");
    if let audit::TranscriptionSource::New(t) = &mut submission.transcription {
        t.recording_id = Some(id);
    }
    let persisted = audit::persist(&mut conn, &submission).await.unwrap();

    let answer = app.get(&format!("/recordings/{id}"), &app.uploader).await;
    let missing = app.get("/recordings/999999", &app.uploader).await;
    let not_an_id = app.get("/recordings/abc", &app.uploader).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["recording_id"], id);
    assert_eq!(body["status"], "awaiting_upload");
    assert_eq!(body["stage"], "waiting for the upload");
    assert_eq!(body["transcription_id"], persisted.transcription_id);
    let audits: Vec<i64> = body["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["audit_id"].as_i64().unwrap())
        .collect();
    assert_eq!(audits, persisted.audit_ids);
    assert_eq!(body["audits"][0]["report_type"], "structured-audit");
    assert_eq!(body["audits"][2]["kind"], "metrics");
    missing.problem(404, "not-found");
    assert_eq!(not_an_id.problem(400, "validation")["field"], "id");
}

#[tokio::test]
async fn an_uploaded_recording_plays_from_a_short_lived_presigned_get_for_readers_only() {
    let app = App::with_s3().await;
    let created = app
        .post("/recordings", &app.uploader, new_recording())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let body = created.json();
    let id = body["recording_id"].as_i64().unwrap();
    let media = format!("/recordings/{id}/media");

    // Announced, not yet uploaded: nothing to play.
    let early = app.get(&media, &app.analyst).await;
    let problem = early.problem(404, "not-found");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not been uploaded"),
        "{problem}"
    );

    let upload = &body["upload"];
    let client = http_client();
    let mut put = client.put(upload["url"].as_str().unwrap());
    for (name, value) in upload["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    let response = put.body(b"OggS-audio!".to_vec()).send().await.unwrap();
    assert!(response.status().is_success());

    // Uploaded (before transcribe adopted it): readers get a URL that needs no key.
    let answer = app.get(&media, &app.analyst).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let got = answer.json();
    assert_eq!(got["recording_id"], id);
    assert_eq!(got["content_type"], "audio/ogg");
    let expires: chrono::DateTime<chrono::Utc> =
        got["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires - chrono::Utc::now();
    assert!(
        ttl > chrono::Duration::minutes(4) && ttl <= chrono::Duration::minutes(5),
        "{ttl}"
    );
    let url = got["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    let audio = client.get(url).send().await.unwrap();
    assert!(audio.status().is_success());
    assert_eq!(audio.bytes().await.unwrap().as_ref(), b"OggS-audio!");
    assert_eq!(app.get(&media, &app.admin).await.status, 200);

    // Hearing a recording is reading it: not for uploaders, not without a key.
    app.get(&media, &app.uploader)
        .await
        .problem(403, "forbidden");
    app.call(axum::http::Method::GET, &media, None, None)
        .await
        .problem(401, "unauthorized");
    app.get("/recordings/999999/media", &app.analyst)
        .await
        .problem(404, "not-found");
}
