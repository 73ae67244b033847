use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::Path;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng};

use super::*;

const DIMS: usize = 512;
const MAP: usize = 1 << 30;
const CONFIG: u16 = 3;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u: f32 = 1.0 - rng.random::<f32>();
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn random_unit(rng: &mut ChaCha8Rng, dims: usize) -> Vec<f32> {
    unit((0..dims).map(|_| gaussian(rng)).collect())
}

fn random_vectors(seed: u64, n: usize, dims: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| random_unit(&mut rng, dims)).collect()
}

/// Unit vectors around `clusters` random centres (spread `sigma` per coordinate).
fn clustered_vectors(seed: u64, n: usize, clusters: usize, dims: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| random_unit(&mut rng, dims)).collect();
    let sigma = 1.0 / (dims as f32).sqrt();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..clusters)];
            unit(c.iter().map(|x| x + sigma * gaussian(&mut rng)).collect())
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Exact top-k ids by brute force (ids are positions + `first_id`).
fn brute_force(vectors: &[Vec<f32>], first_id: i64, query: &[f32], k: usize) -> Vec<i64> {
    let mut scored: Vec<(f32, i64)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (dot(v, query), first_id + i as i64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn add_all(writer: &IndexWriter, config: u16, first_id: i64, vectors: &[Vec<f32>]) {
    let items: Vec<(i64, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (first_id + i as i64, v.as_slice()))
        .collect();
    writer.add(config, &items).unwrap();
}

fn writer_in(dir: &Path) -> IndexWriter {
    IndexWriter::create(dir, MAP, DIMS).unwrap()
}

fn ids(hits: &[(i64, f32)]) -> Vec<i64> {
    hits.iter().map(|&(id, _)| id).collect()
}

fn reason(e: Error) -> String {
    match e {
        Error::Index { reason } => reason,
        other => panic!("expected an index error, got {other:?}"),
    }
}

#[test]
fn zero_one_and_two_items_build_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let v = random_vectors(1, 3, DIMS);

    // Zero: a configuration whose only item was removed before its first build.
    writer.add(0, &[(10, &v[0])]).unwrap();
    assert_eq!(writer.remove(0, &[10]).unwrap(), 1);
    // One and two items.
    writer.add(1, &[(20, &v[0])]).unwrap();
    writer.add(2, &[(30, &v[1]), (31, &v[2])]).unwrap();
    let built = writer.build(7).unwrap();
    assert_eq!(built, vec![0, 1, 2]);

    assert!(writer.search(0, &v[0], 10, None).unwrap().is_empty());
    let one = writer.search(1, &v[1], 10, None).unwrap();
    assert_eq!(ids(&one), vec![20]);
    assert!((one[0].1 - dot(&v[0], &v[1])).abs() < 1e-4);
    let two = writer.search(2, &v[2], 10, None).unwrap();
    assert_eq!(ids(&two), vec![31, 30]);
    assert!(
        (two[0].1 - 1.0).abs() < 1e-4,
        "a vector is its own best match: {two:?}"
    );
    assert_eq!(ids(&writer.search(2, &v[2], 1, None).unwrap()), vec![31]);
    assert!(writer.search(2, &v[2], 0, None).unwrap().is_empty());

    assert_eq!(
        writer.counts().unwrap(),
        BTreeMap::from([(0, 0), (1, 1), (2, 2)])
    );
    assert_eq!(
        (
            writer.len(0).unwrap(),
            writer.len(1).unwrap(),
            writer.len(2).unwrap()
        ),
        (0, 1, 2)
    );
}

#[test]
fn a_configuration_never_built_searches_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let q = random_vectors(2, 1, DIMS).remove(0);

    assert!(writer.search(9, &q, 10, None).unwrap().is_empty());
    assert_eq!(writer.len(9).unwrap(), 0);
    assert!(!writer.contains(9, 1).unwrap());
    assert!(writer.counts().unwrap().is_empty());
    assert!(writer.build(1).unwrap().is_empty(), "nothing to build");

    let snap = dir.path().join("empty.mdb");
    writer.snapshot(&snap).unwrap();
    let reader = IndexReader::open_snapshot(&snap).unwrap();
    assert!(reader.search(9, &q, 10, None).unwrap().is_empty());
    assert_eq!(reader.dims(), DIMS);
}

