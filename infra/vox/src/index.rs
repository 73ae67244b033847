//! `vox index [--rebuild]`: one index writer run against DATABASE_URL and VOX_INDEX_BUCKET
//! (S3 as the SDK finds it: AWS_ENDPOINT_URL for a local emulator such as moto).

use common::db::{DbConfig, PgPool};
use common::index::publish::{Indexer, Outcome, Settings};
use common::storage::S3Store;

pub async fn run(rebuild: bool) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let aws = common::aws::AwsSettings::from_env()?;
    let sdk = common::aws::load().await;
    let indexer = Indexer::new(
        PgPool::new(&DbConfig::from_env()?)?,
        S3Store::new(&sdk, aws.s3_path_style),
        settings.clone(),
    );
    let started = std::time::Instant::now();
    match indexer.run(rebuild).await? {
        Outcome::Published(r) => {
            println!(
                "published generation {}{} to s3://{}/{}",
                r.generation,
                if r.rebuilt { " (rebuilt)" } else { "" },
                settings.bucket,
                r.object_key
            );
            println!("chunks added: {}", r.chunks_added);
            println!("high-water mark: chunk {}", r.high_water_mark);
            println!("embedding model: {}", r.embedding_model);
            for (name, n) in &r.counts {
                println!("  {name}: {n}");
            }
            println!("snapshot: {} bytes, sha256 {}", r.size_bytes, r.checksum);
            if !r.deleted_generations.is_empty() {
                let gens: Vec<String> = r.deleted_generations.iter().map(u64::to_string).collect();
                println!("deleted old generations: {}", gens.join(", "));
            }
        }
        Outcome::UpToDate {
            generation: Some(g),
            high_water_mark,
        } => println!("up to date: generation {g}, high-water mark chunk {high_water_mark}"),
        Outcome::UpToDate {
            generation: None, ..
        } => println!("up to date: there are no chunks to index yet"),
        Outcome::Busy => anyhow::bail!("another index writer is running; try again later"),
    }
    println!("time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
