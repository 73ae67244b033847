//! The HTTP API under load, and its cold start under a Lambda runtime emulator.
//!
//! Data: a database of its own with `VOX_BENCH_AUDITS` (default 10,000) narrative reports over
//! half as many recordings and transcripts (`VOX_BENCH_SEGMENTS`, default 150 segments each),
//! and `VOX_BENCH_CHUNKS` (default 100,000) chunks whose 512-d unit embeddings are clustered
//! around the real encoder's vectors of 200 report sentences (the chunk's text is its
//! sentence, half of them with a quote of the transcript), published as an index generation
//! (32 trees, as deployed) to a moto bucket.
//!
//! Load: the release `vox serve` with an analyst key under Debian's `wrk` (one thread,
//! `VOX_BENCH_CONNECTIONS`, default 8), `VOX_BENCH_WARMUP` seconds (default 3) discarded then
//! `VOX_BENCH_SECONDS` (default 15) measured, for `GET /audits?scenario=design&limit=20` and
//! `POST /search` with varied Russian queries (benches/api.lua; p95 comes from its `done`
//! hook), and `GET /`, the web console's page.
//!
//! Cold start: `cargo lambda watch --only-lambda-apis` (cargo-lambda from PyPI, in
//! `~/.cache/voxpersona/venv-cargo-lambda`, installed on first run) emulates the Lambda
//! runtime API and function URLs; a request is queued on the function URL, then the release
//! `api` binary is spawned, and the time from the spawn to the answer is measured
//! (`VOX_BENCH_COLD_RUNS`, default 5, median reported): without search (`VOX_SEARCH=off`),
//! with search but no index (the encoder load; no snapshot download), and once with the
//! snapshot download, for reference.
//!
//! `VOX_BENCH_PLAN_CACHE_MODE` (e.g. `force_generic_plan`) sets PostgreSQL's
//! `plan_cache_mode` on the bench database before the servers start (a diagnostic).
//!
//! Run: `cargo bench -p vox-tests --bench api`

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::db::chunk::encode_embedding;
use common::embed::{Embedder, UseEmbedder};
use common::index::publish::{Indexer, Outcome, Settings};
use vox_tests::TestDb;
use vox_tests::aws::{LocalAws, moto_url};

const DIMS: usize = 512;
const LIST_PATH: &str = "/audits?scenario=design&limit=20";
const CARGO_LAMBDA_VERSION: &str = "1.9.2";
/// Targets of the issue.
const LIST_P95_MS: f64 = 5.0;
const SEARCH_P95_MS: f64 = 25.0;
/// The web console's page (issue 18).
const SHELL_P95_MS: f64 = 5.0;
const COLD_START_MS: f64 = 50.0;