#[test]
fn building_after_removing_every_item_leaves_an_empty_index() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(4);
    // More items than fit one leaf (512), so real trees are built first.
    let v = random_vectors(3, 700, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(1).unwrap();
    assert_eq!(writer.len(CONFIG).unwrap(), 700);

    let all: Vec<i64> = (1..=700).collect();
    assert_eq!(writer.remove(CONFIG, &all).unwrap(), 700);
    assert_eq!(writer.build(1).unwrap(), vec![CONFIG]);

    assert!(writer.search(CONFIG, &v[0], 10, None).unwrap().is_empty());
    assert_eq!(writer.counts().unwrap(), BTreeMap::from([(CONFIG, 0)]));

    // And it fills up again.
    add_all(&writer, CONFIG, 1, &v[..600]);
    writer.build(2).unwrap();
    assert_eq!(
        ids(&writer.search(CONFIG, &v[5], 1, None).unwrap()),
        vec![6]
    );
}

#[test]
fn recall_at_10_on_1000_random_unit_vectors_is_at_least_0_95() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let v = random_vectors(4, 1000, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(42).unwrap();
    let snap = dir.path().join("recall.mdb");
    writer.snapshot(&snap).unwrap();
    let reader = IndexReader::open_snapshot(&snap).unwrap();

    let queries = random_vectors(5, 100, DIMS);
    let exact: Vec<HashSet<i64>> = queries
        .iter()
        .map(|q| brute_force(&v, 1, q, 10).into_iter().collect())
        .collect();
    let recall = |reader: &IndexReader| {
        let mut found = 0;
        for (q, exact) in queries.iter().zip(&exact) {
            let hits = reader.search(CONFIG, q, 10, None).unwrap();
            assert_eq!(hits.len(), 10);
            assert!(
                hits.windows(2).all(|w| w[0].1 >= w[1].1),
                "best first: {hits:?}"
            );
            found += hits.iter().filter(|(id, _)| exact.contains(id)).count();
        }
        found as f64 / (10 * queries.len()) as f64
    };

    let default = recall(&reader);
    println!(
        "recall@10, 1,000 random 512-d unit vectors, {} trees, default {:?} and {:?}: {default:.3}",
        writer.n_trees(),
        reader.search_k(),
        reader.rerank()
    );
    assert!(default >= 0.95, "recall@10 {default}");
    // The trees alone, as a snapshot without codes searches.
    let mut reader = reader.with_rerank(Rerank::Off);
    for factor in [1, 2, 5, 20] {
        reader = reader.with_search_k(SearchK::Factor(NonZeroUsize::new(factor).unwrap()));
        println!(
            "  with search_k = k x trees x {factor}: {:.3}",
            recall(&reader)
        );
    }
}

