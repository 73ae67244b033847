use std::time::Duration;

use common::db::recording::{self, Claim, ObjectIdentity};
use common::db::transcription::UncoveredSpeech;
use serde_json::json;
use vox_tests::TestDb;

fn object(key: &str) -> ObjectIdentity {
    ObjectIdentity {
        bucket: "audio".into(),
        key: key.into(),
        etag: "e1".into(),
        version_id: String::new(),
    }
}

const LEASE: Duration = Duration::from_secs(600);

#[tokio::test]
async fn a_first_claim_creates_the_recording_and_a_second_worker_is_told_to_wait() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let first = recording::claim(&conn, &object("a.ogg"), "w1", LEASE, 5)
        .await
        .unwrap();
    let second = recording::claim(&conn, &object("a.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();

    let Claim::Claimed {
        recording_id,
        attempts,
        ..
    } = first
    else {
        panic!("{first:?}")
    };
    assert_eq!(attempts, 1);
    assert!(
        matches!(second, Claim::Busy { recording_id: id, .. } if id == recording_id),
        "{second:?}"
    );
    let row = recording::get(&conn, recording_id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("transcribing", 1));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_counts_an_attempt() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    recording::claim(&conn, &object("a.ogg"), "w1", Duration::from_millis(1), 5)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let taken = recording::claim(&conn, &object("a.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();

    assert!(
        matches!(taken, Claim::Claimed { attempts: 2, .. }),
        "{taken:?}"
    );
    let Claim::Claimed { recording_id, .. } = taken else {
        unreachable!()
    };
    // The first worker's progress reports now fail: it must stop.
    assert!(
        !recording::report_progress(&conn, recording_id, "w1", "x", 0.5, LEASE)
            .await
            .unwrap()
    );
    assert!(
        recording::report_progress(&conn, recording_id, "w2", "window 1/3", 0.33, LEASE)
            .await
            .unwrap()
    );
    let row = recording::get(&conn, recording_id).await.unwrap().unwrap();
    assert_eq!(row.stage.as_deref(), Some("window 1/3"));
}

#[tokio::test]
async fn a_finished_recording_is_done_and_a_failed_one_keeps_its_reason() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let Claim::Claimed {
        recording_id: done, ..
    } = recording::claim(&conn, &object("done.ogg"), "w1", LEASE, 5)
        .await
        .unwrap()
    else {
        panic!()
    };
    recording::finish_transcription(&conn, done, "w1")
        .await
        .unwrap();
    let Claim::Claimed {
        recording_id: bad, ..
    } = recording::claim(&conn, &object("bad.ogg"), "w1", LEASE, 5)
        .await
        .unwrap()
    else {
        panic!()
    };
    recording::fail(
        &conn,
        bad,
        "w1",
        "the file is not audio (it looks like text)",
    )
    .await
    .unwrap();

    let again = recording::claim(&conn, &object("done.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();
    let failed = recording::claim(&conn, &object("bad.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();

    assert_eq!(again, Claim::Done { recording_id: done });
    assert_eq!(
        failed,
        Claim::Failed {
            recording_id: bad,
            reason: "the file is not audio (it looks like text)".into()
        }
    );
    // Finishing needs the lease.
    let err = recording::finish_transcription(&conn, done, "w1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease"), "{err}");
}

#[tokio::test]
async fn a_recording_that_keeps_failing_is_given_up_after_max_attempts() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    for _ in 0..2 {
        let c = recording::claim(&conn, &object("loop.ogg"), "w", Duration::from_millis(1), 2)
            .await
            .unwrap();
        assert!(matches!(c, Claim::Claimed { .. }), "{c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let third = recording::claim(&conn, &object("loop.ogg"), "w", LEASE, 2)
        .await
        .unwrap();

    assert!(
        matches!(&third, Claim::Failed { reason, .. } if reason == "gave up after 2 attempts"),
        "{third:?}"
    );
}

#[tokio::test]
async fn an_upload_intent_is_adopted_with_its_metadata() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let intent: i64 = conn
        .query_one(
            "INSERT INTO recording (bucket, object_key, status, metadata)
             VALUES ('audio', 'up.ogg', 'awaiting_upload', '{\"scenario\": \"design\"}')
             RETURNING recording_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let claim = recording::claim(&conn, &object("up.ogg"), "w", LEASE, 5)
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
    assert_eq!(recording_id, intent);
    assert_eq!(metadata, json!({"scenario": "design"}));
    // Object metadata does not overwrite what the user confirmed.
    recording::set_object_info(
        &conn,
        intent,
        1234,
        Some("audio/ogg"),
        &json!({"scenario": "interview"}),
    )
    .await
    .unwrap();
    let row = recording::get(&conn, intent).await.unwrap().unwrap();
    assert_eq!(
        (row.metadata, row.size_bytes, row.etag),
        (json!({"scenario": "design"}), Some(1234), "e1".into())
    );
}

#[tokio::test]
async fn two_workers_racing_for_one_recording_get_one_claim() {
    let db = TestDb::new().await.unwrap();
    let (a, b) = (db.pool.get().await.unwrap(), db.pool.get().await.unwrap());
    let obj = object("race.ogg");

    let (ra, rb) = tokio::join!(
        recording::claim(&a, &obj, "a", LEASE, 5),
        recording::claim(&b, &obj, "b", LEASE, 5)
    );

    let claims = [ra.unwrap(), rb.unwrap()];
    let won = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .count();
    let busy = claims
        .iter()
        .filter(|c| matches!(c, Claim::Busy { .. }))
        .count();
    assert_eq!((won, busy), (1, 1), "{claims:?}");
    let n: i64 = a
        .query_one("SELECT count(*) FROM recording", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn saved_windows_come_back_in_order_and_only_the_lease_holder_saves() {
    use common::db::recording::SavedWindow;
    use common::db::transcription::Segment;
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let Claim::Claimed { recording_id, .. } =
        recording::claim(&conn, &object("w.ogg"), "w1", LEASE, 5)
            .await
            .unwrap()
    else {
        panic!()
    };
    let window = |seq: i32, start_ms: i64| SavedWindow {
        seq,
        start_ms,
        end_ms: start_ms + 30_000,
        segments: vec![Segment {
            start_ms,
            end_ms: start_ms + 4_000,
            text: format!("окно {seq}"),
            speaker: None,
            ..Default::default()
        }],
        language: Some("ru".into()),
        speech_ms: Some(20_000),
        // What the engine could not cover survives a redelivery as the text does.
        uncovered: vec![UncoveredSpeech {
            start_ms: start_ms + 9_000,
            end_ms: start_ms + 11_500,
        }],
    };

    assert!(
        recording::save_window(&conn, recording_id, "w1", &window(1, 30_000))
            .await
            .unwrap()
    );
    assert!(
        recording::save_window(&conn, recording_id, "w1", &window(0, 0))
            .await
            .unwrap()
    );
    assert!(
        !recording::save_window(&conn, recording_id, "intruder", &window(2, 60_000))
            .await
            .unwrap()
    );
    let saved = recording::saved_windows(&conn, recording_id).await.unwrap();

    assert_eq!(saved, vec![window(0, 0), window(1, 30_000)]);
    // Releasing the lease lets the next delivery take over at once, and resume from here.
    recording::release(&conn, recording_id, "w1").await.unwrap();
    let next = recording::claim(&conn, &object("w.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();
    assert!(
        matches!(next, Claim::Claimed { attempts: 2, .. }),
        "{next:?}"
    );
    recording::clear_windows(&conn, recording_id).await.unwrap();
    assert!(
        recording::saved_windows(&conn, recording_id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A TCP proxy to the test server whose connections can be cut silently, as a network that
/// drops them does: bytes stop flowing, nothing is closed, and a client waits for ever.
/// Connections opened after the cut pass.
struct SilentCut {
    port: u16,
    generation: tokio::sync::watch::Sender<u64>,
}

impl SilentCut {
    async fn start(target: (String, u16)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let cuts = generation.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                let born = *cut.borrow();
                let target = target.clone();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // The borrow `wait_for` returns is not `Send`: drop it at once.
                        _ = async { cut.wait_for(|g| *g > born).await.is_ok() } => {
                            // Hold both ends open and forward nothing.
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Self { port, generation }
    }

    fn cut_open_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Issue 14, item 3: the database dropped the connection during the work, and the lease
/// release ran on another dead pooled connection with its error ignored, so the lease stayed
/// until it expired. The release now retries on fresh connections.
#[tokio::test]
async fn a_lease_is_released_when_the_pooled_connection_died_silently() {
    use common::db::{DbConfig, PgPool, Retry};
    use tokio_postgres::config::Host;

    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let Claim::Claimed { recording_id, .. } =
        recording::claim(&conn, &object("cut.ogg"), "w1", LEASE, 5)
            .await
            .unwrap()
    else {
        panic!()
    };
    let Host::Tcp(host) = db.cfg.pg.get_hosts()[0].clone() else {
        panic!("the test server is reached over TCP")
    };
    let proxy = SilentCut::start((host, db.cfg.pg.get_ports()[0])).await;
    let mut pg = tokio_postgres::Config::new();
    pg.host("127.0.0.1")
        .port(proxy.port)
        .user(db.cfg.pg.get_user().unwrap())
        .dbname(db.cfg.dbname())
        .ssl_mode(db.cfg.pg.get_ssl_mode());
    if let Some(password) = db.cfg.pg.get_password() {
        pg.password(password);
    }
    let worker_pool = PgPool::new(&DbConfig {
        pg,
        pool_size: 1,
        ..db.cfg.clone()
    })
    .unwrap();
    // The worker's pool holds one idle connection when the network drops it.
    common::db::ping(&worker_pool.get().await.unwrap())
        .await
        .unwrap();
    proxy.cut_open_connections();

    // What the release did before: the pooled connection, once, hangs.
    let once = tokio::time::timeout(Duration::from_secs(1), async {
        let conn = worker_pool.get().await.unwrap();
        recording::release(&conn, recording_id, "w1").await
    })
    .await;
    assert!(once.is_err(), "a silently dropped connection hangs");

    let started = std::time::Instant::now();
    worker_pool
        .retrying(Retry::LEASE_RELEASE, |conn| async move {
            recording::release(&*conn, recording_id, "w1").await
        })
        .await
        .unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let expired: bool = conn
        .query_one(
            "SELECT lease_until <= now() FROM recording WHERE recording_id = $1",
            &[&recording_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(expired, "the lease was given up");
}

/// A live worker keeps its short lease with a heartbeat, so no redelivery takes the
/// recording from it; once another worker has taken an expired lease over, the heartbeat
/// says the lease is lost and extends nothing (issue 14, item 1).
#[tokio::test]
async fn a_heartbeat_keeps_a_short_lease_alive_and_notices_a_takeover() {
    use common::db::lease::{Heartbeat, Leased};

    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    // Long enough that a beat delayed by a loaded machine still lands in time.
    let lease = Duration::from_secs(2);
    let Claim::Claimed { recording_id, .. } =
        recording::claim(&conn, &object("hb.ogg"), "w1", lease, 5)
            .await
            .unwrap()
    else {
        panic!("a new recording is claimed")
    };
    let heartbeat = Heartbeat::start(
        db.pool.clone(),
        Leased::Recording(recording_id),
        "w1".into(),
        lease,
    );
    // Three lease lengths later, the lease still holds: every claim attempt is told to wait.
    tokio::time::sleep(lease * 3).await;
    let claim = recording::claim(&conn, &object("hb.ogg"), "w2", lease, 5)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Busy { .. }), "{claim:?}");
    assert!(!heartbeat.lost());

    // A worker that stopped beating: its lease runs out and is taken over.
    drop(heartbeat);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let claim = recording::claim(&conn, &object("hb.ogg"), "w2", LEASE, 5)
        .await
        .unwrap();
    assert!(
        matches!(claim, Claim::Claimed { attempts: 2, .. }),
        "{claim:?}"
    );

    // The first worker's heartbeat, had it survived, finds the lease gone.
    let stale = Heartbeat::start(
        db.pool.clone(),
        Leased::Recording(recording_id),
        "w1".into(),
        lease,
    );
    tokio::time::sleep(lease).await;
    assert!(stale.lost());
    let owner: String = conn
        .query_one(
            "SELECT lease_owner FROM recording WHERE recording_id = $1",
            &[&recording_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "w2");
}