/// Places and rooms × what an auditor notes: 200 report sentences, the cluster centres.
const PLACES: [&str; 10] = [
    "В лобби",
    "В номере",
    "В ресторане",
    "На ресепшн",
    "В спа-зоне",
    "В баре",
    "В коридоре",
    "На террасе",
    "В конференц-зале",
    "У бассейна",
];
const NOTES: [&str; 20] = [
    "слишком холодный свет, гости называют его больничным",
    "долго ждали заселения, очередь не двигалась",
    "ночью шумно из-за вентиляции",
    "завтраки хвалят, но выбор выпечки маленький",
    "персонал не знает состава блюд",
    "нет понятной навигации к лифтам",
    "чувствуется запах сырости",
    "кресла неудобные и низкие",
    "вода прохладная, гости жалуются",
    "музыка играет слишком громко",
    "на столах остаётся грязная посуда",
    "вечером освещение слишком тусклое",
    "администратор вежлив и быстро решает вопросы",
    "кондиционер сломан уже несколько дней",
    "чисто и приятно пахнет",
    "счёт приносят через двадцать минут",
    "вид из окна на парковку разочаровывает",
    "мебель выглядит изношенной",
    "не хватает розеток у кровати",
    "гостей не приветствуют у входа",
];
/// What people say on the recordings (transcript segments, quoted by reports).
const SAYINGS: [&str; 24] = [
    "Свет здесь какой-то холодный, как в поликлинике",
    "Мы ждали минут сорок, пока нас заселят",
    "Ночью гудит вентиляция, невозможно уснуть",
    "Завтрак хороший, но круассаны заканчиваются к девяти",
    "Официант не смог сказать, есть ли в соусе орехи",
    "Лифты мы нашли только со второй попытки",
    "В коридоре пахнет сыростью",
    "В баре сидеть неудобно, кресла слишком низкие",
    "Вода в бассейне холодная",
    "Музыка такая громкая, что друг друга не слышно",
    "Посуду со столов долго не убирают",
    "Вечером в зале темно, меню не прочитать",
    "Администратор всё решил за пять минут",
    "Кондиционер не работает с понедельника",
    "В спа очень чисто, приятный запах",
    "Счёт пришлось ждать двадцать минут",
    "Из окна видно только парковку",
    "Диван потёртый, видно, что старый",
    "У кровати нет ни одной розетки",
    "На входе никто не поздоровался",
    "Персонал улыбается и помогает",
    "Номер убрали быстро и аккуратно",
    "Цены в баре завышены",
    "Парковка бесплатная, это удобно",
];

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

struct Figures {
    audits: i64,
    chunks: i64,
    segments: i64,
    generation: u64,
    snapshot_mib: f64,
    build_s: f64,
    serve_ready_s: f64,
    connections: usize,
    seconds: u64,
    plan_cache_mode: Option<String>,
    list: Wrk,
    list_bytes: usize,
    search: Wrk,
    shell: Wrk,
    cold: Vec<ColdStart>,
}