#[test]
fn the_quantized_stage_and_its_re_rank_find_the_neighbours_of_clustered_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(2);
    let all = clustered_vectors(11, 4050, 40, DIMS);
    let (v, queries) = all.split_at(4000);
    add_all(&writer, CONFIG, 1, v);
    writer.build(42).unwrap();
    let snap = dir.path().join("codes.mdb");
    writer.snapshot(&snap).unwrap();
    let reader = IndexReader::open_snapshot(&snap).unwrap();
    assert_eq!(reader.rerank(), Rerank::default());
    // 4,000 items: the default re-ranks RERANK_MIN of them.
    assert_eq!(Rerank::default().resolve(10, 4000), Some(RERANK_MIN));

    let mut found = 0;
    for q in queries {
        let exact: HashSet<i64> = brute_force(v, 1, q, 10).into_iter().collect();
        let hits = reader.search(CONFIG, q, 10, None).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(
            hits.windows(2)
                .all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)),
            "best first, ties by id: {hits:?}"
        );
        for &(id, score) in &hits {
            // Exact cosine similarities (the vectors are unit length).
            let cos = dot(&v[id as usize - 1], q) / dot(q, q).sqrt();
            assert!((score - cos).abs() < 1e-5, "{id}: {score} vs {cos}");
        }
        found += hits.iter().filter(|(id, _)| exact.contains(id)).count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    println!("recall@10, 4,000 clustered 512-d unit vectors, codes + re-rank: {recall:.3}");
    assert!(recall >= 0.95, "recall@10 {recall}");

    // A large candidate set goes through the codes too, and stays inside the set.
    let large: Candidates = (1..=4000).filter(|id| id % 3 != 0).collect();
    let hits = reader
        .search(CONFIG, &queries[0], 20, Some(&large))
        .unwrap();
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|&(id, _)| id % 3 != 0), "{hits:?}");

    // The writer searches its last build the same way.
    assert_eq!(
        writer.search(CONFIG, &queries[0], 10, None).unwrap(),
        reader.search(CONFIG, &queries[0], 10, None).unwrap()
    );
}

#[test]
fn an_index_without_codes_searches_with_the_trees_until_the_next_build_adds_them() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(4);
    let v = random_vectors(13, 1000, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(42).unwrap();
    let store = &writer.store;
    let rtxn = store.env.read_txn().unwrap();
    assert!(!store.codes_missing(&rtxn, CONFIG).unwrap());
    drop(rtxn);
    let with_codes = writer.search(CONFIG, &v[3], 10, None).unwrap();
    assert_eq!(with_codes[0].0, 4);

    // As an index built before codes existed.
    let codes = store.codes.unwrap();
    let mut wtxn = store.env.write_txn().unwrap();
    assert!(codes.delete(&mut wtxn, &CONFIG).unwrap());
    wtxn.commit().unwrap();
    let rtxn = store.env.read_txn().unwrap();
    assert!(store.codes_missing(&rtxn, CONFIG).unwrap());
    drop(rtxn);
    let trees = writer.search(CONFIG, &v[3], 10, None).unwrap();
    assert_eq!(trees.len(), 10);
    assert_eq!(trees[0].0, 4);

    // A build with nothing to rebuild still writes the missing codes.
    assert!(writer.build(42).unwrap().is_empty());
    let rtxn = store.env.read_txn().unwrap();
    assert!(!store.codes_missing(&rtxn, CONFIG).unwrap());
    drop(rtxn);
    assert_eq!(writer.search(CONFIG, &v[3], 10, None).unwrap(), with_codes);
}

