//! Sentence embeddings: `common::embed::UseEmbedder` against Python onnxruntime on the same
//! graph, the same batches and the same token ids, in the same run.
//!
//! Embeds `VOX_BENCH_SENTENCES` (default 640) realistic Russian audit sentences of ~150
//! characters in batches of 32 with the Rust embedder, and with
//! `infra/local/models/embed_bench.py` in a child process under
//! `$VOX_CACHE/venv-embed/bin/python` (onnxruntime + tokenizers, what prepare_embedding.sh
//! installs), which first checks that its token ids equal the Rust ones. Three kinds of pass,
//! each over all sentences:
//! - end to end: `UseEmbedder::embed` / per batch `encode_batch` + ragged arrays + `run`;
//! - inference alone, on the Rust token ids (`UseEmbedder::run` / `session.run`);
//! - tokenization alone.
//!
//! Both sides: CPU provider, `VOX_BENCH_THREADS` intra-op threads (default: the embedder's
//! default), one inter-op thread, `session.intra_op.allow_spinning = 0`, all graph
//! optimizations, tokenizer parallelism as `TOKENIZERS_PARALLELISM` says (inherited). The
//! machine may be busy, so Rust and Python passes alternate (`VOX_BENCH_PASSES` of each kind
//! per side, default 8, the side going first swapping every time); the figures are the median
//! and best pass (sentences/s, wall) and the median CPU time per sentence (the steadier figure).
//! Also checks that both sides give the same vectors for the same batches. Model load is not
//! timed.
//!
//! Run: `cargo bench -p vox-tests --bench embed`
//! (model: `infra/local/models/prepare_embedding.sh`; runtime: `infra/local/models/prepare.sh`)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::embed::{BATCH_SIZE, EmbedConfig, Embedder, RaggedBatch, UseEmbedder};
use serde_json::{Value, json};

/// One pass: wall and CPU seconds.
#[derive(Debug, Clone, Copy)]
struct Pass {
    wall: f64,
    cpu: f64,
}

/// The passes of one side and kind.
#[derive(Debug, Default)]
struct Passes(Vec<Pass>);

impl Passes {
    fn rates(&self, sentences: usize) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .0
            .iter()
            .map(|p| sentences as f64 / p.wall.max(1e-9))
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    fn median_rate(&self, sentences: usize) -> f64 {
        median(&self.rates(sentences))
    }

    fn best_rate(&self, sentences: usize) -> f64 {
        self.rates(sentences).last().copied().unwrap_or(f64::NAN)
    }

    fn median_cpu_ms(&self, sentences: usize) -> f64 {
        let mut c: Vec<f64> = self
            .0
            .iter()
            .map(|p| p.cpu * 1000.0 / sentences as f64)
            .collect();
        c.sort_by(f64::total_cmp);
        median(&c)
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The Python side, waiting for commands.
struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    fn start(
        python: &Path,
        model_dir: &Path,
        input: &Path,
        threads: usize,
    ) -> Result<(Self, Value)> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/models/embed_bench.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model_dir)
            .arg(input)
            .args(["--threads", &threads.to_string(), "--spinning", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", script.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut py = Python {
            child,
            stdin,
            stdout,
        };
        let info = py.read()?;
        Ok((py, info))
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("embed_bench.py exited early (see its stderr above)");
        }
        serde_json::from_str(&line).with_context(|| format!("parsing {line:?}"))
    }

    fn command(&mut self, command: &str) -> Result<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read()
    }

    fn pass(&mut self, kind: &str) -> Result<Pass> {
        let v = self.command(kind)?;
        Ok(Pass {
            wall: v["wall"].as_f64().context("no wall")?,
            cpu: v["cpu"].as_f64().context("no cpu")?,
        })
    }

    fn finish(self) -> Result<()> {
        drop(self.stdin);
        let mut child = self.child;
        let status = child.wait()?;
        if !status.success() {
            bail!("embed_bench.py failed: {status}");
        }
        Ok(())
    }
}

const KINDS: [(&str, &str); 3] = [
    ("e2e", "end to end (tokenize + run)"),
    ("inference", "inference alone (same ids)"),
    ("tokenize", "tokenization alone"),
];

