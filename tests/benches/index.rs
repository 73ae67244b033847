//! The vector index at production scale: build, snapshot, reopen, search latency and recall.
//!
//! For each data set (clustered: a mixture of 200 gaussian clusters, normalised, which is
//! closer to real sentence embeddings; random: uniform unit vectors, the worst case for any
//! tree index) it indexes `VOX_BENCH_ITEMS` (default 100,000) 512-d unit vectors in one
//! configuration with `VOX_BENCH_TREES` trees (default: the library default), then prints the
//! build time, the snapshot's size and time, the time to reopen it, and for k results
//! (`VOX_BENCH_K`, default 50) over 200 held-out queries the p50/p95 latency and recall@k
//! against brute force, for several `search_k` settings (`VOX_BENCH_FACTORS`, default
//! 2,5,10,20: k × trees × factor nodes), without and with a 5% candidate set.
//! `VOX_BENCH_DATA` picks one data set (`clustered` or `random`); `VOX_BENCH_SPREAD` (default
//! 2) sets how wide the clusters are.
//!
//! Run: `cargo bench -p vox-tests --bench index`

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::index::{Candidates, IndexReader, IndexWriter, SearchK, sha256_file};

const DIMS: usize = 512;
const QUERIES: usize = 200;
/// Results per query (`VOX_BENCH_K`, default 50) and the `search_k` factors tried
/// (`VOX_BENCH_FACTORS`, comma-separated, default 2,5,10,20).
fn k() -> usize {
    static K: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *K.get_or_init(|| env_or("VOX_BENCH_K", 50).unwrap_or(50).max(1))
}

fn factors() -> Vec<usize> {
    std::env::var("VOX_BENCH_FACTORS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|f| f.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| FACTORS.to_vec())
}
const CLUSTERS: usize = 200;
const FACTORS: [usize; 4] = [2, 5, 10, 20];

fn main() -> Result<()> {
    let items: usize = env_or("VOX_BENCH_ITEMS", 100_000)?;
    let trees: usize = env_or("VOX_BENCH_TREES", common::index::DEFAULT_N_TREES)?;
    let only = std::env::var("VOX_BENCH_DATA").ok();
    let spread = match std::env::var("VOX_BENCH_SPREAD") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("VOX_BENCH_SPREAD={v:?} is not a number"))?,
        Err(_) => 2.0,
    };
    println!(
        "vector index: {items} x {DIMS}-d unit vectors, {trees} trees, k = {}, {QUERIES} queries",
        k()
    );
    for data in ["clustered", "random"] {
        if only.as_deref().is_some_and(|o| o != data) {
            continue;
        }
        run(data, items, trees, spread)?;
    }
    Ok(())
}

