//! `GET /transcriptions/{id}/export`: text, SRT, WebVTT and DOCX with times and speakers.

use axum::http::Method;
use common::db::transcription::{self, Segment};
use common::export::docx;

use crate::App;
use crate::support::new_transcription;

fn said(start_ms: i64, end_ms: i64, text: &str, role: Option<&str>, id: Option<i16>) -> Segment {
    Segment {
        start_ms,
        end_ms,
        text: text.into(),
        speaker: role.map(str::to_owned),
        speaker_id: id,
        ..Default::default()
    }
}

/// An interview of a recording named in Russian: two voices with roles, a line without a
/// speaker past the first hour, markup characters in the text.
async fn seed(app: &App) -> i64 {
    let mut t = new_transcription("recordings/2025/06/01/ab12/Интервью гостя.ogg", "");
    t.audio_seconds = Some(3_725.0);
    t.segments = vec![
        said(0, 2_500, "Как вам наш номер?", Some("Сотрудник"), Some(0)),
        said(
            2_500,
            6_000,
            "Понравился, но <шумно> & душно.",
            Some("Клиент"),
            Some(1),
        ),
        said(3_661_000, 3_663_500, "Спасибо.", None, None),
    ];
    t.text = transcription::text_of(&t.segments);
    let conn = app.db.pool.get().await.unwrap();
    transcription::get_or_create(&conn, &t).await.unwrap().0
}

#[tokio::test]
async fn a_transcript_exports_as_text_with_times_and_speakers() {
    let app = App::new().await;
    let id = seed(&app).await;

    let answer = app
        .get(
            &format!("/transcriptions/{id}/export?format=txt"),
            &app.analyst,
        )
        .await;
    let default = app
        .get(&format!("/transcriptions/{id}/export"), &app.admin)
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type(), "text/plain; charset=utf-8");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"Intervyu_gostya.txt\""
    );
    assert_eq!(
        answer.text(),
        "Запись: recordings/2025/06/01/ab12/Интервью гостя.ogg (№ 7)\n\
         Язык: ru\n\
         Длительность: 01:02:05\n\
         \n\
         [00:00:00] Сотрудник: Как вам наш номер?\n\
         [00:00:02] Клиент: Понравился, но <шумно> & душно.\n\
         [01:01:01] Спасибо.\n"
    );
    assert_eq!(default.status, 200);
    assert_eq!(default.body, answer.body, "txt is the default");
}

#[tokio::test]
async fn a_transcript_exports_as_srt_cues_with_the_speaker_in_the_text() {
    let app = App::new().await;
    let id = seed(&app).await;

    let answer = app
        .get(
            &format!("/transcriptions/{id}/export?format=SRT"),
            &app.analyst,
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type(), "application/x-subrip; charset=utf-8");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"Intervyu_gostya.srt\""
    );
    assert_eq!(
        answer.text(),
        "1\n00:00:00,000 --> 00:00:02,500\nСотрудник: Как вам наш номер?\n\
         \n\
         2\n00:00:02,500 --> 00:00:06,000\nКлиент: Понравился, но <шумно> & душно.\n\
         \n\
         3\n01:01:01,000 --> 01:01:03,500\nСпасибо.\n"
    );
}

#[tokio::test]
async fn a_transcript_exports_as_webvtt_with_voice_spans_and_escaped_text() {
    let app = App::new().await;
    let id = seed(&app).await;

    let answer = app
        .get(
            &format!("/transcriptions/{id}/export?format=vtt"),
            &app.analyst,
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type(), "text/vtt; charset=utf-8");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"Intervyu_gostya.vtt\""
    );
    assert_eq!(
        answer.text(),
        "WEBVTT\n\
         \n\
         00:00:00.000 --> 00:00:02.500\n\
         <v Сотрудник>Как вам наш номер?\n\
         \n\
         00:00:02.500 --> 00:00:06.000\n\
         <v Клиент>Понравился, но &lt;шумно&gt; &amp; душно.\n\
         \n\
         01:01:01.000 --> 01:01:03.500\n\
         Спасибо.\n"
    );
}

#[tokio::test]
async fn a_transcript_exports_as_docx_with_the_header_and_a_paragraph_a_segment() {
    let app = App::new().await;
    let id = seed(&app).await;

    let answer = app
        .get(
            &format!("/transcriptions/{id}/export?format=DOCX"),
            &app.analyst,
        )
        .await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type(),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"Intervyu_gostya.docx\""
    );
    let xml = docx::read::entry(&answer.body, "word/document.xml").expect("a valid DOCX");
    let t = |text: &str| format!("<w:t xml:space=\"preserve\">{text}</w:t>");
    for part in [
        t("Запись: recordings/2025/06/01/ab12/Интервью гостя.ogg (№ 7)"),
        t("Длительность: 01:02:05"),
        format!(
            "{}</w:r><w:r><w:rPr><w:b/></w:rPr>{}</w:r><w:r>{}</w:r><w:r>{}",
            t("[00:00:02] "),
            t("Клиент"),
            t(": "),
            t("Понравился, но &lt;шумно&gt; &amp; душно.")
        ),
        format!("<w:rPr><w:b/></w:rPr>{}", t("Сотрудник")),
        t("Спасибо."),
    ] {
        assert!(xml.contains(&part), "{part:?} missing in:\n{xml}");
    }
}

