//! The local SQS event source mapping (`vox run`) against the emulator: partial batch
//! failures, batch sizes, dead-letter queues, FIFO order, `--until-idle`, SQS outages, and the
//! real functions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use common::analysis::engines::OfflineReports;
use serde_json::json;
use vox::event_source::{Binding, DeadLetterDepth, DeadLettered, Mapping, MappingError, Options};
use vox_tests::TestDb;
use vox_tests::aws::{LocalAws, moto_url};

use super::analyze::engines;
use super::transcribe::{clip, stage as transcribe_stage};

/// Every receive of a test, (body, ApproximateReceiveCount), in order.
type Seen = Arc<Mutex<Vec<(String, u32)>>>;

async fn client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&common::aws::local(&moto_url()).await)
}

/// A queue of its own (FIFO when `name` ends in `.fifo`), with a dead-letter queue after
/// `max_receives` when given.
async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: u32,
    max_receives: Option<u32>,
) -> (String, Option<String>) {
    let suffix = vox_tests::unique_name("q").replace('_', "-");
    let fifo = name.ends_with(".fifo");
    let base = name.trim_end_matches(".fifo");
    let ext = if fifo { ".fifo" } else { "" };
    let create = |queue_name: String| {
        let mut req = sqs.create_queue().queue_name(queue_name);
        if fifo {
            req = req
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
        }
        req
    };
    let dlq = match max_receives {
        Some(_) => Some(
            create(format!("{base}-{suffix}-dlq{ext}"))
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned(),
        ),
        None => None,
    };
    let mut req = create(format!("{base}-{suffix}{ext}")).attributes(
        QueueAttributeName::VisibilityTimeout,
        visibility.to_string(),
    );
    if let (Some(max), Some(dlq)) = (max_receives, &dlq) {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": max.to_string()}).to_string(),
        );
    }
    let url = req.send().await.unwrap().queue_url().unwrap().to_owned();
    (url, dlq)
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[&str]) {
    for body in bodies {
        let mut req = sqs.send_message().queue_url(url).message_body(*body);
        if url.ends_with(".fifo") {
            req = req.message_group_id("g");
        }
        req.send().await.unwrap();
    }
}

async fn bodies_on(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect()
}

/// A handler that records what it sees and fails the messages whose body starts with "bad".
fn failing_bad(seen: Seen) -> impl Fn(SqsEvent) -> std::future::Ready<SqsBatchResponse> {
    move |event: SqsEvent| {
        let mut response = SqsBatchResponse::default();
        for m in event.records {
            let body = m.body.clone().unwrap_or_default();
            let count = m.attributes["ApproximateReceiveCount"].parse().unwrap();
            seen.lock().unwrap().push((body.clone(), count));
            if body.starts_with("bad") {
                response.add_failure(m.message_id.unwrap());
            }
        }
        std::future::ready(response)
    }
}

/// A binding with batches of up to 10 messages (the most SQS hands out).
fn binding(
    name: &str,
    url: &str,
    handler: impl vox::event_source::BatchHandler + 'static,
) -> Binding {
    Binding {
        name: name.into(),
        queue_url: url.into(),
        batch_size: 10,
        handler: Arc::new(handler),
    }
}

/// A handler that records the size of every batch and succeeds.
fn counting(
    sizes: Arc<Mutex<Vec<usize>>>,
) -> impl Fn(SqsEvent) -> std::future::Ready<SqsBatchResponse> {
    move |event: SqsEvent| {
        sizes.lock().unwrap().push(event.records.len());
        std::future::ready(SqsBatchResponse::default())
    }
}

/// A TCP proxy in front of the emulator that can be taken down: while down it cuts its open
/// connections and closes new ones at once, so SQS calls through it fail as they do when the
/// endpoint is unreachable.
struct Outage {
    url: String,
    up: tokio::sync::watch::Sender<bool>,
    /// Connections closed because the proxy was down.
    cut: Arc<AtomicUsize>,
}

impl Outage {
    async fn proxy() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = moto_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let (up, _) = tokio::sync::watch::channel(true);
        let cut = Arc::new(AtomicUsize::new(0));
        let (state, counter) = (up.subscribe(), cut.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    continue; // dropped: closed at once
                }
                let (mut state, counter, target) = (state.clone(), counter.clone(), target.clone());
                tokio::spawn(async move {
                    let mut inbound = inbound;
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        Self { url, up, cut }
    }

    /// An SQS client that goes through the proxy.
    async fn client(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&common::aws::local(&self.url).await)
    }

    fn down(&self) {
        self.up.send_replace(false);
    }

