//! Builders of realistic submissions.

use chrono::NaiveDate;
use common::db::audit::{AuditSubmission, Quote, ReportBody, ReportInput, TranscriptionSource};
use common::db::transcription::{NewTranscription, Segment};
use common::domain::AuditMeta;

pub fn new_transcription(file: &str, text: &str) -> NewTranscription {
    NewTranscription {
        text: text.to_owned(),
        audio_file_name: file.to_owned(),
        number_audio: Some(7),
        recording_id: None,
        language: Some("ru".into()),
        audio_seconds: Some(62.5),
        model_id: Some("whisper-base-int8".into()),
        date: None,
        coverage: None,
        speakers: None,
        segments: vec![
            Segment {
                start_ms: 0,
                end_ms: 4_200,
                text: "Входная группа хорошо освещена.".into(),
                speaker: None,
                ..Default::default()
            },
            Segment {
                start_ms: 4_200,
                end_ms: 9_800,
                text: "В лобби слишком шумно.".into(),
                speaker: None,
                ..Default::default()
            },
        ],
    }
}

/// A structured design audit of a hotel: two narrative passes and metrics.
pub fn design_submission(file: &str) -> AuditSubmission {
    AuditSubmission {
        scenario: "design".into(),
        report_type: "structured-audit".into(),
        building: "hotel".into(),
        meta: AuditMeta {
            date: NaiveDate::from_ymd_opt(2026, 3, 14).unwrap(),
            employee: Some("Анна Смирнова".into()),
            place: Some("Гранд Отель Казань".into()),
            zones: vec!["Лобби".into(), "Фасад".into()],
            city: Some("Казань".into()),
            client: None,
        },
        place_building: None,
        transcription: TranscriptionSource::New(Box::new(new_transcription(
            file,
            "Входная группа хорошо освещена. В лобби слишком шумно.",
        ))),
        reports: vec![
            ReportInput {
                pass: 1,
                title: Some("Фасад и входная группа".into()),
                body: ReportBody::Narrative("## Фасад\n«Входная группа хорошо освещена.»".into()),
                prompt_id: None,
                engine: Some("offline".into()),
                quotes: vec![Quote {
                    text: "Входная группа хорошо освещена.".into(),
                    verified: true,
                }],
            },
            ReportInput {
                pass: 2,
                title: Some("Общественные зоны".into()),
                body: ReportBody::Narrative("## Лобби\n«В лобби слишком шумно.»".into()),
                prompt_id: None,
                engine: Some("offline".into()),
                quotes: vec![Quote {
                    text: "В лобби очень шумно.".into(),
                    verified: false,
                }],
            },
            ReportInput {
                pass: 4,
                title: Some("Метрики".into()),
                body: ReportBody::Metrics(metrics("structured-audit", "hotel")),
                prompt_id: None,
                engine: Some("offline".into()),
                quotes: vec![],
            },
        ],
        analysis_job_id: None,
    }
}

/// A complete, valid metrics object for the pair.
pub fn metrics(report_type: &str, building: &str) -> serde_json::Value {
    common::metrics::example(report_type, building).expect("the pair has a metrics schema")
}
