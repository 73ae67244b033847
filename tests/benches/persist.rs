//! Persist throughput against pgbench on the same server.
//!
//! Persists realistic audits (a 60,000-character transcript, two 10,000-character narrative
//! reports plus metrics, 3 zones) with 1 and 4 concurrent clients for `VOX_BENCH_SECONDS`
//! (default 10) each, then runs pgbench's TPC-B-like script with the same client counts and
//! duration, and prints audits/s, pgbench TPS and their ratio.
//!
//! Run: `cargo bench -p vox-tests --bench persist`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use common::db::audit::{self, AuditSubmission, ReportBody, ReportInput, TranscriptionSource};
use common::db::transcription::NewTranscription;
use common::db::{DbConfig, PgPool};
use common::domain::AuditMeta;
use vox_tests::TestDb;

const WORDS: &[&str] = &[
    "лобби",
    "освещение",
    "мебель",
    "акустика",
    "материалы",
    "навигация",
    "впечатление",
    "рекомендация",
    "фасад",
    "ресепшн",
    "номер",
    "ресторан",
    "спа",
    "бассейн",
    "текстиль",
    "цвет",
    "тёплый",
    "холодный",
    "шумно",
    "уютно",
    "стиль",
    "современный",
    "классический",
    "гость",
    "персонал",
    "цена",
    "завтрак",
    "вид",
    "окно",
    "кресло",
    "ковёр",
    "люстра",
    "запах",
    "чистота",
    "указатели",
    "лифт",
    "коридор",
    "терраса",
    "зелень",
    "дерево",
];

/// Deterministic text of about `chars` characters (a small LCG, so runs are comparable).
fn text(seed: u64, chars: usize) -> String {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut out = String::with_capacity(chars * 2);
    let mut in_sentence = 0;
    let mut count = 0;
    while count < chars {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let word = WORDS[(state >> 33) as usize % WORDS.len()];
        out.push_str(word);
        count += word.chars().count() + 1;
        in_sentence += 1;
        if in_sentence > 8 + (state >> 60) as usize {
            out.push_str(". ");
            count += 1;
            in_sentence = 0;
        } else {
            out.push(' ');
        }
    }
    out.chars().take(chars).collect()
}

fn submission(n: u64) -> AuditSubmission {
    let transcript = text(n, 60_000);
    let narrative = |pass: i16, seed: u64| ReportInput {
        pass,
        title: Some(format!("Раздел {pass}")),
        body: ReportBody::Narrative(text(seed, 10_000)),
        prompt_id: None,
        engine: Some("bench".into()),
        quotes: vec![],
    };
    AuditSubmission {
        scenario: "design".into(),
        report_type: "structured-audit".into(),
        building: "restaurant".into(),
        meta: AuditMeta {
            date: NaiveDate::from_ymd_opt(2026, 1, 1 + (n % 28) as u32).unwrap_or_default(),
            employee: Some(format!("Сотрудник {}", n % 10)),
            place: Some(format!("Ресторан {}", n % 20)),
            zones: vec!["Зал".into(), "Бар".into(), format!("Терраса {}", n % 3)],
            city: Some(["Казань", "Москва", "Сочи"][(n % 3) as usize].into()),
            client: None,
        },
        place_building: None,
        transcription: TranscriptionSource::New(Box::new(NewTranscription {
            text: transcript,
            audio_file_name: format!("bench/{n}.ogg"),
            number_audio: Some(n as i32),
            recording_id: None,
            language: Some("ru".into()),
            audio_seconds: Some(1200.0),
            model_id: Some("bench".into()),
            date: None,
            // The workload: the transcript itself; its segments are stored by
            // the transcribe stage in a transaction of their own.
            segments: Vec::new(),
            coverage: None,
            speakers: None,
        })),
        reports: vec![
            narrative(1, n * 3 + 1),
            narrative(2, n * 3 + 2),
            ReportInput {
                pass: 3,
                title: Some("Метрики".into()),
                body: ReportBody::Metrics(
                    common::metrics::example("structured-audit", "restaurant")
                        .expect("structured-audit has a metrics schema"),
                ),
                prompt_id: None,
                engine: Some("bench".into()),
                quotes: vec![],
            },
        ],
        analysis_job_id: None,
    }
}

/// Distinct inputs made before the clock starts; each persist reuses one under a new file
/// name, so every audit stores a transcription of its own.
fn inputs() -> Vec<AuditSubmission> {
    (0..32).map(submission).collect()
}

async fn persist_rate(
    cfg: &DbConfig,
    inputs: &Arc<Vec<AuditSubmission>>,
    clients: usize,
    seconds: u64,
    run: &str,
) -> Result<f64> {
    let pool = Arc::new(PgPool::new(&DbConfig {
        pool_size: clients,
        ..cfg.clone()
    })?);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, inputs, run) = (Arc::clone(&pool), Arc::clone(inputs), run.to_owned());
            tokio::spawn(async move {
                let mut conn = pool.get().await?;
                let mut done = 0usize;
                while Instant::now() < deadline {
                    let mut next = inputs[(c * 7 + done) % inputs.len()].clone();
                    if let TranscriptionSource::New(t) = &mut next.transcription {
                        t.audio_file_name = format!("bench/{run}/{c}/{done}.ogg");
                    }
                    audit::persist(&mut conn, &next).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn pgbench(dbname: &str, clients: usize, seconds: u64) -> Result<f64> {
    let out = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-b", "tpcb-like"])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.to_string(),
            "-T",
            &seconds.to_string(),
        ])
        .arg(dbname)
        .output()
        .context("running pgbench (apt-get install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps line in pgbench output:\n{stdout}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::var("VOX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let db = TestDb::new().await?;
    let bench_db = TestDb::empty().await?;
    let init = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", "10"])
        .arg(bench_db.name())
        .output()
        .context("running pgbench -i")?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }

    println!(
        "persist benchmark: 60,000-char transcript, 2 x 10,000-char reports + metrics, 3 zones; {seconds} s per run"
    );
    println!(
        "{:>8} {:>12} {:>12} {:>8}",
        "clients", "audits/s", "pgbench tps", "ratio"
    );
    let inputs = Arc::new(inputs());
    for clients in [1usize, 4] {
        // Warm up connections and plans.
        persist_rate(&db.cfg, &inputs, clients, 1, &format!("warm{clients}")).await?;
        let rate =
            persist_rate(&db.cfg, &inputs, clients, seconds, &format!("run{clients}")).await?;
        let tps = pgbench(bench_db.name(), clients, seconds)?;
        println!("{clients:>8} {rate:>12.1} {tps:>12.1} {:>8.2}", rate / tps);
    }
    Ok(())
}