#[tokio::test]
async fn transcript_exports_refuse_other_formats_by_name_as_report_exports_do() {
    let app = App::new().await;
    let id = seed(&app).await;

    let xml = app
        .get(
            &format!("/transcriptions/{id}/export?format=xml"),
            &app.analyst,
        )
        .await;
    let unknown_parameter = app
        .get(&format!("/transcriptions/{id}/export?as=srt"), &app.analyst)
        .await;

    let xml = xml.problem(400, "validation");
    assert_eq!(xml["field"], "format");
    assert_eq!(
        xml["detail"],
        "\"xml\" is not a transcript export format; use txt, srt, vtt or docx"
    );
    unknown_parameter.problem(400, "validation");
}

#[tokio::test]
async fn a_transcript_not_there_is_not_found_as_when_reading_it() {
    let app = App::new().await;

    let export = app
        .get("/transcriptions/999999/export?format=srt", &app.analyst)
        .await;
    let read = app.get("/transcriptions/999999", &app.analyst).await;
    let bad_id = app
        .get("/transcriptions/abc/export?format=srt", &app.analyst)
        .await;

    let export = export.problem(404, "not-found");
    assert_eq!(export["detail"], "transcription 999999 does not exist");
    assert_eq!(export, read.problem(404, "not-found"));
    assert_eq!(bad_id.problem(400, "validation")["field"], "id");
}

#[tokio::test]
async fn who_may_not_read_a_transcript_may_not_export_it_and_is_told_the_same() {
    let app = App::new().await;
    let id = seed(&app).await;
    let export = format!("/transcriptions/{id}/export?format=vtt");
    let read = format!("/transcriptions/{id}");

    let uploader_export = app.get(&export, &app.uploader).await;
    let uploader_read = app.get(&read, &app.uploader).await;
    let anonymous_export = app.call(Method::GET, &export, None, None).await;
    let anonymous_read = app.call(Method::GET, &read, None, None).await;

    assert_eq!(
        uploader_export.problem(403, "forbidden"),
        uploader_read.problem(403, "forbidden")
    );
    assert_eq!(
        anonymous_export.problem(401, "unauthorized"),
        anonymous_read.problem(401, "unauthorized")
    );
    assert!(
        !uploader_export.text().contains("Спасибо"),
        "nothing of the transcript leaks"
    );
}

#[tokio::test]
async fn a_transcript_stored_without_segments_exports_as_text_only() {
    let app = App::new().await;
    let mut t = new_transcription("b.ogg", "Текст без времени.");
    t.segments.clear();
    let conn = app.db.pool.get().await.unwrap();
    let (id, _) = transcription::get_or_create(&conn, &t).await.unwrap();
    drop(conn);

    let txt = app
        .get(
            &format!("/transcriptions/{id}/export?format=txt"),
            &app.analyst,
        )
        .await;
    let srt = app
        .get(
            &format!("/transcriptions/{id}/export?format=srt"),
            &app.analyst,
        )
        .await;

    assert_eq!(txt.status, 200);
    assert!(
        txt.text().ends_with("\n\nТекст без времени.\n"),
        "{}",
        txt.text()
    );
    let srt = srt.problem(400, "validation");
    assert_eq!(srt["field"], "format");
    assert!(
        srt["detail"]
            .as_str()
            .unwrap()
            .contains("no timed segments"),
        "{srt}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_export_with_its_media_types_and_formats() {
    let app = App::new().await;

    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .json();

    let op = &doc["paths"]["/transcriptions/{id}/export"]["get"];
    let content = op["responses"]["200"]["content"].as_object().unwrap();
    let mut types: Vec<&str> = content.keys().map(String::as_str).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/x-subrip",
            "text/plain",
            "text/vtt"
        ]
    );
    let schema = &content["application/vnd.openxmlformats-officedocument.wordprocessingml.document"]
        ["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    };
    assert_eq!(schema["type"], "string", "{schema}");
    assert_eq!(schema["format"], "binary", "{schema}");
    for status in ["401", "403", "404"] {
        assert!(
            op["responses"][status].is_object(),
            "{status} is not documented"
        );
    }
    let format = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "format")
        .unwrap();
    assert_eq!(format["in"], "query");
    assert_eq!(format["schema"]["pattern"], "^(txt|srt|vtt|docx)$");
}