async fn run() -> Result<()> {
    let audits: i64 = env_or("VOX_BENCH_AUDITS", 10_000)?;
    let chunks: i64 = env_or("VOX_BENCH_CHUNKS", 100_000)?;
    let segments: i64 = env_or("VOX_BENCH_SEGMENTS", 150)?;
    let connections: usize = env_or("VOX_BENCH_CONNECTIONS", 8)?;
    let warmup: u64 = env_or("VOX_BENCH_WARMUP", 3)?;
    let seconds: u64 = env_or("VOX_BENCH_SECONDS", 15)?;
    let cold_runs: usize = env_or("VOX_BENCH_COLD_RUNS", 5)?;
    ensure!(
        audits >= 2 && chunks >= 1,
        "need at least 2 audits and 1 chunk"
    );

    check_wrk()?;
    let bins = build_binaries()?;
    let cargo_lambda = cargo_lambda()?;

    println!("api bench: {audits} audits, {chunks} chunks, {segments} segments a transcript");
    let db = TestDb::new().await?;
    let aws = LocalAws::new().await?;
    let t = Instant::now();
    let embedder = UseEmbedder::from_env().context("loading the sentence encoder")?;
    let model = embedder.model_id().to_owned();
    let sentences: Vec<String> = PLACES
        .iter()
        .flat_map(|p| NOTES.iter().map(move |n| format!("{p} {n}.")))
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let centres = embedder.embed(&refs)?;
    drop(embedder);
    fill_reports(&db, &aws.bucket, audits, segments, &sentences).await?;
    fill_chunks(&db, chunks, &sentences, &centres, &model).await?;
    let conn = db.pool.get().await?;
    let row = conn
        .query_one(
            "SELECT (SELECT count(*) FROM audit), (SELECT count(*) FROM chunk),
                    (SELECT count(*) FROM transcription_segment)",
            &[],
        )
        .await?;
    let (stored_audits, stored_chunks, stored_segments): (i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2));
    conn.batch_execute("VACUUM ANALYZE").await?;
    drop(conn);
    println!("data stored in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let indexer = Indexer::new(
        db.pool.clone(),
        aws.s3.clone(),
        Settings::new(aws.bucket.clone()),
    );
    let report = match indexer.run(true).await? {
        Outcome::Published(r) => r,
        other => bail!("the indexer published nothing: {other:?}"),
    };
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "index generation {} ({:.1} MiB) published in {build_s:.1} s",
        report.generation,
        report.size_bytes as f64 / (1024.0 * 1024.0)
    );

    // A diagnostic: `VOX_BENCH_PLAN_CACHE_MODE=force_generic_plan` shows what re-planning
    // the API's many-join statements on every execution costs.
    let plan_cache_mode = std::env::var("VOX_BENCH_PLAN_CACHE_MODE").ok();
    if let Some(mode) = &plan_cache_mode {
        ensure!(
            mode.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "VOX_BENCH_PLAN_CACHE_MODE={mode:?} is not a setting value"
        );
        let conn = db.pool.get().await?;
        conn.batch_execute(&format!(
            "ALTER DATABASE {} SET plan_cache_mode = {mode}",
            common::db::migrate::quote_ident(db.name())
        ))
        .await?;
    }

    let tmp = tempfile::tempdir()?;
    let env = ServerEnv {
        database_url: database_url(db.name()),
        bucket: aws.bucket.clone(),
        cache_dir: tmp.path().to_owned(),
    };
    let key = analyst_key(&bins.vox, &env)?;
    let port = free_port()?;
    let t = Instant::now();
    let log = std::fs::File::create(tmp.path().join("serve.log"))?;
    let mut serve = Command::new(&bins.vox);
    serve
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(log);
    env.apply(&mut serve, true);
    let _serve = Guard(serve.spawn().context("starting vox serve")?);
    let base = format!("http://127.0.0.1:{port}");
    let http = http_client()?;
    wait_ready(&http, &format!("{base}/health"), Duration::from_secs(300)).await?;
    let serve_ready_s = t.elapsed().as_secs_f64();

    // One of each first: both must answer 200, and search must read the snapshot.
    let auth = format!("Bearer {key}");
    let listing = http
        .get(format!("{base}{LIST_PATH}"))
        .header("Authorization", &auth)
        .send()
        .await?;
    ensure!(
        listing.status() == 200,
        "GET {LIST_PATH}: {}",
        listing.status()
    );
    let list_bytes = listing.bytes().await?.len();
    let found = http
        .post(format!("{base}/search"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body(r#"{"query": "холодный свет в лобби", "limit": 10}"#)
        .send()
        .await?;
    ensure!(found.status() == 200, "POST /search: {}", found.status());
    let found: serde_json::Value = serde_json::from_slice(&found.bytes().await?)?;
    ensure!(
        found["generation"].as_u64() == Some(report.generation),
        "search did not read the published snapshot: {found}"
    );
    ensure!(
        found["hits"].as_array().is_some_and(|h| h.len() == 10),
        "search found fewer than 10 hits: {found}"
    );

    let header = format!("Authorization: {auth}");
    let list = wrk(
        &format!("{base}{LIST_PATH}"),
        "list",
        &header,
        connections,
        warmup,
        seconds,
    )?;
    let search = wrk(
        &format!("{base}/search"),
        "search",
        &header,
        connections,
        warmup,
        seconds,
    )?;
    let shell = wrk(
        &format!("{base}/"),
        "list",
        &header,
        connections,
        warmup,
        seconds,
    )?;
    drop(_serve);

    let cold = cold_starts(&cargo_lambda, &bins.api, &env, &auth, cold_runs).await?;

    print_table(&Figures {
        audits: stored_audits,
        chunks: stored_chunks,
        segments: stored_segments,
        generation: report.generation,
        snapshot_mib: report.size_bytes as f64 / (1024.0 * 1024.0),
        build_s,
        serve_ready_s,
        connections,
        seconds,
        plan_cache_mode,
        list,
        list_bytes,
        search,
        shell,
        cold,
    });
    Ok(())
}

// Data -------------------------------------------------------------------------------------

/// Reference data, recordings, transcripts with segments, and `audits` narrative reports
/// (two per recording: design or interview, hotel, restaurant or spa), in bulk SQL.
async fn fill_reports(
    db: &TestDb,
    bucket: &str,
    audits: i64,
    segments: i64,
    sentences: &[String],
) -> Result<()> {
    let recordings = (audits + 1) / 2;
    let sayings: Vec<String> = SAYINGS.iter().map(|s| (*s).to_owned()).collect();
    let mut conn = db.pool.get().await?;
    let tx = conn.transaction().await?;
    tx.batch_execute(
        "INSERT INTO city (city_name) SELECT unnest(ARRAY['Москва', 'Санкт-Петербург',
             'Казань', 'Сочи', 'Екатеринбург', 'Новосибирск', 'Калининград',
             'Нижний Новгород', 'Самара', 'Владивосток']);
         INSERT INTO employee (employee_name)
         SELECT f || ' ' || l FROM unnest(ARRAY['Анна', 'Мария', 'Ольга', 'Елена', 'Ирина',
             'Дмитрий', 'Сергей', 'Алексей']) f,
             unnest(ARRAY['Иванова', 'Смирнова', 'Кузнецова', 'Попова', 'Соколова',
             'Лебедева']) l;
         INSERT INTO client (client_name) SELECT 'Гость ' || i FROM generate_series(1, 200) i;
         INSERT INTO zone (zone_name) SELECT unnest(ARRAY['Лобби', 'Ресепшн', 'Номер',
             'Ресторан', 'Бар', 'Спа', 'Коридор', 'Терраса']);
         INSERT INTO place (place_name, building_type)
         SELECT format('%s «%s» №%s', b, (ARRAY['Северный', 'Волна', 'Берёзка', 'Панорама',
                    'Усадьба', 'Восток', 'Маяк', 'Гранд'])[1 + i % 8], i), b
         FROM generate_series(1, 300) i,
              LATERAL (SELECT (ARRAY['Отель', 'Ресторан', 'Центр Здоровья'])[1 + i % 3] AS b) x;",
    )
    .await?;
    tx.execute(
        "INSERT INTO recording (bucket, object_key, etag, size_bytes, content_type, status,
                                progress, finished_at)
         SELECT $1, format('recordings/2026/%s/audio-%s.m4a', 1 + i % 12, i), md5(i::text),
                30000000 + i, 'audio/mp4', 'done', 1, now()
         FROM generate_series(1, $2::bigint) i",
        &[&bucket, &recordings],
    )
    .await?;
    // Segment `seq` of the n-th transcript says SAYINGS[(n * 7 + seq * 5) mod len]: every
    // transcript holds every saying, so the quotes in chunks are found in their transcript.
    tx.execute(
        "INSERT INTO transcription (transcription_text, audio_file_name, number_audio,
                                    recording_id, language, audio_seconds, model_id, text_sha256)
         SELECT x.text, format('audio-%s.m4a', r.recording_id), r.recording_id::int,
                r.recording_id, 'ru', $2::bigint * 6, 'whisper-base', sha256(convert_to(x.text, 'UTF8'))
         FROM recording r,
              LATERAL (SELECT string_agg(($1::text[])[1 + (r.recording_id * 7 + s * 5)
                                            % cardinality($1::text[])], ' ' ORDER BY s) AS text
                       FROM generate_series(0, $2::bigint - 1) s) x",
        &[&sayings, &segments],
    )
    .await?;
    tx.execute(
        "INSERT INTO transcription_segment (transcription_id, seq, start_ms, end_ms, text,
                                            speaker)
         SELECT t.transcription_id, s, s * 6000, s * 6000 + 5500,
                ($1::text[])[1 + (t.recording_id * 7 + s * 5) % cardinality($1::text[])],
                (ARRAY['Сотрудник', 'Клиент'])[1 + s % 2]
         FROM transcription t, generate_series(0, $2::bigint - 1) s",
        &[&sayings, &segments],
    )
    .await?;
    tx.execute(
        "WITH refs AS (
             SELECT (SELECT array_agg(employee_id ORDER BY employee_id) FROM employee) AS emps,
                    (SELECT array_agg(client_id ORDER BY client_id) FROM client) AS clients,
                    (SELECT array_agg(city_id ORDER BY city_id) FROM city) AS cities),
         jobs AS (
             SELECT t.transcription_id AS tid, t.recording_id AS n, k,
                    CASE WHEN t.recording_id % 2 = 0
                         THEN (ARRAY['audit-compliance', 'structured-audit'])[1 + k]
                         ELSE (ARRAY['common-factors', 'venue-factors'])[1 + k] END AS rt,
                    (ARRAY['hotel', 'restaurant', 'spa'])[1 + t.recording_id % 3] AS building
             FROM transcription t, generate_series(0, 1) k)
         INSERT INTO audit (audit, employee_id, client_id, place_id, audit_date, city_id,
                            transcription_id, report_type_id, building_id, pass, pass_title,
                            kind, engine)
         SELECT (SELECT string_agg(($1::text[])[1 + (j.n * 13 + j.k * 7 + s * 11) % cardinality($1::text[])],
                                   CASE WHEN s % 5 = 4 THEN E'\\n\\n' ELSE ' ' END ORDER BY s)
                 FROM generate_series(0, 79) s),
                r.emps[1 + j.n % cardinality(r.emps)], r.clients[1 + j.n % cardinality(r.clients)],
                (SELECT p.place_id FROM place p WHERE p.building_type = b.building_type
                 ORDER BY p.place_id OFFSET j.n % 100 LIMIT 1),
                date '2025-01-01' + (j.n % 540)::int, r.cities[1 + j.n % cardinality(r.cities)],
                j.tid, rt.report_type_id, b.building_id, 1, NULL, 'narrative', 'offline'
         FROM jobs j CROSS JOIN refs r
         JOIN report_type rt ON rt.code = j.rt
         JOIN buildings b ON b.code = j.building
         ORDER BY j.n, j.k
         LIMIT $2",
        &[&sentences, &audits],
    )
    .await?;
    tx.batch_execute(
        "INSERT INTO user_road (audit_id, scenario_id, report_type_id, building_id)
         SELECT a.audit_id, rt.scenario_id, a.report_type_id, a.building_id
         FROM audit a JOIN report_type rt ON rt.report_type_id = a.report_type_id;
         INSERT INTO audit_zone (audit_id, zone_id)
         SELECT a.audit_id, z.zones[1 + (a.audit_id + o) % cardinality(z.zones)]
         FROM audit a, generate_series(0, 1) o,
              (SELECT array_agg(zone_id ORDER BY zone_id) AS zones FROM zone) z;",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `chunks` chunks spread evenly over the audits, in multi-row inserts of 2,000: each is near
/// one of the centres (gaussian noise of twice the centre's norm, normalised, as the index
/// bench's clustered data), its text that centre's sentence, every other one with a quote.
async fn fill_chunks(
    db: &TestDb,
    chunks: i64,
    sentences: &[String],
    centres: &[Vec<f32>],
    model: &str,
) -> Result<()> {
    let conn = db.pool.get().await?;
    let audit_ids: Vec<i64> = conn
        .query("SELECT audit_id FROM audit ORDER BY audit_id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(!audit_ids.is_empty(), "no audits were stored");
    let stmt = conn
        .prepare(
            "INSERT INTO chunk (audit_id, seq, text, start_char, end_char, embedding,
                                embedding_model, dims)
             SELECT a, s, t, b, e, emb, $7, $8
             FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::int[],
                         $6::bytea[]) AS c (a, s, t, b, e, emb)",
        )
        .await?;
    let mut rng = SplitMix(0x05EE_DA11);
    let sigma = 2.0 / (DIMS as f32).sqrt();
    let dims = DIMS as i16;
    let per_audit = (chunks as usize).div_ceil(audit_ids.len());
    let mut batch = ChunkBatch::default();
    for i in 0..chunks as usize {
        let audit = audit_ids[i / per_audit % audit_ids.len()];
        let seq = (i % per_audit) as i32;
        let c = (rng.next() % centres.len() as u64) as usize;
        let mut text = sentences[c].clone();
        if i % 2 == 0 {
            let saying = SAYINGS[(rng.next() % SAYINGS.len() as u64) as usize];
            text.push_str(&format!(" Гость: «{saying}»."));
        }
        let vector = unit(
            centres[c]
                .iter()
                .map(|x| x + sigma * rng.gaussian())
                .collect(),
        );
        let start = seq * 600;
        batch.audit.push(audit);
        batch.seq.push(seq);
        batch.start.push(start);
        batch.end.push(start + text.chars().count() as i32);
        batch.text.push(text);
        batch.embedding.push(encode_embedding(&vector));
        if batch.audit.len() == 2_000 || i + 1 == chunks as usize {
            conn.execute(
                &stmt,
                &[
                    &batch.audit,
                    &batch.seq,
                    &batch.text,
                    &batch.start,
                    &batch.end,
                    &batch.embedding,
                    &model,
                    &dims,
                ],
            )
            .await?;
            batch = ChunkBatch::default();
        }
    }
    Ok(())
}