    /// Brings the proxy back after `after`.
    fn up_after(&self, after: Duration) {
        let up = self.up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            up.send_replace(true);
        });
    }

    fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

fn quick() -> Options {
    Options {
        wait: Duration::from_secs(1),
        idle_check: Duration::from_millis(200),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_partial_batch_failure_redelivers_only_the_failed_message() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "partial", 1, Some(5)).await;
    send(&sqs, &url, &["ok-1", "bad-1", "ok-2"]).await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("partial", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    let mut first = Vec::new();
    while first.len() < 3 {
        let Some(report) = mapping
            .poll_once("partial", Duration::from_secs(1))
            .await
            .unwrap()
        else {
            continue;
        };
        first.extend(report.failed.iter().map(|_| "failed"));
        first.extend(report.succeeded.iter().map(|_| "ok"));
    }
    first.sort();
    assert_eq!(first, ["failed", "ok", "ok"]);
    assert_eq!(mapping.depth("partial").await.unwrap(), 1);

    // After the visibility timeout only the failed message comes back.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = mapping
        .poll_once("partial", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.messages, 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.last().unwrap(), &("bad-1".to_owned(), 2));
    assert_eq!(seen.iter().filter(|(b, _)| b.starts_with("ok")).count(), 2);
}

#[tokio::test]
async fn nothing_is_deleted_before_its_handler_succeeded() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "inflight", 30, Some(5)).await;
    send(&sqs, &url, &["a", "b"]).await;
    // While the handler runs, every message of the batch is still on the queue (in flight).
    let during = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let (sqs, url, during) = (sqs.clone(), url.clone(), during.clone());
        move |event: SqsEvent| {
            let (sqs, url, during) = (sqs.clone(), url.clone(), during.clone());
            async move {
                let depth = vox::event_source::depth(&sqs, &url).await.unwrap();
                during
                    .lock()
                    .unwrap()
                    .push((event.records.len() as u64, depth));
                SqsBatchResponse::default()
            }
        }
    };
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("inflight", &url, handler)],
        quick(),
    )
    .await
    .unwrap();
    let summary = mapping.run(true, &|_| {}).await.unwrap();

    assert_eq!(summary.succeeded, 2);
    for (batch, depth) in during.lock().unwrap().iter() {
        assert!(
            depth >= batch,
            "{depth} messages on the queue during a batch of {batch}"
        );
    }
    assert_eq!(mapping.depth("inflight").await.unwrap(), 0);
}

#[tokio::test]
async fn a_poison_message_lands_in_the_dead_letter_queue_after_max_receives() {
    let sqs = client().await;
    let (url, dlq) = queue(&sqs, "poison", 1, Some(2)).await;
    let dlq = dlq.unwrap();
    send(&sqs, &url, &["bad-poison", "ok"]).await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("poison", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    let summary = tokio::time::timeout(Duration::from_secs(60), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert_eq!(
        summary.dead_lettered,
        [DeadLettered {
            queue: "poison".into(),
            dead_letter_queue: dlq.clone(),
            count: 1
        }]
    );
    assert_eq!(
        summary.dead_letter_at_end,
        [DeadLetterDepth {
            queue: "poison".into(),
            dead_letter_queue: dlq.clone(),
            count: 1,
            before: 0
        }]
    );
    assert_eq!(bodies_on(&sqs, &dlq).await, ["bad-poison"]);
    let poison: Vec<u32> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(b, _)| b == "bad-poison")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(poison, [1, 2], "handled once per allowed receive");
}

#[tokio::test]
async fn without_a_redrive_policy_the_mapping_moves_poison_after_max_receives() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "noredrive", 1, None).await;
    let name = url.rsplit('/').next().unwrap().to_owned();
    let dlq = sqs
        .create_queue()
        .queue_name(vox::event_source::dead_letter_name(&name))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    send(&sqs, &url, &["bad-x"]).await;
    let options = Options {
        max_receives: Some(2),
        ..quick()
    };
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("noredrive", &url, failing_bad(seen.clone()))],
        options,
    )
    .await
    .unwrap();

    let summary = tokio::time::timeout(Duration::from_secs(60), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert_eq!(summary.dead_lettered.len(), 1, "{summary:?}");
    assert_eq!(bodies_on(&sqs, &dlq).await, ["bad-x"]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn in_a_fifo_queue_what_follows_a_failure_in_its_group_waits() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "order.fifo", 1, Some(5)).await;
    send(&sqs, &url, &["bad-first", "second"]).await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("order", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    let report = mapping
        .poll_once("order", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(report.messages, 2);
    assert_eq!(
        report.failed.len(),
        2,
        "the second must not overtake the first"
    );
    assert_eq!(mapping.depth("order").await.unwrap(), 2);
}

#[tokio::test]
async fn a_binding_with_batch_size_one_gets_one_message_per_batch() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "single", 5, Some(3)).await;
    send(&sqs, &url, &["1", "2", "3"]).await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let single = Binding {
        batch_size: 1,
        ..binding("single", &url, counting(sizes.clone()))
    };
    let mapping = Mapping::new(sqs.clone(), vec![single], quick())
        .await
        .unwrap();

    let summary = tokio::time::timeout(Duration::from_secs(60), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert_eq!(*sizes.lock().unwrap(), [1, 1, 1]);
    assert_eq!((summary.batches, summary.succeeded), (3, 3));
    assert_eq!(mapping.describe()[0].batch_size, 1);
}

#[tokio::test]
async fn the_batch_size_option_overrides_every_binding() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "capped", 5, Some(3)).await;
    send(&sqs, &url, &["1", "2", "3", "4", "5"]).await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let options = Options {
        batch_size: Some(2),
        ..quick()
    };
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("capped", &url, counting(sizes.clone()))],
        options,
    )
    .await
    .unwrap();

    tokio::time::timeout(Duration::from_secs(60), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|n| *n <= 2), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 5);
    assert_eq!(mapping.describe()[0].batch_size, 2);
}

