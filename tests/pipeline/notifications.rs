use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::db::recording::{self, Claim, ObjectIdentity};
use common::events::{Notification, parse_notification};
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

#[tokio::test]
async fn an_uploaded_object_reaches_the_queue_and_is_claimed_once() {
    let aws = LocalAws::new().await.unwrap();
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let key = "аудит 1/запись ё+plus.ogg";
    let meta = HashMap::from([("scenario".to_owned(), "design".to_owned())]);
    let etag = aws
        .s3
        .put(
            &aws.bucket,
            key,
            ByteStream::from_static(b"OggS fake"),
            "audio/ogg",
            &meta,
        )
        .await
        .unwrap();

    let bodies = aws.drain(&aws.transcribe, 10).await.unwrap();
    let parsed: Vec<Notification> = bodies
        .iter()
        .map(|b| parse_notification(b).unwrap())
        .collect();

    // The configuration's test event first, then the object.
    assert_eq!(parsed[0], Notification::Test);
    let Notification::Objects(objects) = &parsed[1] else {
        panic!("{parsed:?}")
    };
    assert_eq!(objects[0].key, key);
    assert_eq!(objects[0].etag, etag);
    assert_eq!(objects[0].bucket, aws.bucket);

    let head = aws.s3.head(&aws.bucket, key).await.unwrap();
    assert_eq!(
        head.metadata.get("scenario").map(String::as_str),
        Some("design")
    );
    assert_eq!(head.size, 9);

    let id = ObjectIdentity {
        bucket: objects[0].bucket.clone(),
        key: objects[0].key.clone(),
        etag: objects[0].etag.clone(),
        version_id: objects[0].version_id.clone(),
    };
    let lease = Duration::from_secs(60);
    let first = recording::claim(&conn, &id, "w1", lease, 3).await.unwrap();
    let duplicate = recording::claim(&conn, &id, "w2", lease, 3).await.unwrap();
    assert!(matches!(first, Claim::Claimed { .. }), "{first:?}");
    assert!(matches!(duplicate, Claim::Busy { .. }), "{duplicate:?}");
}

#[tokio::test]
async fn downloads_stream_to_a_file_and_stop_at_the_size_limit() {
    let aws = LocalAws::new().await.unwrap();
    let body = vec![7u8; 300_000];
    aws.s3
        .put(
            &aws.bucket,
            "big.wav",
            ByteStream::from(body.clone()),
            "audio/wav",
            &HashMap::new(),
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(vox_tests::unique_name("dl"));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("big.wav");

    let n = aws
        .s3
        .download_to(&aws.bucket, "big.wav", &dest, 1_000_000)
        .await
        .unwrap();
    let too_big = aws
        .s3
        .download_to(&aws.bucket, "big.wav", &dest, 100_000)
        .await
        .unwrap_err();
    let missing = aws
        .s3
        .download_to(&aws.bucket, "nope.wav", &dest, 10)
        .await
        .unwrap_err();

    assert_eq!(n, 300_000);
    assert!(
        too_big.to_string().contains("over the 100000 byte limit"),
        "{too_big}"
    );
    assert_eq!(
        missing.to_string(),
        format!("S3 object s3://{}/nope.wav does not exist", aws.bucket)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
