use common::db::audit::{self, PersistedAudits};
use serde_json::Value;

use crate::App;
use crate::support::design_submission;

async fn seed(app: &App, file: &str) -> PersistedAudits {
    let mut conn = app.db.pool.get().await.unwrap();
    audit::persist(&mut conn, &design_submission(file))
        .await
        .unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["audit_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn audits_are_listed_with_filters_a_page_at_a_time() {
    let app = App::new().await;
    let a = seed(&app, "a.ogg").await;
    let b = seed(&app, "b.ogg").await;
    let mut newest_first = [a.audit_ids.clone(), b.audit_ids.clone()].concat();
    newest_first.sort_unstable_by(|x, y| y.cmp(x));

    let first = app
        .get("/audits?scenario=design&limit=4", &app.analyst)
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/audits?scenario=design&limit=4&cursor={cursor}"),
            &app.analyst,
        )
        .await
        .json();
    let kazan = app
        .get(
            "/audits?scenario=design&city=Казань&building=hotel&report_type=structured-audit&date_from=2026-03-01&date_to=2026-03-31",
            &app.analyst,
        )
        .await
        .json();
    let april = app
        .get("/audits?scenario=design&date_from=2026-04-01", &app.analyst)
        .await
        .json();
    let interviews = app
        .get("/audits?scenario=interview", &app.analyst)
        .await
        .json();

    assert_eq!(ids(&first), newest_first[..4]);
    assert_eq!(ids(&second), newest_first[4..]);
    assert!(second.get("next_cursor").is_none());
    assert_eq!(ids(&kazan), newest_first);
    assert!(ids(&april).is_empty());
    assert!(ids(&interviews).is_empty());
    // The second newest is the second narrative pass of the newer recording.
    let item = &first["items"][1];
    assert_eq!(item["place_name"], "Гранд Отель Казань");
    assert_eq!(item["zone_names"], serde_json::json!(["Лобби", "Фасад"]));
    assert!(item.get("text").is_none(), "listings carry excerpts only");
    assert!(item["excerpt"].as_str().unwrap().starts_with("## "));
}

#[tokio::test]
async fn audit_listings_name_the_parameter_at_fault() {
    let app = App::new().await;

    let no_scenario = app.get("/audits", &app.analyst).await;
    let unknown = app.get("/audits?scenario=opera", &app.analyst).await;
    let bad_date = app
        .get("/audits?scenario=design&date_from=yesterday", &app.analyst)
        .await;
    let reversed = app
        .get(
            "/audits?scenario=design&date_from=2026-05-02&date_to=2026-05-01",
            &app.analyst,
        )
        .await;
    let big = app
        .get("/audits?scenario=design&limit=5000", &app.analyst)
        .await;
    let extra = app
        .get("/audits?scenario=design&sort=up", &app.analyst)
        .await;

    assert_eq!(no_scenario.problem(400, "validation")["field"], "scenario");
    assert_eq!(unknown.problem(400, "validation")["field"], "scenario");
    assert_eq!(bad_date.problem(400, "validation")["field"], "date_from");
    assert_eq!(reversed.problem(400, "validation")["field"], "date_from");
    assert_eq!(big.problem(400, "validation")["field"], "limit");
    assert_eq!(extra.problem(400, "validation")["field"], "sort");
}

#[tokio::test]
async fn an_audit_comes_with_its_text_metrics_and_quotes_cited_in_the_transcript() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;
    let [narrative, _, metrics] = <[i64; 3]>::try_from(seeded.audit_ids.clone()).unwrap();

    let answer = app.get(&format!("/audits/{narrative}"), &app.analyst).await;
    let metrics = app
        .get(&format!("/audits/{metrics}"), &app.analyst)
        .await
        .json();
    let missing = app.get("/audits/999999", &app.analyst).await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["audit_id"], narrative);
    assert_eq!(body["text"], "## Фасад\n«Входная группа хорошо освещена.»");
    assert_eq!(body["engine"], "offline");
    assert_eq!(body["report_type"], "structured-audit");
    assert_eq!(body["transcription_id"], seeded.transcription_id);
    assert_eq!(body["quotes"][0]["text"], "Входная группа хорошо освещена.");
    assert_eq!(body["quotes"][0]["verified"], true);
    assert_eq!(
        body["quotes"][0]["citation"],
        serde_json::json!({"first_segment": 0, "last_segment": 0, "start_ms": 0, "end_ms": 4200,
                           "speaker_id": null, "speaker": null})
    );
    assert_eq!(metrics["kind"], "metrics");
    assert!(metrics["metrics"].is_object());
    assert_eq!(
        metrics["metrics"],
        common::metrics::example("structured-audit", "hotel").unwrap()
    );
    missing.problem(404, "not-found");
}