#[derive(Default)]
struct ChunkBatch {
    audit: Vec<i64>,
    seq: Vec<i32>,
    text: Vec<String>,
    start: Vec<i32>,
    end: Vec<i32>,
    embedding: Vec<Vec<u8>>,
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// SplitMix64 with Box-Muller: seedable, enough for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn gaussian(&mut self) -> f32 {
        let mut uniform = || ((self.next() >> 40) as f32 + 1.0) / (1u64 << 24) as f32;
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

// Processes --------------------------------------------------------------------------------

struct Binaries {
    vox: PathBuf,
    api: PathBuf,
}

/// Builds the release `vox` and `api` next to this bench (same profile directory).
fn build_binaries() -> Result<Binaries> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench binary is not in a target profile directory")?
        .to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("building the release vox and api binaries");
    let status = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "vox", "-p", "api"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build --release -p vox -p api failed"
    );
    let bins = Binaries {
        vox: dir.join("vox"),
        api: dir.join("api"),
    };
    ensure!(
        bins.vox.exists() && bins.api.exists(),
        "{} or {} is missing after the build",
        bins.vox.display(),
        bins.api.display()
    );
    Ok(bins)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_wrk() -> Result<()> {
    match Command::new("wrk").arg("-v").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("wrk is not installed; on Debian: apt-get install wrk")
        }
        Err(e) => Err(e).context("running wrk"),
    }
}

