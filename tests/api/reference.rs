use crate::App;

#[tokio::test]
async fn reference_data_lists_scenarios_report_types_and_valid_pairs() {
    let app = App::new().await;

    let scenarios = app.get("/scenarios", &app.uploader).await.json();
    let report_types = app.get("/report-types", &app.uploader).await.json();
    let buildings = app.get("/buildings", &app.uploader).await.json();

    assert_eq!(
        scenarios,
        serde_json::json!([
            {"id": "design", "name": "Дизайн"},
            {"id": "interview", "name": "Интервью"}
        ])
    );
    let report_types = report_types.as_array().unwrap();
    assert_eq!(report_types.len(), 7);
    let common_factors = report_types
        .iter()
        .find(|r| r["id"] == "common-factors")
        .unwrap();
    assert_eq!(common_factors["name"], "Общие факторы");
    assert_eq!(common_factors["scenario"], "interview");
    assert_eq!(
        common_factors["buildings"],
        serde_json::json!(["hotel", "restaurant", "spa"])
    );
    let hotel = buildings
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "hotel")
        .unwrap();
    assert_eq!(hotel["name"], "Отель");
    assert_eq!(
        hotel["report_types"],
        serde_json::json!([
            "common-factors",
            "venue-factors",
            "audit-compliance",
            "structured-audit"
        ])
    );
}
