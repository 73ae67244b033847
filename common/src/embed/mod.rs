//! Sentence embeddings: texts to unit-length vectors, for the offline engine's evidence search
//! and for the chunks of the vector index.

mod use_model;

pub use use_model::{
    BATCH_SIZE, DIMS, EmbedConfig, EmbedError, MAX_CHARS, MODEL_DIR, Preloaded, RaggedBatch,
    UseEmbedder,
};

use crate::Result;

/// Texts to vectors. Implementations are CPU-bound and synchronous: async callers run them
/// on a blocking thread.
pub trait Embedder: Send + Sync {
    /// Stored with every embedding (e.g. `use-multilingual-v3-int8@1b63e01b4d2f`).
    fn model_id(&self) -> &str;

    /// Length of every vector.
    fn dims(&self) -> usize;

    /// One unit-length vector per text, in order. The same list of texts always gives the
    /// same vectors (batches are formed deterministically). An empty list gives an empty list.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Cosine similarity of two unit-length vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