/// `cargo-lambda` on the PATH, or the pinned one in its venv (installed on first use).
fn cargo_lambda() -> Result<PathBuf> {
    if Command::new("cargo-lambda")
        .args(["lambda", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(PathBuf::from("cargo-lambda"));
    }
    let home = std::env::var("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/voxpersona/venv-cargo-lambda");
    let bin = venv.join("bin/cargo-lambda");
    if !bin.exists() {
        println!(
            "installing cargo-lambda {CARGO_LAMBDA_VERSION} into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "-q",
                    &format!("cargo-lambda=={CARGO_LAMBDA_VERSION}"),
                ])
                .status()?
                .success();
        ensure!(
            ok,
            "could not install cargo-lambda from PyPI into {}",
            venv.display()
        );
    }
    Ok(bin)
}

/// Kills its child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the API processes need, as infra/local/api_contract.sh sets it.
struct ServerEnv {
    database_url: String,
    bucket: String,
    cache_dir: PathBuf,
}

impl ServerEnv {
    fn apply(&self, cmd: &mut Command, index: bool) {
        cmd.env("DATABASE_URL", &self.database_url)
            .env("AWS_ENDPOINT_URL", moto_url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("VOX_S3_PATH_STYLE", "true")
            .env("VOX_RECORDINGS_BUCKET", &self.bucket)
            .env("VOX_INDEX_CACHE_DIR", &self.cache_dir)
            .env_remove("VOX_SEARCH")
            .env_remove("VOX_ANALYZE_QUEUE_URL");
        if index {
            cmd.env("VOX_INDEX_BUCKET", &self.bucket)
                .env("VOX_INDEX_PREFIX", "index/");
        } else {
            cmd.env_remove("VOX_INDEX_BUCKET");
        }
    }
}

fn database_url(name: &str) -> String {
    let admin = vox_tests::admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

fn analyst_key(vox: &Path, env: &ServerEnv) -> Result<String> {
    let mut cmd = Command::new(vox);
    cmd.args(["keys", "create", "--name", "bench", "--role", "analyst"])
        .stderr(Stdio::null());
    env.apply(&mut cmd, false);
    let out = cmd.output().context("running vox keys create")?;
    ensure!(out.status.success(), "vox keys create failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("vox_"))
        .map(str::to_owned)
        .context("vox keys create printed no key")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn http_client() -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()?)
}

async fn wait_ready(http: &reqwest::Client, url: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        ensure!(
            started.elapsed() < limit,
            "{url} did not answer in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// wrk --------------------------------------------------------------------------------------

/// What the Lua `done` hook printed.
#[derive(Debug, Default)]
struct Wrk {
    requests: u64,
    duration_us: u64,
    non2xx: u64,
    socket_errors: u64,
    p50_us: u64,
    p95_us: u64,
    p99_us: u64,
}

impl Wrk {
    fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }
}

fn wrk(
    url: &str,
    mode: &str,
    header: &str,
    connections: usize,
    warmup: u64,
    seconds: u64,
) -> Result<Wrk> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/api.lua");
    let once = |secs: u64| -> Result<Wrk> {
        let out = Command::new("wrk")
            .args(["-t1", "-c", &connections.to_string(), "-d"])
            .arg(format!("{secs}s"))
            .args(["--latency", "--timeout", "10s", "-H", header, "-s"])
            .arg(&script)
            .args([url, "--", mode])
            .output()
            .context("running wrk")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "wrk failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_wrk(&stdout)
    };
    if warmup > 0 {
        once(warmup)?;
    }
    let result = once(seconds)?;
    ensure!(
        result.non2xx == 0 && result.socket_errors == 0,
        "{mode}: {} non-2xx responses and {} socket errors of {}",
        result.non2xx,
        result.socket_errors,
        result.requests
    );
    Ok(result)
}

fn parse_wrk(stdout: &str) -> Result<Wrk> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("VOXBENCH "))
        .with_context(|| format!("wrk printed no VOXBENCH line: {stdout}"))?;
    let mut w = Wrk::default();
    for field in line.split_whitespace() {
        let (name, value) = field.split_once('=').context("a field without =")?;
        let value: u64 = value
            .parse()
            .with_context(|| format!("{field} is not a number"))?;
        match name {
            "requests" => w.requests = value,
            "duration_us" => w.duration_us = value,
            "non2xx" => w.non2xx = value,
            "socket_errors" => w.socket_errors = value,
            "p50_us" => w.p50_us = value,
            "p95_us" => w.p95_us = value,
            "p99_us" => w.p99_us = value,
            _ => {}
        }
    }
    Ok(w)
}