#[test]
fn codes_give_the_n_nearest_by_hamming_distance_within_the_set() {
    let dims = 64;
    let mean = vec![0.0f32; dims];
    // Item 10 + i is negative on its first i coordinates: i bits from the all-positive query.
    let ids: Vec<u32> = (10..20).collect();
    let mut bytes = Codes::header(&mean, &ids);
    let mut code = vec![0u64; words(dims)];
    for i in 0..ids.len() {
        let v: Vec<f32> = (0..dims).map(|d| if d < i { -1.0 } else { 1.0 }).collect();
        quantize(&v, &mean, &mut code);
        assert_eq!(code[0].count_ones() as usize, dims - i);
        for w in &code {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
    }
    let codes = Codes::parse(&bytes, dims).unwrap();
    assert_eq!(codes.len(), 10);
    let q = vec![1.0f32; dims];
    let sorted = |mut ids: Vec<u32>| {
        ids.sort_unstable();
        ids
    };
    assert_eq!(sorted(codes.nearest(&q, 3, None)), vec![10, 11, 12]);
    let set: RoaringBitmap = [11, 13, 15, 17, 99].into_iter().collect();
    assert_eq!(sorted(codes.nearest(&q, 3, Some(&set))), vec![11, 13, 15]);
    assert_eq!(
        sorted(codes.nearest(&q, 9, Some(&set))),
        vec![11, 13, 15, 17]
    );
    assert_eq!(sorted(codes.nearest(&q, 50, None)), ids);
    // Other dimensions, versions or lengths are not codes.
    assert!(Codes::parse(&bytes, 128).is_none());
    assert!(Codes::parse(&bytes[..bytes.len() - 1], dims).is_none());
    let mut other = bytes.clone();
    other[0] = 2;
    assert!(Codes::parse(&other, dims).is_none());
}

#[test]
fn candidates_restrict_results_to_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(4);
    let v = random_vectors(6, 1000, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(3).unwrap();
    let q = &v[17];

    // A small set is searched exhaustively: exactly the set's best.
    let small: Vec<i64> = (1..=1000).filter(|id| id % 20 == 0).collect();
    let set: Candidates = small.iter().collect();
    let hits = writer.search(CONFIG, q, 10, Some(&set)).unwrap();
    let in_set: Vec<Vec<f32>> = small.iter().map(|&id| v[id as usize - 1].clone()).collect();
    let expected: Vec<i64> = brute_force(&in_set, 0, q, 10)
        .into_iter()
        .map(|i| small[i as usize])
        .collect();
    assert_eq!(ids(&hits), expected);

    // A large set goes through the codes, still only inside the set.
    let large: Candidates = (1..=1000).filter(|id| id % 4 != 0).collect();
    let hits = writer.search(CONFIG, q, 50, Some(&large)).unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|&(id, _)| id % 4 != 0), "{hits:?}");

    // Ids not in the index, and the empty set, give nothing.
    let absent: Candidates = [5000, 6000, -1, i64::MAX].into_iter().collect();
    assert_eq!(absent.len(), 2);
    assert!(
        writer
            .search(CONFIG, q, 10, Some(&absent))
            .unwrap()
            .is_empty()
    );
    assert!(
        writer
            .search(CONFIG, q, 10, Some(&Candidates::new()))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn adding_an_id_again_replaces_its_vector() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(4);
    let v = random_vectors(7, 800, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(5).unwrap();

    let new = random_vectors(8, 1, DIMS).remove(0);
    writer.add(CONFIG, &[(5, &new)]).unwrap();
    writer.build(5).unwrap();

    let hits = writer.search(CONFIG, &new, 1, None).unwrap();
    assert_eq!(ids(&hits), vec![5]);
    assert!((hits[0].1 - 1.0).abs() < 1e-4);
    let old = writer.search(CONFIG, &v[4], 1, None).unwrap();
    assert_ne!(ids(&old), vec![5], "the old vector is gone");
    assert_eq!(writer.counts().unwrap()[&CONFIG], 800);
}

#[test]
fn removed_chunks_are_no_longer_found() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path()).with_n_trees(4);
    let v = random_vectors(9, 800, DIMS);
    add_all(&writer, CONFIG, 1, &v);
    writer.build(5).unwrap();
    assert!(writer.contains(CONFIG, 100).unwrap());

    assert_eq!(writer.remove(CONFIG, &[100, 101, 5000, -3]).unwrap(), 2);
    writer.build(5).unwrap();

    assert!(!writer.contains(CONFIG, 100).unwrap());
    assert_eq!(writer.len(CONFIG).unwrap(), 798);
    let hits = writer.search(CONFIG, &v[99], 20, None).unwrap();
    assert!(!ids(&hits).contains(&100) && !ids(&hits).contains(&101));
}

