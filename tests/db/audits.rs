use chrono::NaiveDate;
use common::db::audit::{self, AuditFilter, AuditSubmission};
use vox_tests::TestDb;

use crate::support::{design_submission, metrics};

fn interview(file: &str, building: &str, city: &str, day: u32) -> AuditSubmission {
    let mut s = design_submission(file);
    s.scenario = "Интервью".into();
    s.report_type = "venue-factors".into();
    s.building = building.into();
    s.meta.city = Some(city.into());
    s.meta.client = Some("Мария Петрова".into());
    s.meta.date = NaiveDate::from_ymd_opt(2026, 5, day).unwrap();
    s.reports.truncate(1);
    s.reports.push(common::db::audit::ReportInput {
        pass: 2,
        title: None,
        body: common::db::audit::ReportBody::Metrics(metrics("venue-factors", building)),
        prompt_id: None,
        engine: None,
        quotes: vec![],
    });
    s
}

fn ids(page: &audit::Page<audit::AuditRow>) -> Vec<i64> {
    page.items.iter().map(|a| a.audit_id).collect()
}

#[tokio::test]
async fn listing_returns_the_scenarios_audits_with_their_names() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let design = audit::persist(&mut conn, &design_submission("d.ogg"))
        .await
        .unwrap();
    let talk = audit::persist(&mut conn, &interview("i.ogg", "spa", "Сочи", 3))
        .await
        .unwrap();

    let filter = AuditFilter {
        scenario: "design".into(),
        ..Default::default()
    };
    let page = audit::list(&conn, &filter, None, 50).await.unwrap();

    let mut expected = design.audit_ids.clone();
    expected.reverse();
    assert_eq!(ids(&page), expected);
    assert_eq!(page.next_after, None);
    let first = page.items.last().unwrap();
    assert_eq!(first.scenario_name, "Дизайн");
    assert_eq!(first.report_type_desc, "Структурированный отчет аудита");
    assert_eq!(first.employee_name.as_deref(), Some("Анна Смирнова"));
    assert_eq!(first.place_name.as_deref(), Some("Гранд Отель Казань"));
    assert_eq!(first.building_type.as_deref(), Some("Отель"));
    assert_eq!(first.zone_names, vec!["Лобби", "Фасад"]);
    assert_eq!(first.city_name.as_deref(), Some("Казань"));
    assert_eq!(first.number_audio, Some(7));
    assert_eq!(first.audio_file_name, "d.ogg");

    let interviews = AuditFilter {
        scenario: "Интервью".into(),
        ..Default::default()
    };
    let page = audit::list(&conn, &interviews, None, 50).await.unwrap();
    assert_eq!(page.items.len(), talk.audit_ids.len());
    assert_eq!(page.items[0].client_name.as_deref(), Some("Мария Петрова"));
}

#[tokio::test]
async fn filters_by_report_type_building_city_and_dates_exclude_the_rest() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let spa = audit::persist(&mut conn, &interview("a.ogg", "spa", "Сочи", 3))
        .await
        .unwrap();
    let hotel = audit::persist(&mut conn, &interview("b.ogg", "hotel", "Казань", 10))
        .await
        .unwrap();
    let mut other_type = interview("c.ogg", "hotel", "Казань", 20);
    other_type.report_type = "common-factors".into();
    other_type.reports[1].body =
        common::db::audit::ReportBody::Metrics(metrics("common-factors", "hotel"));
    let common_factors = audit::persist(&mut conn, &other_type).await.unwrap();
    let list = |filter: AuditFilter| {
        let conn = &conn;
        async move { ids(&audit::list(conn, &filter, None, 100).await.unwrap()) }
    };
    let base = AuditFilter {
        scenario: "interview".into(),
        ..Default::default()
    };
    let sorted_desc = |mut v: Vec<i64>| {
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };

    let by_building = list(AuditFilter {
        building: Some("spa".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(by_building, sorted_desc(spa.audit_ids.clone()));

    let by_city = list(AuditFilter {
        city: Some("Казань".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(
        by_city,
        sorted_desc([hotel.audit_ids.clone(), common_factors.audit_ids.clone()].concat())
    );

    let by_type = list(AuditFilter {
        report_type: Some("Общие факторы".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(by_type, sorted_desc(common_factors.audit_ids.clone()));

    let by_dates = list(AuditFilter {
        date_from: NaiveDate::from_ymd_opt(2026, 5, 4),
        date_to: NaiveDate::from_ymd_opt(2026, 5, 19),
        ..base.clone()
    })
    .await;
    assert_eq!(by_dates, sorted_desc(hotel.audit_ids.clone()));

    let nothing = list(AuditFilter {
        city: Some("Москва".into()),
        ..base.clone()
    })
    .await;
    assert!(nothing.is_empty());
}

#[tokio::test]
async fn keyset_pages_cover_every_audit_once_in_order() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let mut all = Vec::new();
    for i in 0..7 {
        all.extend(
            audit::persist(&mut conn, &design_submission(&format!("{i}.ogg")))
                .await
                .unwrap()
                .audit_ids,
        );
    }
    all.sort_unstable_by(|a, b| b.cmp(a));
    let filter = AuditFilter {
        scenario: "design".into(),
        ..Default::default()
    };

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = audit::list(&conn, &filter, after, 4).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 4);
        seen.extend(ids(&page));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    assert_eq!(seen, all);
    assert_eq!(pages, 21_usize.div_ceil(4));
}

#[tokio::test]
async fn unknown_filter_names_and_bad_limits_are_errors_naming_them() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let filter = AuditFilter {
        scenario: "Ревизия".into(),
        ..Default::default()
    };
    let err = audit::list(&conn, &filter, None, 10)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown scenario \"Ревизия\"");

    let filter = AuditFilter {
        scenario: "design".into(),
        report_type: Some("links".into()),
        ..Default::default()
    };
    let err = audit::list(&conn, &filter, None, 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"links\""), "{err}");

    let filter = AuditFilter {
        scenario: "design".into(),
        building: Some("casino".into()),
        ..Default::default()
    };
    let err = audit::list(&conn, &filter, None, 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("casino"), "{err}");

    let filter = AuditFilter {
        scenario: "design".into(),
        ..Default::default()
    };
    let err = audit::list(&conn, &filter, None, 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit"), "{err}");

    // A valid filter that matches nothing is an empty page, not an error.
    let page = audit::list(&conn, &filter, None, 10).await.unwrap();
    assert!(page.items.is_empty());
    assert!(audit::get(&conn, 1).await.unwrap().is_none());
}