fn main() -> Result<()> {
    let sentences: usize = env_parse("VOX_BENCH_SENTENCES", 640)?;
    let threads: usize = env_parse("VOX_BENCH_THREADS", EmbedConfig::DEFAULT_THREADS)?;
    let passes: usize = env_parse("VOX_BENCH_PASSES", 8)?.max(1);
    let cache = vox_cache()?;
    let models_dir = std::env::var_os("VOX_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("models"));
    let python = cache.join("venv-embed/bin/python");
    if !python.is_file() {
        bail!(
            "no {}: run infra/local/models/prepare_embedding.sh",
            python.display()
        );
    }

    let mut config = EmbedConfig::new(&models_dir);
    config.threads = threads;
    let embedder = UseEmbedder::load(&config).context("loading the embedder")?;
    let owned = audit_sentences(sentences);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let n = texts.len();
    let batches: Vec<RaggedBatch> = texts
        .chunks(BATCH_SIZE)
        .map(|chunk| embedder.tokenize(chunk))
        .collect::<Result<_, _>>()?;
    let tokens: usize = batches.iter().map(|b| b.token_ids.len()).sum();
    let chars: usize = owned.iter().map(|s| s.chars().count()).sum();

    // The Python side reads the texts and the Rust token ids.
    let stem = std::env::temp_dir().join(format!("vox-embed-bench-{}", std::process::id()));
    let input = stem.with_extension("json");
    let vectors_file = stem.with_extension("f32");
    let feed = json!({
        "texts": texts,
        "batch_size": BATCH_SIZE,
        "batches": batches.iter().map(|b| json!({
            "token_ids": b.token_ids, "row_splits": b.row_splits,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(&input, feed.to_string()).context("writing the bench input")?;
    let (mut py, info) = Python::start(
        &python,
        &models_dir.join(common::embed::MODEL_DIR),
        &input,
        threads,
    )?;

    // Warm-up (as the Python side): the first runs allocate.
    for b in batches.iter().take(3) {
        embedder.run(b)?;
    }

    let mut rust: [Passes; 3] = Default::default();
    let mut python_passes: [Passes; 3] = Default::default();
    let mut rust_vectors = Vec::new();
    for pass in 0..passes {
        eprint!("\rpass {}/{passes}", pass + 1);
        for (k, (kind, _)) in KINDS.iter().enumerate() {
            let mut run_rust = || -> Result<()> {
                let (p, vectors) = match *kind {
                    "e2e" => measure(|| embedder.embed(&texts))?,
                    "inference" => measure(|| -> Result<Vec<Vec<f32>>> {
                        let mut last = Vec::new();
                        for b in &batches {
                            last = embedder.run(b)?;
                        }
                        Ok(last)
                    })?,
                    _ => {
                        let (p, _) = measure(|| -> Result<Vec<RaggedBatch>> {
                            Ok(texts
                                .chunks(BATCH_SIZE)
                                .map(|chunk| embedder.tokenize(chunk))
                                .collect::<Result<_, _>>()?)
                        })?;
                        (p, Vec::new())
                    }
                };
                if *kind == "e2e" {
                    rust_vectors = vectors;
                }
                rust[k].0.push(p);
                Ok(())
            };
            // Alternate who goes first, so neither side always follows the other.
            if (pass + k) % 2 == 0 {
                run_rust()?;
                python_passes[k].0.push(py.pass(kind)?);
            } else {
                python_passes[k].0.push(py.pass(kind)?);
                run_rust()?;
            }
        }
    }
    eprintln!();

    // Parity: the same batches through the same graph.
    py.command(&format!("vectors {}", vectors_file.display()))?;
    py.finish()?;
    let py_vectors = read_f32(&vectors_file)?;
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&vectors_file);
    let rust_flat: Vec<f32> = rust_vectors.iter().flatten().copied().collect();
    if py_vectors.len() != rust_flat.len() {
        bail!(
            "python gave {} values, rust {}",
            py_vectors.len(),
            rust_flat.len()
        );
    }
    let max_diff = rust_flat
        .iter()
        .zip(&py_vectors)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let identical = rust_flat
        .iter()
        .zip(&py_vectors)
        .all(|(a, b)| a.to_bits() == b.to_bits());

    println!();
    println!(
        "{} ({} dims): {n} sentences of {:.0} chars, {:.1} tokens each with <s>/</s>, batches of {BATCH_SIZE}",
        embedder.model_id(),
        embedder.dims(),
        chars as f64 / n as f64,
        tokens as f64 / n as f64,
    );
    println!(
        "intra-op threads {threads}, inter-op 1, allow_spinning 0, TOKENIZERS_PARALLELISM={}; \
         python: onnxruntime {}, tokenizers {}; {passes} alternating passes per side and kind",
        std::env::var("TOKENIZERS_PARALLELISM").unwrap_or_else(|_| "(unset)".into()),
        info["onnxruntime"].as_str().unwrap_or("?"),
        info["tokenizers"].as_str().unwrap_or("?"),
    );
    println!(
        "token ids: python's tokenization differs from rust's in {} of {} batches",
        info["token_ids_mismatched_batches"],
        batches.len()
    );
    println!(
        "vectors rust vs python (same batches): {}, max |diff| {max_diff:.3e}",
        if identical {
            "bit-identical"
        } else {
            "not bit-identical"
        }
    );
    println!(
        "{:<30} {:>22} {:>22} {:>13} {:>17}",
        "sentences/s",
        "rust median (best)",
        "python median (best)",
        "ratio median",
        "CPU ms/sent r|py"
    );
    for (k, (_, label)) in KINDS.iter().enumerate() {
        let (r, p) = (&rust[k], &python_passes[k]);
        println!(
            "{label:<30} {:>22} {:>22} {:>13.3} {:>17}",
            format!("{:.0} ({:.0})", r.median_rate(n), r.best_rate(n)),
            format!("{:.0} ({:.0})", p.median_rate(n), p.best_rate(n)),
            r.median_rate(n) / p.median_rate(n),
            format!("{:.2} | {:.2}", r.median_cpu_ms(n), p.median_cpu_ms(n)),
        );
    }
    println!(
        "ratio rust/python, end to end: {:.3} (medians), {:.3} (best passes)",
        rust[0].median_rate(n) / python_passes[0].median_rate(n),
        rust[0].best_rate(n) / python_passes[0].best_rate(n),
    );
    Ok(())
}

/// Runs `work` once: its wall and CPU time, and its result.
fn measure<T, E: Into<anyhow::Error>>(work: impl FnOnce() -> Result<T, E>) -> Result<(Pass, T)> {
    let cpu = process_cpu_seconds();
    let start = Instant::now();
    let out = work().map_err(Into::into)?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds()
        .zip(cpu)
        .map_or(f64::NAN, |(b, a)| b - a);
    Ok((Pass { wall, cpu }, out))
}

/// User + system CPU time of this process (all threads), from `/proc/self/stat` (Linux; clock
/// ticks of 1/100 s, the kernel's USER_HZ).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `n` sentences of about 150 characters, as an audit transcript has them (combinations of
/// 8 openings, 10 facts and 6 endings).
fn audit_sentences(n: usize) -> Vec<String> {
    const OPENINGS: [&str; 8] = [
        "Во время проверки аудитор отметил, что",
        "По словам гостя из номера на четвёртом этаже,",
        "На записи слышно, как администратор объясняет, что",
        "В течение вечерней смены выяснилось, что",
        "При заселении семьи с детьми оказалось, что",
        "Управляющий ресторана признал, что",
        "Во время обхода территории было замечено, что",
        "Судя по разговору на ресепшене,",
    ];
    const FACTS: [&str; 10] = [
        "уборка в номерах проводилась позже заявленного времени",
        "кондиционер в люксе шумел и почти не охлаждал воздух",
        "на завтраке закончились свежие фрукты и горячие блюда",
        "трансфер из аэропорта опоздал почти на сорок минут",
        "персонал бара не знал состав коктейлей из нового меню",
        "в бассейне не хватало полотенец и свободных шезлонгов",
        "стойка регистрации работала без очереди и очень быстро",
        "официанты говорили с гостями вежливо и по существу",
        "счёт за мини-бар выставили с ошибкой в пользу отеля",
        "парковка у главного входа была занята машинами такси",
    ];
    const ENDINGS: [&str; 6] = [
        "и гость попросил зафиксировать это в отчёте.",
        "поэтому оценка по стандарту снижена на один балл.",
        "хотя в целом впечатление от отеля осталось хорошим.",
        "и это уже третий подобный случай за месяц.",
        "что напрямую влияет на итоговую оценку сервиса.",
        "о чём аудитор сообщил дежурному менеджеру.",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{} {} {}",
                OPENINGS[i % OPENINGS.len()],
                FACTS[(i / OPENINGS.len() + i) % FACTS.len()],
                ENDINGS[(i / 3 + i / 80) % ENDINGS.len()]
            )
        })
        .collect()
}

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn env_parse<T: std::str::FromStr>(var: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(var) {
        Ok(v) => v.trim().parse().with_context(|| format!("{var}={v}")),
        Err(_) => Ok(default),
    }
}

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("set VOX_CACHE or HOME")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}