#[test]
fn configurations_are_separate_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let v = random_vectors(10, 20, DIMS);
    add_all(&writer, 1, 1, &v[..10]);
    add_all(&writer, 2, 11, &v[10..]);
    writer.build(1).unwrap();

    assert!(
        ids(&writer.search(1, &v[15], 20, None).unwrap())
            .iter()
            .all(|id| *id <= 10)
    );
    assert!(
        ids(&writer.search(2, &v[5], 20, None).unwrap())
            .iter()
            .all(|id| *id > 10)
    );
    assert_eq!(writer.counts().unwrap(), BTreeMap::from([(1, 10), (2, 10)]));

    // Only the configuration that changed is rebuilt.
    writer.add(2, &[(99, &v[0])]).unwrap();
    assert_eq!(
        writer.counts().unwrap()[&2],
        11,
        "counts include items not yet built"
    );
    assert_eq!(writer.build(1).unwrap(), vec![2]);
}

#[test]
fn a_snapshot_searches_like_the_writer_and_opens_from_a_read_only_copy() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(&dir.path().join("env")).with_n_trees(8);
    let v = clustered_vectors(11, 3000, 30, DIMS);
    add_all(&writer, CONFIG, 1, &v[..2000]);
    add_all(&writer, 4, 2001, &v[2000..]);
    writer.build(11).unwrap();

    let snap = dir.path().join("gen-1.mdb");
    let info = writer.snapshot(&snap).unwrap();
    assert_eq!(info.path, snap);
    assert_eq!(info.size_bytes, fs::metadata(&snap).unwrap().len());
    assert_eq!(info.sha256, sha256_file(&snap).unwrap());
    assert_eq!(info.sha256.len(), 64);

    // A read-only directory holding a read-only copy.
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let copy = ro.join("index.mdb");
    fs::copy(&snap, &copy).unwrap();
    let mut perms = fs::metadata(&copy).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(&copy, perms.clone()).unwrap();
    fs::set_permissions(&ro, perms).unwrap();

    let reader = IndexReader::open_snapshot(&copy).unwrap();
    assert_eq!(reader.dims(), DIMS);
    assert_eq!(reader.counts().unwrap(), writer.counts().unwrap());
    assert_eq!(reader.len(CONFIG).unwrap(), 2000);
    assert!(reader.contains(4, 2500).unwrap() && !reader.contains(CONFIG, 2500).unwrap());
    let set: Candidates = (1..=3000).step_by(7).collect();
    for q in random_vectors(12, 10, DIMS).iter().chain(&v[..10]) {
        for config in [CONFIG, 4] {
            assert_eq!(
                reader.search(config, q, 25, None).unwrap(),
                writer.search(config, q, 25, None).unwrap()
            );
            assert_eq!(
                reader.search(config, q, 25, Some(&set)).unwrap(),
                writer.search(config, q, 25, Some(&set)).unwrap()
            );
        }
    }
    // No lock file next to the snapshot.
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 1);

    drop(reader);
    let mut perms = fs::metadata(&ro).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&ro, perms).unwrap();
}

#[test]
fn a_snapshot_is_refused_while_changes_are_not_built() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let v = random_vectors(13, 3, DIMS);
    add_all(&writer, CONFIG, 1, &v[..2]);
    writer.build(1).unwrap();
    writer.add(CONFIG, &[(3, &v[2])]).unwrap();
    let err = reason(writer.snapshot(&dir.path().join("s.mdb")).unwrap_err());
    assert!(
        err.contains("configuration 3") && err.contains("not built"),
        "{err}"
    );
    assert!(!dir.path().join("s.mdb").exists());
    let err = reason(writer.search(CONFIG, &v[0], 5, None).unwrap_err());
    assert!(err.contains("not built"), "{err}");
}

#[test]
fn a_query_of_the_wrong_dimension_is_an_error_naming_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    add_all(&writer, CONFIG, 1, &random_vectors(14, 3, DIMS));
    writer.build(1).unwrap();
    let snap = dir.path().join("s.mdb");
    writer.snapshot(&snap).unwrap();
    let reader = IndexReader::open_snapshot(&snap).unwrap();

    let query = random_vectors(15, 1, 384).remove(0);
    for err in [
        writer.search(CONFIG, &query, 5, None).unwrap_err(),
        reader.search(CONFIG, &query, 5, None).unwrap_err(),
        reader.search(77, &query, 5, None).unwrap_err(),
    ] {
        assert!(!err.is_retryable());
        let err = reason(err);
        assert!(err.contains("384") && err.contains("512"), "{err}");
    }
    let err = reason(reader.search(CONFIG, &[0.0; DIMS], 5, None).unwrap_err());
    assert!(err.contains("zero"), "{err}");
}

