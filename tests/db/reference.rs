use common::Error;
use common::db::reference::{self, Named};
use vox_tests::TestDb;

#[tokio::test]
async fn roads_resolve_by_stored_name_or_id() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let by_id = reference::resolve_road(&conn, "interview", "common-factors", "spa")
        .await
        .unwrap();
    let by_name = reference::resolve_road(&conn, "Интервью", "Общие факторы", "Центр Здоровья")
        .await
        .unwrap();

    assert_eq!(by_id, by_name);
    assert_eq!(by_id.scenario, "interview");
    assert_eq!(by_id.report_type, "common-factors");
    assert_eq!(by_id.building, "spa");
    assert_eq!(by_id.building_type, "Центр Здоровья");
}

#[tokio::test]
async fn unknown_names_and_invalid_pairs_are_errors_naming_the_value() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let err = reference::resolve_road(&conn, "Аудит", "links", "non-building")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownScenario { name } if name == "Аудит"),
        "{err}"
    );
    assert!(err.to_string().contains("Аудит"));

    // A report type of the other scenario is unknown within this one.
    let err = reference::resolve_road(&conn, "design", "links", "non-building")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownReportType { name, .. } if name == "links"),
        "{err}"
    );

    let err = reference::resolve_road(&conn, "design", "audit-compliance", "casino")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownBuilding { name } if name == "casino"),
        "{err}"
    );

    let err = reference::resolve_road(&conn, "interview", "links", "hotel")
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidPair { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "report type \"links\" is not valid for building \"hotel\""
    );
}

#[tokio::test]
async fn report_types_list_exactly_the_valid_pairs_of_the_domain() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let types = reference::report_types(&conn).await.unwrap();
    let pairs: Vec<(String, String, Vec<String>)> = types
        .into_iter()
        .map(|t| (t.scenario, t.id, t.buildings))
        .collect();

    let all = || vec!["hotel".to_owned(), "restaurant".into(), "spa".into()];
    let none = || vec!["non-building".to_owned()];
    assert_eq!(
        pairs,
        vec![
            ("interview".into(), "interview-methodology".into(), none()),
            ("interview".into(), "links".into(), none()),
            ("interview".into(), "common-factors".into(), all()),
            ("interview".into(), "venue-factors".into(), all()),
            ("design".into(), "audit-methodology".into(), none()),
            ("design".into(), "audit-compliance".into(), all()),
            ("design".into(), "structured-audit".into(), all()),
        ]
    );
}

#[tokio::test]
async fn get_or_create_returns_one_id_per_name_for_each_kind() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    for kind in [Named::Employee, Named::Client, Named::City, Named::Zone] {
        let a = reference::get_or_create(&conn, kind, "Пётр Иванов")
            .await
            .unwrap();
        let again = reference::get_or_create(&conn, kind, "Пётр Иванов")
            .await
            .unwrap();
        let other = reference::get_or_create(&conn, kind, "Петр Иванов")
            .await
            .unwrap();
        assert_eq!(a, again, "{kind:?}");
        assert_ne!(a, other, "{kind:?}: ё and е are different names");

        let err = reference::get_or_create(&conn, kind, "  ")
            .await
            .unwrap_err();
        assert!(err.to_string().contains(kind.field()), "{err}");
    }
}

#[tokio::test]
async fn places_are_unique_per_building_type_and_keep_their_zones() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let hotel = reference::get_or_create_place(&conn, "Волга", "Отель")
        .await
        .unwrap();
    let hotel_again = reference::get_or_create_place(&conn, "Волга", "Отель")
        .await
        .unwrap();
    let restaurant = reference::get_or_create_place(&conn, "Волга", "Ресторан")
        .await
        .unwrap();
    assert_eq!(hotel, hotel_again);
    assert_ne!(hotel, restaurant);

    let lobby = reference::get_or_create(&conn, Named::Zone, "Лобби")
        .await
        .unwrap();
    let spa = reference::get_or_create(&conn, Named::Zone, "Спа-зона")
        .await
        .unwrap();
    reference::link_place_zones(&conn, hotel, &[spa, lobby])
        .await
        .unwrap();
    reference::link_place_zones(&conn, hotel, &[lobby])
        .await
        .unwrap();

    assert_eq!(
        reference::place_zones(&conn, hotel).await.unwrap(),
        vec!["Лобби", "Спа-зона"]
    );
    assert!(
        reference::place_zones(&conn, restaurant)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reference::building_type(&conn, "restaurant").await.unwrap(),
        "Ресторан"
    );
    let err = reference::building_type(&conn, "casino").await.unwrap_err();
    assert!(err.to_string().contains("casino"));
}