#[tokio::test]
async fn an_audit_exports_as_markdown_and_unknown_formats_are_refused_by_name() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;
    let id = seeded.audit_ids[0];
    let second = seeded.audit_ids[1];

    let md = app
        .get(&format!("/audits/{id}/export?format=md"), &app.analyst)
        .await;
    let unverified = app
        .get(&format!("/audits/{second}/export"), &app.analyst)
        .await
        .text();
    let xml = app
        .get(&format!("/audits/{id}/export?format=xml"), &app.analyst)
        .await;
    let missing = app.get("/audits/999999/export", &app.analyst).await;

    assert_eq!(md.status, 200);
    assert_eq!(md.content_type(), "text/markdown; charset=utf-8");
    assert_eq!(
        md.headers["content-disposition"],
        format!("attachment; filename=\"audit-{id}.md\"").as_str()
    );
    let text = md.text();
    assert!(
        text.starts_with("# Структурированный отчет аудита — Фасад и входная группа\n"),
        "{text}"
    );
    for line in [
        "| Сценарий | Дизайн |",
        "| Место | Гранд Отель Казань |",
        "| Город | Казань |",
        "| Сотрудник | Анна Смирнова |",
        "| Зоны | Лобби, Фасад |",
        "| Запись | a.ogg (№ 7) |",
        "## Фасад",
        "- «Входная группа хорошо освещена.» (0:00–0:04) ✓",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    assert!(
        unverified
            .lines()
            .any(|l| l == "- «В лобби очень шумно.» ✗ не найдена в стенограмме"),
        "{unverified}"
    );
    let xml = xml.problem(400, "validation");
    assert_eq!(xml["field"], "format");
    assert_eq!(
        xml["detail"],
        "\"xml\" is not an export format; use md, docx or pdf"
    );
    missing.problem(404, "not-found");
}

#[tokio::test]
async fn an_audit_exports_as_docx_with_the_markdown_outline() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;
    let id = seeded.audit_ids[0];

    let answer = app
        .get(&format!("/audits/{id}/export?format=docx"), &app.analyst)
        .await;
    let metrics = app
        .get(
            &format!("/audits/{}/export?format=docx", seeded.audit_ids[2]),
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
        format!("attachment; filename=\"audit-{id}.docx\"").as_str()
    );
    let xml =
        common::export::docx::read::entry(&answer.body, "word/document.xml").expect("a valid DOCX");
    let t = |text: &str| format!("<w:t xml:space=\"preserve\">{text}</w:t>");
    for part in [
        format!(
            "<w:pStyle w:val=\"Title\"/></w:pPr><w:r>{}",
            t("Структурированный отчет аудита — Фасад и входная группа")
        ),
        t("Гранд Отель Казань"),
        t("a.ogg (№ 7)"),
        format!("<w:pStyle w:val=\"Heading2\"/></w:pPr><w:r>{}", t("Фасад")),
        format!("<w:pStyle w:val=\"Heading2\"/></w:pPr><w:r>{}", t("Цитаты")),
        format!(
            "<w:pStyle w:val=\"Quote\"/></w:pPr><w:r><w:rPr><w:i/></w:rPr>{}</w:r><w:r>{}",
            t("«Входная группа хорошо освещена.»"),
            t(" — 0:00–0:04 ✓")
        ),
    ] {
        assert!(xml.contains(&part), "{part:?} missing in:\n{xml}");
    }
    assert_eq!(metrics.status, 200);
    let xml = common::export::docx::read::entry(&metrics.body, "word/document.xml").unwrap();
    assert!(xml.contains(&t("Метрики")), "{xml}");
    assert!(xml.contains("<w:tblHeader/>"), "{xml}");
    assert!(
        xml.contains(&t("общее_количество_пунктов_информации")),
        "{xml}"
    );
}