// Cold start -------------------------------------------------------------------------------

struct ColdStart {
    label: &'static str,
    /// Milliseconds from spawning `api` to the answer, one per run, sorted.
    runs: Vec<f64>,
}

impl ColdStart {
    fn median(&self) -> f64 {
        self.runs[self.runs.len() / 2]
    }
}

async fn cold_starts(
    cargo_lambda: &Path,
    api: &Path,
    env: &ServerEnv,
    auth: &str,
    runs: usize,
) -> Result<Vec<ColdStart>> {
    let port = free_port()?;
    let mut watch = Command::new(cargo_lambda);
    watch
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _watch = Guard(watch.spawn().context("starting cargo lambda watch")?);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "cargo lambda watch did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let http = http_client()?;
    let url = format!("http://127.0.0.1:{port}/lambda-url/_{LIST_PATH}");
    let runtime_api = format!("http://127.0.0.1:{port}/.rt");
    let mut figures = Vec::new();
    let cases: [(&'static str, bool, bool, usize); 3] = [
        ("cold start, VOX_SEARCH=off", false, false, runs),
        ("cold start, search (encoder load)", true, false, runs),
        ("  incl. snapshot download (ref.)", true, true, 1),
    ];
    for (label, search, index, n) in cases {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            // The invocation waits in the emulator, as a request does for a cold Lambda.
            let pending = tokio::spawn(http.get(&url).header("Authorization", auth).send());
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut cmd = Command::new(api);
            env.apply(&mut cmd, index);
            if !search {
                cmd.env("VOX_SEARCH", "off");
            }
            cmd.env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
                .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/api")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let t = Instant::now();
            let child = Guard(cmd.spawn().context("starting the api binary")?);
            let response = tokio::time::timeout(Duration::from_secs(300), pending)
                .await
                .context("the api function did not answer in 300 s")???;
            let elapsed = t.elapsed().as_secs_f64() * 1e3;
            ensure!(
                response.status() == 200,
                "{label}: the first request got {}",
                response.status()
            );
            drop(child);
            times.push(elapsed);
        }
        times.sort_by(f64::total_cmp);
        figures.push(ColdStart { label, runs: times });
    }
    Ok(figures)
}