fn run(data: &str, items: usize, trees: usize, spread: f32) -> Result<()> {
    match data {
        "clustered" => println!("\n== {data} ({CLUSTERS} clusters, spread {spread}) =="),
        _ => println!("\n== {data} =="),
    }
    let mut rng = SplitMix(0x5EED ^ items as u64);
    let all = match data {
        "clustered" => clustered(&mut rng, items + QUERIES, spread),
        _ => (0..items + QUERIES)
            .map(|_| random_unit(&mut rng))
            .collect(),
    };
    let (vectors, queries) = all.split_at(items);
    let dir = tempfile::tempdir()?;

    // Build: add in batches of 10,000 (one transaction each), then one build.
    let t = Instant::now();
    let map_size = (items * DIMS * 4).saturating_mul(4).max(1 << 30);
    let writer = IndexWriter::create(&dir.path().join("env"), map_size, DIMS)?.with_n_trees(trees);
    for (b, batch) in vectors.chunks(10_000).enumerate() {
        let rows: Vec<(i64, &[f32])> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| ((b * 10_000 + i + 1) as i64, v.as_slice()))
            .collect();
        writer.add(1, &rows)?;
    }
    let added = t.elapsed();
    let t = Instant::now();
    writer.build(42)?;
    let built = t.elapsed();
    println!(
        "add {:.1} s, build {:.1} s",
        added.as_secs_f64(),
        built.as_secs_f64()
    );

    let snap = dir.path().join("gen-1.mdb");
    let t = Instant::now();
    let info = writer.snapshot(&snap)?;
    let snapshotted = t.elapsed();
    let t = Instant::now();
    let sha = sha256_file(&snap)?;
    let hashed = t.elapsed();
    anyhow::ensure!(sha == info.sha256, "checksum mismatch");
    let env_bytes = dir_size(&dir.path().join("env"))?;
    let raw = (items * DIMS * 4) as f64;
    println!(
        "snapshot {:.1} MiB ({:.2}x the raw vectors; live env {:.1} MiB) in {} ms, of which sha256 {} ms",
        mib(info.size_bytes),
        info.size_bytes as f64 / raw,
        mib(env_bytes),
        snapshotted.as_millis(),
        hashed.as_millis()
    );
    drop(writer);

    let t = Instant::now();
    let reader = IndexReader::open_snapshot(&snap)?;
    let reopened = t.elapsed();
    println!(
        "reopen {} us (len {})",
        reopened.as_micros(),
        reader.len(1)?
    );

    // Ground truth by brute force.
    let t = Instant::now();
    let exact: Vec<Vec<i64>> = queries
        .iter()
        .map(|q| brute_force(vectors, q, k(), |_| true))
        .collect();
    let brute = t.elapsed();
    println!(
        "brute force (in-memory, 1 thread): {:.1} ms a query",
        brute.as_secs_f64() * 1e3 / QUERIES as f64
    );

    // A 5% candidate set, as a metadata filter would give.
    let in_set = |id: i64| (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100 < 5;
    let set: Candidates = (1..=items as i64).filter(|&id| in_set(id)).collect();
    let exact_in_set: Vec<Vec<i64>> = queries
        .iter()
        .map(|q| brute_force(vectors, q, k(), in_set))
        .collect();

    let r = format!("recall@{}", k());
    println!("search_k           | p50 ms | p95 ms | {r:>9} | 5% set: p50 ms | p95 ms | {r:>9}");
    let settings: Vec<(String, SearchK)> = factors()
        .iter()
        .map(|&f| {
            let factor = NonZeroUsize::new(f).context("factor")?;
            let label = format!("k*trees*{f} = {}", k() * trees * f);
            Ok((label, SearchK::Factor(factor)))
        })
        .collect::<Result<_>>()?;
    let mut reader = reader;
    for (label, search_k) in settings {
        reader = reader.with_search_k(search_k);
        let (p50, p95, recall) = measure(&reader, queries, &exact, None)?;
        let (sp50, sp95, srecall) = measure(&reader, queries, &exact_in_set, Some(&set))?;
        println!(
            "{label:<18} | {:>6.2} | {:>6.2} | {recall:>9.3} | {:>14.2} | {:>6.2} | {srecall:>9.3}",
            ms(p50),
            ms(p95),
            ms(sp50),
            ms(sp95)
        );
    }
    Ok(())
}

fn measure(
    reader: &IndexReader,
    queries: &[Vec<f32>],
    exact: &[Vec<i64>],
    set: Option<&Candidates>,
) -> Result<(Duration, Duration, f64)> {
    let mut times = Vec::with_capacity(queries.len());
    let mut found = 0;
    let mut wanted = 0;
    for (q, truth) in queries.iter().zip(exact) {
        let t = Instant::now();
        let hits = reader.search(1, q, k(), set)?;
        times.push(t.elapsed());
        let truth: HashSet<i64> = truth.iter().copied().collect();
        found += hits.iter().filter(|(id, _)| truth.contains(id)).count();
        wanted += truth.len();
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.5), at(0.95), found as f64 / wanted.max(1) as f64))
}

fn brute_force(vectors: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(i64) -> bool) -> Vec<i64> {
    let mut scored: Vec<(f32, i64)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 + 1, v))
        .filter(|(id, _)| keep(*id))
        .map(|(id, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), id))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.into_iter().map(|(_, id)| id).collect()
}

/// A mixture of `CLUSTERS` gaussian clusters around random unit centres, normalised; the
/// noise has `spread` times the centre's norm, so with spread 1 members sit at cosine ≈ 0.7
/// from their centre and ≈ 0.5 from each other, with spread 2 at ≈ 0.45 and ≈ 0.2.
fn clustered(rng: &mut SplitMix, n: usize, spread: f32) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..CLUSTERS).map(|_| random_unit(rng)).collect();
    let sigma = spread / (DIMS as f32).sqrt();
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next() % CLUSTERS as u64) as usize];
            unit(c.iter().map(|x| x + sigma * rng.gaussian()).collect())
        })
        .collect()
}

fn random_unit(rng: &mut SplitMix) -> Vec<f32> {
    unit((0..DIMS).map(|_| rng.gaussian()).collect())
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// SplitMix64: a small, seedable generator, enough for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 1.0) / (1u64 << 24) as f32
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn env_or(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn dir_size(dir: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