/// The text `pdftotext` (poppler-utils) extracts from a PDF, white space runs as one space.
fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian's poppler-utils) is installed");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn an_audit_exports_as_pdf_whose_cyrillic_text_extracts() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;
    let [narrative, second, metrics] = <[i64; 3]>::try_from(seeded.audit_ids.clone()).unwrap();

    let answer = app
        .get(
            &format!("/audits/{narrative}/export?format=PDF"),
            &app.analyst,
        )
        .await;
    let unverified = app
        .get(&format!("/audits/{second}/export?format=pdf"), &app.analyst)
        .await;
    let metrics = app
        .get(
            &format!("/audits/{metrics}/export?format=pdf"),
            &app.analyst,
        )
        .await;
    let missing = app
        .get("/audits/999999/export?format=pdf", &app.analyst)
        .await;
    let uploader = app
        .get(
            &format!("/audits/{narrative}/export?format=pdf"),
            &app.uploader,
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type(), "application/pdf");
    assert_eq!(
        answer.headers["content-disposition"],
        format!("attachment; filename=\"audit-{narrative}.pdf\"").as_str()
    );
    assert!(answer.body.starts_with(b"%PDF-1."));
    let text = pdftotext(&answer.body);
    for part in [
        "Структурированный отчет аудита — Фасад и входная группа",
        "Сценарий Дизайн",
        "Место Гранд Отель Казань",
        "Запись a.ogg (№ 7)",
        "Фасад",
        "Цитаты «Входная группа хорошо освещена.» — 0:00–0:04 ✓",
    ] {
        assert!(text.contains(part), "{part:?} missing in:\n{text}");
    }
    // The page number in the footer (its narrow spaces are not always read as spaces).
    assert!(text.replace(' ', "").ends_with("1/1"), "{text}");
    let text = pdftotext(&unverified.body);
    assert!(
        text.contains("«В лобби очень шумно.» — ✗ не найдена в стенограмме"),
        "{text}"
    );
    assert_eq!(metrics.status, 200);
    let text = pdftotext(&metrics.body);
    for part in [
        "Метрики",
        "Показатель Значение",
        "общее_количество_пунктов_информации",
    ] {
        assert!(text.contains(part), "{part:?} missing in:\n{text}");
    }
    missing.problem(404, "not-found");
    uploader.problem(403, "forbidden");
}

#[tokio::test]
async fn the_openapi_document_lists_the_report_export_as_markdown_docx_and_pdf() {
    let app = App::new().await;

    let doc = app
        .call(axum::http::Method::GET, "/openapi.json", None, None)
        .await
        .json();

    let op = &doc["paths"]["/audits/{id}/export"]["get"];
    let content = op["responses"]["200"]["content"].as_object().unwrap();
    let mut types: Vec<&str> = content.keys().map(String::as_str).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "text/markdown"
        ]
    );
    let schema = &content["application/pdf"]["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    };
    assert_eq!(schema["format"], "binary", "{schema}");
    assert!(op["responses"]["415"].is_null(), "no format is planned");
    let format = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "format")
        .unwrap();
    assert_eq!(format["schema"]["pattern"], "^(md|markdown|docx|pdf)$");
}

#[tokio::test]
async fn metrics_export_as_a_table() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;

    let text = app
        .get(
            &format!("/audits/{}/export", seeded.audit_ids[2]),
            &app.analyst,
        )
        .await
        .text();

    assert!(
        text.contains("## Метрики\n\n| Показатель | Значение |\n|---|---|\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("| общее_количество_пунктов_информации | ")),
        "{text}"
    );
}

#[tokio::test]
async fn a_transcription_comes_with_its_segments() {
    let app = App::new().await;
    let seeded = seed(&app, "a.ogg").await;

    let answer = app
        .get(
            &format!("/transcriptions/{}", seeded.transcription_id),
            &app.analyst,
        )
        .await;
    let missing = app.get("/transcriptions/999999", &app.analyst).await;
    let uploader = app
        .get(
            &format!("/transcriptions/{}", seeded.transcription_id),
            &app.uploader,
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["audio_file_name"], "a.ogg");
    assert_eq!(body["language"], "ru");
    assert_eq!(
        body["segments"],
        serde_json::json!([
            {"seq": 0, "start_ms": 0, "end_ms": 4200, "text": "Входная группа хорошо освещена.", "speaker": null, "speaker_id": null},
            {"seq": 1, "start_ms": 4200, "end_ms": 9800, "text": "В лобби слишком шумно.", "speaker": null, "speaker_id": null}
        ])
    );
    missing.problem(404, "not-found");
    uploader.problem(403, "forbidden");
}
