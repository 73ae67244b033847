//! The prompt catalog's sync into `prompts` / `prompts_buildings`.

use common::analysis::catalog::{self, Catalog};
use vox_tests::TestDb;

#[tokio::test]
async fn sync_loads_every_prompt_once_and_a_rerun_changes_nothing() {
    let db = TestDb::new().await.unwrap();
    let catalog = Catalog::embedded().unwrap();
    let mut conn = db.pool.get().await.unwrap();

    let tx = conn.transaction().await.unwrap();
    let first = catalog::sync(&tx, catalog).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first.inserted.len(), catalog.prompts.len());
    assert!(first.updated.is_empty() && first.deactivated.is_empty());

    let tx = conn.transaction().await.unwrap();
    let second = catalog::sync(&tx, catalog).await.unwrap();
    tx.commit().await.unwrap();
    assert!(second.inserted.is_empty() && second.updated.is_empty());
    assert_eq!(second.unchanged, catalog.prompts.len());

    let row = conn
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE is_active),
                    count(*) FILTER (WHERE is_json_prompt),
                    (SELECT count(*) FROM prompts_buildings)
             FROM prompts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 38);
    assert_eq!(row.get::<_, i64>(1), 38);
    assert_eq!(row.get::<_, i64>(2), 15);
    // One link per (prompt, building) of the catalog.
    let links: usize = catalog.prompts.iter().map(|p| p.buildings.len()).sum();
    assert_eq!(row.get::<_, i64>(3), links as i64);

    // Each stored version is the file's SHA-256, and stored ids resolve by (name, version).
    let spec = catalog
        .get("structured-audit.hotel.1.facade-public-rooms")
        .unwrap();
    let id = catalog::stored_id(&conn, &spec.name, &spec.version)
        .await
        .unwrap()
        .expect("stored");
    let (text, run_part, report_type): (String, i16, String) = conn
        .query_one(
            "SELECT p.prompt, p.run_part, rt.code FROM prompts p
             JOIN report_type rt ON rt.report_type_id = p.report_type_id
             WHERE p.prompt_id = $1",
            &[&id],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(
        (text.as_str(), run_part, report_type.as_str()),
        (spec.text, 1, "structured-audit")
    );
}

#[tokio::test]
async fn an_older_version_is_kept_inactive_and_unknown_names_are_deactivated() {
    let db = TestDb::new().await.unwrap();
    let catalog = Catalog::embedded().unwrap();
    let conn = db.pool.get().await.unwrap();
    // An earlier deploy stored another version of one prompt and a prompt since removed.
    let spec = &catalog.prompts[1];
    conn.execute(
        "INSERT INTO prompts (prompt_name, prompt, run_part, version, is_active)
         VALUES ($1, 'old text', 1, repeat('a', 64), true),
                ('retired-prompt', 'gone', 1, repeat('b', 64), true)",
        &[&spec.name],
    )
    .await
    .unwrap();
    let mut conn = conn;
    let tx = conn.transaction().await.unwrap();
    let report = catalog::sync(&tx, catalog).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.deactivated, vec!["retired-prompt".to_owned()]);
    let rows = conn
        .query(
            "SELECT version, is_active FROM prompts WHERE prompt_name = $1 ORDER BY prompt_id",
            &[&spec.name],
        )
        .await
        .unwrap();
    let states: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        states,
        vec![("a".repeat(64), false), (spec.version.clone(), true)]
    );
}