#[tokio::test]
async fn dead_letters_from_before_the_run_are_reported_at_its_end() {
    let sqs = client().await;
    let (url, dlq) = queue(&sqs, "leftover", 1, Some(2)).await;
    let dlq = dlq.unwrap();
    send(&sqs, &dlq, &["bad-from-yesterday"]).await;
    send(&sqs, &url, &["ok"]).await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![binding("leftover", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    let summary = tokio::time::timeout(Duration::from_secs(60), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert_eq!(summary.succeeded, 1);
    assert!(
        summary.dead_lettered.is_empty(),
        "nothing landed during the run: {summary:?}"
    );
    assert_eq!(
        summary.dead_letter_at_end,
        [DeadLetterDepth {
            queue: "leftover".into(),
            dead_letter_queue: dlq,
            count: 1,
            before: 1
        }]
    );
}

#[tokio::test]
async fn the_idle_check_rides_out_a_short_sqs_outage() {
    let sqs = client().await;
    // No dead-letter queue: the idle check is the first call the run makes.
    let (url, _) = queue(&sqs, "outage", 5, None).await;
    send(&sqs, &url, &["1", "2"]).await;
    let outage = Outage::proxy().await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        outage.client().await,
        vec![binding("outage", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    outage.down();
    outage.up_after(Duration::from_secs(3));
    let summary = tokio::time::timeout(Duration::from_secs(90), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert!(outage.cut() > 0, "the run met the outage");
    assert_eq!(summary.succeeded, 2);
    assert_eq!(vox::event_source::depth(&sqs, &url).await.unwrap(), 0);
}

#[tokio::test]
async fn the_dead_letter_depths_at_the_start_ride_out_a_short_sqs_outage() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "outage-dlq", 5, Some(3)).await;
    send(&sqs, &url, &["1"]).await;
    let outage = Outage::proxy().await;
    let seen = Seen::default();
    let mapping = Mapping::new(
        outage.client().await,
        vec![binding("outage", &url, failing_bad(seen.clone()))],
        quick(),
    )
    .await
    .unwrap();

    outage.down();
    outage.up_after(Duration::from_secs(3));
    let summary = tokio::time::timeout(Duration::from_secs(90), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    assert!(outage.cut() > 0, "the run met the outage");
    assert_eq!(summary.succeeded, 1);
    assert!(summary.dead_letter_at_end.is_empty(), "{summary:?}");
}

#[tokio::test]
async fn a_sustained_sqs_outage_fails_the_run_naming_queue_operation_and_duration() {
    let sqs = client().await;
    let (url, _) = queue(&sqs, "gone", 5, None).await;
    let outage = Outage::proxy().await;
    let options = Options {
        outage_limit: Duration::from_secs(2),
        ..quick()
    };
    let seen = Seen::default();
    let mapping = Mapping::new(
        outage.client().await,
        vec![binding("gone", &url, failing_bad(seen.clone()))],
        options,
    )
    .await
    .unwrap();

    outage.down();
    let start = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(90), mapping.run(true, &|_| {}))
        .await
        .expect("the run gives up")
        .unwrap_err();

    let MappingError::Outage {
        operation,
        queue,
        failing_for,
        ..
    } = &e
    else {
        panic!("not an outage: {e:?}");
    };
    assert_eq!(
        (*operation, queue.as_str()),
        ("GetQueueAttributes", url.as_str())
    );
    assert!(*failing_for >= Duration::from_secs(2), "{failing_for:?}");
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(
        e.to_string().starts_with(&format!(
            "SQS GetQueueAttributes on {url} has been failing for "
        )),
        "{e}"
    );
}

#[tokio::test]
async fn until_idle_ends_once_a_chain_of_queues_is_drained() {
    let sqs = client().await;
    let (first, _) = queue(&sqs, "first", 5, Some(3)).await;
    let (second, _) = queue(&sqs, "second", 5, Some(3)).await;
    send(&sqs, &first, &["1", "2", "3"]).await;
    // The first function sends each message on to the second queue, as transcribe does.
    let forward = {
        let (sqs, second) = (sqs.clone(), second.clone());
        move |event: SqsEvent| {
            let (sqs, second) = (sqs.clone(), second.clone());
            async move {
                for m in event.records {
                    send(&sqs, &second, &[m.body.as_deref().unwrap()]).await;
                }
                SqsBatchResponse::default()
            }
        }
    };
    let seen = Seen::default();
    let mapping = Mapping::new(
        sqs.clone(),
        vec![
            binding("first", &first, forward),
            binding("second", &second, failing_bad(seen.clone())),
        ],
        quick(),
    )
    .await
    .unwrap();

    let lines = Mutex::new(Vec::new());
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        mapping.run(true, &|r| lines.lock().unwrap().push(r.queue.clone())),
    )
    .await
    .expect("--until-idle ends")
    .unwrap();

    assert_eq!(summary.succeeded, 6);
    assert!(summary.dead_lettered.is_empty());
    assert!(
        summary.dead_letter_at_end.is_empty(),
        "empty dead-letter queues: {summary:?}"
    );
    let mut got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| b.clone())
        .collect();
    got.sort();
    assert_eq!(got, ["1", "2", "3"]);
    assert_eq!(mapping.depth("first").await.unwrap(), 0);
    assert_eq!(mapping.depth("second").await.unwrap(), 0);
    assert!(lines.lock().unwrap().contains(&"second".to_owned()));
}

#[tokio::test]
async fn an_upload_flows_through_the_real_functions_to_stored_reports() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let metadata = HashMap::from([
        ("scenario".to_owned(), "design".to_owned()),
        ("building".to_owned(), "hotel".to_owned()),
        ("report-types".to_owned(), "structured-audit".to_owned()),
    ]);
    aws.s3
        .put_file(
            &aws.bucket,
            "recordings/ru_06.ogg",
            &clip("ru_06.ogg"),
            "audio/ogg",
            &metadata,
        )
        .await
        .unwrap();
    let transcriber = Arc::new(transcribe_stage(&db, &aws, "run-t"));
    let (embedder, engine) = engines();
    let analyzer = Arc::new(common::analysis::stage::Stage {
        pool: db.pool.clone(),
        engine: Arc::new(OfflineReports(engine)),
        embedder,
        index: Some(aws.index.clone()),
        settings: common::analysis::stage::Settings::default(),
        worker: "run-a".into(),
    });
    let transcribe_handler = move |event: SqsEvent| {
        let stage = Arc::clone(&transcriber);
        async move { transcribe::handle_sqs(&stage, event, super::transcribe::deadline()).await }
    };
    let analyze_handler = move |event: SqsEvent| {
        let stage = Arc::clone(&analyzer);
        async move { analyze::handle_sqs(&stage, event).await }
    };
    let sqs = client().await;
    let mapping = Mapping::new(
        sqs,
        vec![
            binding("transcribe", aws.transcribe.url(), transcribe_handler),
            binding("analyze", aws.analyze.url(), analyze_handler),
        ],
        quick(),
    )
    .await
    .unwrap();

    let summary = tokio::time::timeout(Duration::from_secs(300), mapping.run(true, &|_| {}))
        .await
        .expect("--until-idle ends")
        .unwrap();

    // The s3:TestEvent, the object's notification, one analysis job.
    assert_eq!(summary.succeeded, 3, "{summary:?}");
    assert_eq!(summary.failed, 0);
    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT r.status, (SELECT count(*) FROM audit) FROM recording r",
            &[],
        )
        .await
        .unwrap();
    let (status, audits): (String, i64) = (row.get(0), row.get(1));
    assert_eq!(status, "done");
    assert!(audits >= 1, "{audits}");
    assert_eq!(aws.drain(&aws.index, 10).await.unwrap().len(), 1);
}