// Output -----------------------------------------------------------------------------------

fn print_table(f: &Figures) {
    let ms = |us: u64| us as f64 / 1e3;
    let verdict = |value: f64, target: f64| if value <= target { "met" } else { "MISSED" };
    println!(
        "\ndata: {} audits, {} chunks (512-d), {} transcript segments; index generation {} \
         ({:.1} MiB, built and published in {:.1} s); vox serve ready in {:.1} s (snapshot \
         download included)",
        f.audits, f.chunks, f.segments, f.generation, f.snapshot_mib, f.build_s, f.serve_ready_s
    );
    println!(
        "wrk: 1 thread, {} connections, {} s measured; listing body {} bytes; PostgreSQL \
         plan_cache_mode {}\n",
        f.connections,
        f.seconds,
        f.list_bytes,
        f.plan_cache_mode
            .as_deref()
            .unwrap_or("auto (server default)")
    );
    println!("| measure | p50 ms | p95 ms | p99 ms | req/s | target | |");
    println!("|---|---:|---:|---:|---:|---|---|");
    for (name, w, target) in [
        ("GET /audits?scenario=design&limit=20", &f.list, LIST_P95_MS),
        ("POST /search (limit 10)", &f.search, SEARCH_P95_MS),
        ("GET / (the console's page)", &f.shell, SHELL_P95_MS),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.0} | p95 <= {target} ms | {} |",
            ms(w.p50_us),
            ms(w.p95_us),
            ms(w.p99_us),
            w.rps(),
            verdict(ms(w.p95_us), target)
        );
    }
    println!(
        "\n| cold start (cargo lambda watch, spawn to first answer) | median ms | min | max | runs | target | |"
    );
    println!("|---|---:|---:|---:|---:|---|---|");
    for (i, c) in f.cold.iter().enumerate() {
        let (target, verdict) = if i == 0 {
            (
                format!("<= {COLD_START_MS} ms"),
                verdict(c.median(), COLD_START_MS),
            )
        } else {
            ("-".to_owned(), "")
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} | {target} | {verdict} |",
            c.label,
            c.median(),
            c.runs.first().copied().unwrap_or_default(),
            c.runs.last().copied().unwrap_or_default(),
            c.runs.len()
        );
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}