#[test]
fn chunks_that_cannot_be_indexed_are_refused_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(dir.path());
    let v = random_vectors(16, 1, DIMS).remove(0);

    let too_big = i64::from(u32::MAX) + 1;
    let err = reason(writer.add(CONFIG, &[(1, &v), (too_big, &v)]).unwrap_err());
    assert!(err.contains(&format!("chunk {too_big}")), "{err}");
    let err = reason(writer.add(CONFIG, &[(2, &v[..100])]).unwrap_err());
    assert!(
        err.contains("chunk 2") && err.contains("100") && err.contains("512"),
        "{err}"
    );
    let mut nan = v.clone();
    nan[3] = f32::NAN;
    let err = reason(writer.add(CONFIG, &[(4, &nan)]).unwrap_err());
    assert!(err.contains("chunk 4"), "{err}");
    // Nothing of a refused batch is kept.
    assert!(writer.counts().unwrap().is_empty());
}

#[test]
fn the_index_reopens_and_create_refuses_another_dimension() {
    let dir = tempfile::tempdir().unwrap();
    {
        let writer = writer_in(dir.path());
        add_all(&writer, CONFIG, 1, &random_vectors(17, 5, DIMS));
        writer.build(1).unwrap();
    }
    let writer = IndexWriter::open(dir.path()).unwrap();
    assert_eq!(writer.dims(), DIMS);
    assert_eq!(writer.counts().unwrap(), BTreeMap::from([(CONFIG, 5)]));
    drop(writer);

    let err = reason(IndexWriter::create(dir.path(), MAP, 384).unwrap_err());
    assert!(err.contains("512") && err.contains("384"), "{err}");
    // Same dimension: opens what is there.
    let writer = IndexWriter::create(dir.path(), 2 * MAP, DIMS).unwrap();
    assert_eq!(writer.len(CONFIG).unwrap(), 5);

    let empty = tempfile::tempdir().unwrap();
    let err = reason(IndexWriter::open(empty.path()).unwrap_err());
    assert!(err.contains("no vector index"), "{err}");
    let err = reason(IndexReader::open_snapshot(&empty.path().join("nope.mdb")).unwrap_err());
    assert!(err.contains("nope.mdb"), "{err}");
}

#[test]
fn builds_with_the_same_seed_search_alike() {
    let v = clustered_vectors(18, 3000, 20, DIMS);
    let queries = random_vectors(19, 20, DIMS);
    let runs: Vec<Vec<Vec<(i64, f32)>>> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let writer = writer_in(&dir.path().join("env")).with_n_trees(8);
            add_all(&writer, CONFIG, 1, &v);
            writer.build(99).unwrap();
            queries
                .iter()
                .map(|q| writer.search(CONFIG, q, 10, None).unwrap())
                .collect()
        })
        .collect();
    // The results repeat; the files need not: arroy numbers tree nodes in thread order.
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn a_snapshot_copied_into_a_directory_opens_as_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let v = random_vectors(23, 30, DIMS);
    let snap = dir.path().join("gen-1.mdb");
    {
        let writer = writer_in(&dir.path().join("env"));
        add_all(&writer, CONFIG, 1, &v[..20]);
        writer.build(1).unwrap();
        writer.snapshot(&snap).unwrap();
    }
    let next = dir.path().join("next");
    fs::create_dir(&next).unwrap();
    fs::copy(&snap, next.join("data.mdb")).unwrap();

    let writer = IndexWriter::open(&next).unwrap();
    add_all(&writer, CONFIG, 21, &v[20..]);
    writer.build(2).unwrap();
    assert_eq!(writer.counts().unwrap(), BTreeMap::from([(CONFIG, 30)]));
    assert_eq!(
        ids(&writer.search(CONFIG, &v[25], 1, None).unwrap()),
        vec![26]
    );
}

