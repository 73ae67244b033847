use common::db::api_key;
use sha2::{Digest, Sha256};
use vox_tests::TestDb;

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[tokio::test]
async fn a_key_is_found_by_its_hash_until_it_is_revoked() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let created = api_key::create(
        &conn,
        " ops ",
        "vox_abcdefgh",
        &digest("vox_abcdefgh-secret"),
        "admin",
    )
    .await
    .unwrap();

    let found = api_key::authenticate(&conn, &digest("vox_abcdefgh-secret"))
        .await
        .unwrap();
    let wrong = api_key::authenticate(&conn, &digest("vox_other"))
        .await
        .unwrap();
    let revoked = api_key::revoke(&conn, created.api_key_id)
        .await
        .unwrap()
        .unwrap();
    let again = api_key::revoke(&conn, created.api_key_id)
        .await
        .unwrap()
        .unwrap();
    let after = api_key::authenticate(&conn, &digest("vox_abcdefgh-secret"))
        .await
        .unwrap();

    assert_eq!(created.name, "ops");
    assert_eq!(
        found,
        Some(api_key::Authenticated {
            api_key_id: created.api_key_id,
            name: "ops".into(),
            role: "admin".into()
        })
    );
    assert_eq!(wrong, None);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert_eq!(after, None);
    assert_eq!(api_key::revoke(&conn, 999_999).await.unwrap(), None);
}

#[tokio::test]
async fn use_is_recorded_and_listing_shows_every_key_newest_first() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let a = api_key::create(&conn, "a", "vox_aaaaaaaa", &digest("a"), "analyst")
        .await
        .unwrap();
    let b = api_key::create(&conn, "b", "vox_bbbbbbbb", &digest("b"), "uploader")
        .await
        .unwrap();

    api_key::authenticate(&conn, &digest("a")).await.unwrap();
    let listed = api_key::list(&conn).await.unwrap();

    let ids: Vec<i64> = listed.iter().map(|k| k.api_key_id).collect();
    assert_eq!(ids, vec![b.api_key_id, a.api_key_id]);
    assert!(listed[1].last_used_at.is_some());
    assert!(listed[0].last_used_at.is_none());
}

#[tokio::test]
async fn keys_need_a_name_and_a_known_role() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let role = api_key::create(&conn, "x", "vox_xxxxxxxx", &digest("x"), "root").await;
    let name = api_key::create(&conn, " ", "vox_yyyyyyyy", &digest("y"), "admin").await;

    assert!(
        matches!(role, Err(common::Error::InvalidInput { field: "role", .. })),
        "{role:?}"
    );
    assert!(
        matches!(name, Err(common::Error::InvalidInput { field: "name", .. })),
        "{name:?}"
    );
}