#[test]
fn a_full_index_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Every 512-d vector takes a 4 KiB overflow page: 1 MiB holds far fewer than 1,000.
    let writer = IndexWriter::create(dir.path(), 1 << 20, DIMS).unwrap();
    let err = writer.add(CONFIG, &[]).and_then(|()| {
        let v = random_vectors(24, 1000, DIMS);
        let items: Vec<(i64, &[f32])> = v
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_slice()))
            .collect();
        writer.add(CONFIG, &items)
    });
    let err = reason(err.unwrap_err());
    assert!(
        err.contains("full") && err.contains("larger map size"),
        "{err}"
    );
}

#[test]
fn a_snapshot_cannot_be_opened_twice_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer_in(&dir.path().join("env"));
    let snap = dir.path().join("s.mdb");
    writer.snapshot(&snap).unwrap();
    let _reader = IndexReader::open_snapshot(&snap).unwrap();
    let err = reason(IndexReader::open_snapshot(&snap).unwrap_err());
    assert!(err.contains("already open"), "{err}");
}

#[test]
fn readers_and_writers_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<IndexReader>();
    shareable::<IndexWriter>();
}

/// Measures recall of arroy's distances on the same data and search effort, to justify
/// [`Dist`]. Run with `cargo test -p vox-common --features index --release -- --ignored
/// distance_choice --nocapture`.
#[test]
#[ignore = "an experiment (about a minute in release), not a check"]
fn distance_choice_by_recall() {
    use arroy::distances::{DotProduct, Euclidean};

    fn recall<D: arroy::Distance>(
        data: &[Vec<f32>],
        queries: &[Vec<f32>],
        k: usize,
        factor: usize,
    ) -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(1 << 31);
        #[allow(unsafe_code)]
        // SAFETY: a fresh temporary directory used by this test only.
        let env = unsafe { options.open(dir.path()) }.unwrap();
        let wtxn = env.write_txn().unwrap();
        let db: arroy::Database<D> = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                dbo.create_database(wtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        let writer = Writer::<D>::new(db, 0, data[0].len());
        for (i, v) in data.iter().enumerate() {
            writer.add_item(&mut wtxn, i as u32, v).unwrap();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        writer
            .builder(&mut rng)
            .n_trees(10)
            .build(&mut wtxn)
            .unwrap();
        wtxn.commit().unwrap();
        let rtxn = env.read_txn().unwrap();
        let reader = Reader::<D>::open(&rtxn, 0, db).unwrap();
        let mut found = 0;
        for q in queries {
            let exact: HashSet<i64> = brute_force(data, 0, q, k).into_iter().collect();
            let mut nns = reader.nns(k);
            nns.search_k(NonZeroUsize::new(k * reader.n_trees() * factor).unwrap());
            found += nns
                .by_vector(&rtxn, q)
                .unwrap()
                .iter()
                .filter(|(id, _)| exact.contains(&i64::from(*id)))
                .count();
        }
        found as f64 / (k * queries.len()) as f64
    }

    for (name, all) in [
        ("clustered", clustered_vectors(20, 20_100, 200, DIMS)),
        ("random", random_vectors(21, 20_100, DIMS)),
    ] {
        // Queries from the same distribution, not in the index.
        let (data, queries) = all.split_at(20_000);
        for factor in [5, 20] {
            println!(
                "{name} 20k, k=10, 10 trees, factor {factor}: cosine {:.3}, euclidean {:.3}, dot {:.3}",
                recall::<Cosine>(data, queries, 10, factor),
                recall::<Euclidean>(data, queries, 10, factor),
                recall::<DotProduct>(data, queries, 10, factor),
            );
        }
    }
}
