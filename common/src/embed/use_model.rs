//! The multilingual Universal Sentence Encoder (v3, int8, 512-d) on ONNX Runtime, as prepared by
//! `infra/local/models/prepare_embedding.sh` (contract: `infra/local/models/EMBEDDING.md`).
//!
//! Texts are tokenized in Rust with the prepared `tokenizer.json` ("mode A": `encode_batch`
//! with `<s>`/`</s>`), and each batch goes to the graph as one ragged tensor: all token ids
//! concatenated (`token_ids`, i32) and the row offsets (`row_splits`, i64). The graph returns
//! `embeddings [batch, 512]`, already L2-normalised.
//!
//! The graph quantizes activations per batch, so a vector depends slightly on the other texts
//! of its batch (cosine ≥ ~0.995 against the same text alone). Batches are therefore formed
//! the same way every time: consecutive runs of [`BATCH_SIZE`] texts in input order, so the
//! same list of texts always gives bit-identical vectors.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::Tokenizer;

use super::Embedder;
use crate::config::{self, ConfigError};
use crate::onnx::{self, OnnxError, SessionSettings};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The prepared model's directory under the models directory.
pub const MODEL_DIR: &str = "use-multilingual";
/// Length of every vector.
pub const DIMS: usize = 512;
/// Texts per session run. Fixed: the vectors depend on the batch a text is in.
pub const BATCH_SIZE: usize = 32;
/// Default cap on the characters of one text (see [`EmbedConfig::max_chars`]).
pub const MAX_CHARS: usize = 20_000;

const TOKEN_IDS: &str = "token_ids";
const ROW_SPLITS: &str = "row_splits";
const EMBEDDINGS: &str = "embeddings";
/// `<s>` and `</s>`: every row starts and ends with them (a row of length 0 would turn the
/// whole batch into NaN).
const BOS: u32 = 1;
const EOS: u32 = 2;

/// Loading the embedding model or embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "{}/{file} not found under {}: run infra/local/models/prepare_embedding.sh \
         (and point VOX_MODELS_DIR at its models directory)",
        MODEL_DIR,
        models_dir.display()
    )]
    ModelFileMissing {
        file: &'static str,
        models_dir: PathBuf,
    },

    /// ONNX Runtime could not be loaded (its messages say how to prepare it).
    #[error(transparent)]
    Runtime(#[from] OnnxError),

    #[error("model description {path} is not usable: {reason}")]
    ModelInfo { path: PathBuf, reason: String },

    #[error("could not load the tokenizer {path}")]
    TokenizerLoad {
        path: PathBuf,
        #[source]
        source: BoxError,
    },

    #[error("the tokenizer {path} does not fit the embedding model: {reason}")]
    TokenizerMismatch { path: PathBuf, reason: String },

    #[error("tokenizing a batch of {texts} texts failed")]
    Tokenize {
        texts: usize,
        #[source]
        source: BoxError,
    },

    #[error("embedding a batch of {texts} texts failed")]
    Inference {
        texts: usize,
        #[source]
        source: ort::Error,
    },

    #[error("the embedding graph does not match this code: {reason}")]
    GraphMismatch { reason: String },

    #[error("malformed batch: {reason}")]
    BadBatch { reason: String },
}

/// Into the crate's error as a failure of a model provider (the local one), not retryable:
/// a missing or mismatched model stays missing, and the graph is deterministic.
impl From<EmbedError> for crate::Error {
    fn from(e: EmbedError) -> Self {
        crate::Error::Embed {
            reason: crate::error::chain(&e),
        }
    }
}

/// Where the model is and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedConfig {
    /// The models directory (`$VOX_MODELS_DIR`); the model is in its `use-multilingual/`.
    pub models_dir: PathBuf,
    /// The ONNX Runtime library; by default found under `models_dir/onnxruntime` (see
    /// [`onnx::library_in`]). Ignored when the process already loaded ONNX Runtime.
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (`VOX_EMBED_THREADS`, default [`EmbedConfig::DEFAULT_THREADS`]).
    /// Inter-op threads are 1 and idle threads do not spin.
    pub threads: usize,
    /// Texts longer than this many characters are cut (at the last whitespace before the
    /// limit, or at the limit when there is none in its last tenth) before embedding. The graph
    /// has no length limit, but time and memory grow with the longest text of a batch (the
    /// other rows are padded to it). Measured (1 thread): a 20,000-character Russian text is
    /// ~5,000 tokens, ~0.5–0.7 s and ~0.4 GB RSS alone, ~0.75 GB with 31 short texts in its
    /// batch; 100,000 characters take 2.6 s and 0.9 GB alone, 2.5 GB in such a batch. The first
    /// 20,000 characters say what a text is about well enough for retrieval.
    pub max_chars: usize,
}

impl EmbedConfig {
    /// Intra-op threads when `VOX_EMBED_THREADS` is unset. Measured on the shared 2-core
    /// machine (spinning off, batches of 32, passes alternating): 1 thread ~346 sentences/s at
    /// 2.5 ms CPU each, 2 threads ~332/s at 2.8 ms; two threads only pay off on cores nobody
    /// else uses (set `VOX_EMBED_THREADS=2` on an otherwise idle multi-core function).
    pub const DEFAULT_THREADS: usize = 1;

    /// Defaults for the models under `models_dir`.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Self {
            models_dir: models_dir.into(),
            ort_library: None,
            threads: Self::DEFAULT_THREADS,
            max_chars: MAX_CHARS,
        }
    }

    /// From the environment: `VOX_MODELS_DIR` (default `~/.cache/voxpersona/models`, or
    /// `/opt/voxpersona/models` without a home) and `VOX_EMBED_THREADS` (default 1, at least 1).
    pub fn from_env() -> Result<Self, ConfigError> {
        let default_dir = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/voxpersona/models"))
            .unwrap_or_else(|| PathBuf::from("/opt/voxpersona/models"));
        let models_dir = config::optional("VOX_MODELS_DIR")?.map_or(default_dir, PathBuf::from);
        let threads: usize = config::parsed_or("VOX_EMBED_THREADS", Self::DEFAULT_THREADS)?;
        if threads == 0 {
            return Err(ConfigError::Invalid {
                var: "VOX_EMBED_THREADS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            threads,
            ..Self::new(models_dir)
        })
    }

    /// The model's own directory, `models_dir/use-multilingual`.
    pub fn model_dir(&self) -> PathBuf {
        self.models_dir.join(MODEL_DIR)
    }
}

/// One batch as the graph reads it: every text's ids (`<s> … </s>`) concatenated, and the
/// row offsets `0, len0, len0+len1, …, token_ids.len()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaggedBatch {
    pub token_ids: Vec<i32>,
    pub row_splits: Vec<i64>,
}

impl RaggedBatch {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.row_splits.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The multilingual Universal Sentence Encoder: the tokenizer and the session, loaded once
/// per process and shared (one batch runs at a time; tokenizing needs no lock).
#[derive(Debug)]
pub struct UseEmbedder {
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    model_id: String,
    max_chars: usize,
}

impl UseEmbedder {
    /// The model under `$VOX_MODELS_DIR` with the environment's settings.
    pub fn from_env() -> crate::Result<Self> {
        Ok(Self::load(&EmbedConfig::from_env()?)?)
    }

    /// Loads `model.json`, `tokenizer.json` and `model.onnx` from `config.model_dir()`.
    pub fn load(config: &EmbedConfig) -> Result<Self, EmbedError> {
        let model_id = Self::check_files(config)?;
        let dir = config.model_dir();
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let library = match &config.ort_library {
            Some(path) => path.clone(),
            None => onnx::library_in(&config.models_dir)?,
        };
        let env = onnx::environment(&library)?;
        let settings = SessionSettings {
            intra_threads: config.threads.max(1),
            intra_spinning: false,
        };
        let session = onnx::open_session(&env, &dir.join("model.onnx"), settings)?;
        check_io(&session)?;
        Ok(Self {
            tokenizer,
            session: Mutex::new(session),
            model_id,
            max_chars: config.max_chars.max(1),
        })
    }

    /// Checks the model's files are there and reads its id (cheap: no session yet).
    fn check_files(config: &EmbedConfig) -> Result<String, EmbedError> {
        let dir = config.model_dir();
        for file in ["model.onnx", "tokenizer.json", "model.json"] {
            if !dir.join(file).is_file() {
                return Err(EmbedError::ModelFileMissing {
                    file,
                    models_dir: config.models_dir.clone(),
                });
            }
        }
        read_model_id(&dir.join("model.json"))
    }

    /// Starts loading the model on a thread of its own and returns at once (after checking
    /// its files and reading its id): a server answers its first requests while the encoder
    /// loads, and the first `embed` waits for it. The load ends with one embedding, so the
    /// first query does not pay the runtime's first-run allocations either.
    pub fn preload(config: &EmbedConfig) -> Result<Preloaded, EmbedError> {
        let model_id = Self::check_files(config)?;
        let load = {
            let config = config.clone();
            move || -> Result<UseEmbedder, String> {
                let embedder = UseEmbedder::load(&config).map_err(|e| crate::error::chain(&e))?;
                embedder
                    .embed(&["прогрев"])
                    .map_err(|e| format!("the warm-up embedding failed: {e}"))?;
                Ok(embedder)
            }
        };
        let loaded = std::sync::OnceLock::new();
        let loading = match std::thread::Builder::new()
            .name("vox-encoder-load".into())
            .spawn(load.clone())
        {
            Ok(handle) => Some(handle),
            // No thread to spare: load here.
            Err(_) => {
                let _ = loaded.set(load());
                None
            }
        };
        Ok(Preloaded {
            model_id,
            loading: Mutex::new(loading),
            loaded,
        })
    }

    /// The graph's input for `texts` as one batch (after the length cap), as [`Embedder::embed`]
    /// builds it for each of its batches.
    pub fn tokenize(&self, texts: &[&str]) -> Result<RaggedBatch, EmbedError> {
        let inputs: Vec<&str> = texts
            .iter()
            .map(|t| truncate_chars(t, self.max_chars))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|source| EmbedError::Tokenize {
                texts: texts.len(),
                source,
            })?;
        let total: usize = encodings.iter().map(|e| e.get_ids().len()).sum();
        let mut batch = RaggedBatch {
            token_ids: Vec::with_capacity(total),
            row_splits: Vec::with_capacity(encodings.len() + 1),
        };
        batch.row_splits.push(0);
        for encoding in &encodings {
            let ids = encoding.get_ids();
            // Guaranteed by the post-processor checked at load; a row without them would
            // poison the whole batch, so check every row anyway (it costs nothing).
            if ids.len() < 2 || ids.first() != Some(&BOS) || ids.last() != Some(&EOS) {
                return Err(EmbedError::Tokenize {
                    texts: texts.len(),
                    source: "a text was not wrapped in <s> … </s>".into(),
                });
            }
            for &id in ids {
                batch
                    .token_ids
                    .push(i32::try_from(id).map_err(|e| EmbedError::Tokenize {
                        texts: texts.len(),
                        source: e.into(),
                    })?);
            }
            batch.row_splits.push(batch.token_ids.len() as i64);
        }
        Ok(batch)
    }

    /// Runs the graph on one batch (as [`tokenize`](Self::tokenize) builds it): one vector per
    /// row, in order. An empty batch gives no vectors without calling the session (ONNX
    /// Runtime fails on a batch of 0 rows).
    pub fn run(&self, batch: &RaggedBatch) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = batch.len();
        if rows == 0 {
            return Ok(Vec::new());
        }
        // A row shorter than `<s> </s>` turns the whole batch into NaN; offsets past the ids
        // would be read out of bounds by the graph.
        let well_formed = batch.row_splits.first() == Some(&0)
            && batch.row_splits.last() == Some(&(batch.token_ids.len() as i64))
            && batch.row_splits.windows(2).all(|w| w[1] - w[0] >= 2);
        if !well_formed {
            return Err(EmbedError::BadBatch {
                reason: "the batch's row_splits do not delimit rows of at least 2 token ids".into(),
            });
        }
        let inference = |source| EmbedError::Inference {
            texts: rows,
            source,
        };
        let ids = TensorRef::from_array_view(([batch.token_ids.len()], &batch.token_ids[..]))
            .map_err(inference)?;
        let splits = TensorRef::from_array_view(([batch.row_splits.len()], &batch.row_splits[..]))
            .map_err(inference)?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs! {
                TOKEN_IDS => ids,
                ROW_SPLITS => splits,
            })
            .map_err(inference)?;
        let value = outputs
            .get(EMBEDDINGS)
            .ok_or_else(|| EmbedError::GraphMismatch {
                reason: format!("no output {EMBEDDINGS:?}"),
            })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(inference)?;
        if shape.len() != 2 || shape[0] != rows as i64 || shape[1] != DIMS as i64 {
            return Err(EmbedError::GraphMismatch {
                reason: format!(
                    "{EMBEDDINGS} has shape {shape:?} for {rows} texts, not [{rows}, {DIMS}]"
                ),
            });
        }
        if data.iter().any(|x| !x.is_finite()) {
            return Err(EmbedError::GraphMismatch {
                reason: "the vectors contain NaN or infinity".into(),
            });
        }
        Ok(data.chunks_exact(DIMS).map(<[f32]>::to_vec).collect())
    }
}

impl Embedder for UseEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dims(&self) -> usize {
        DIMS
    }

    /// Batches of [`BATCH_SIZE`] consecutive texts (the last one shorter); texts over
    /// [`EmbedConfig::max_chars`] are cut at a word boundary first. Empty and whitespace-only
    /// texts are fine (they embed as `<s> </s>`).
    fn embed(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH_SIZE) {
            let batch = self.tokenize(chunk)?;
            vectors.extend(self.run(&batch)?);
        }
        Ok(vectors)
    }
}

/// A [`UseEmbedder`] loading in the background ([`UseEmbedder::preload`]).
#[derive(Debug)]
pub struct Preloaded {
    model_id: String,
    loading: Mutex<Option<std::thread::JoinHandle<Result<UseEmbedder, String>>>>,
    /// The loaded encoder, or why it could not be loaded.
    loaded: std::sync::OnceLock<Result<UseEmbedder, String>>,
}

impl Preloaded {
    /// The encoder, waiting for the load to finish if it has not.
    fn get(&self) -> crate::Result<&UseEmbedder> {
        if self.loaded.get().is_none() {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(handle) = loading.take() {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err("the encoder's loading thread panicked".to_owned()));
                let _ = self.loaded.set(result);
            }
        }
        match self.loaded.get() {
            Some(Ok(embedder)) => Ok(embedder),
            Some(Err(reason)) => Err(crate::Error::Embed {
                reason: reason.clone(),
            }),
            None => Err(crate::Error::Embed {
                reason: "the encoder was never loaded".into(),
            }),
        }
    }
}

impl Embedder for Preloaded {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dims(&self) -> usize {
        DIMS
    }

    fn embed(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
        self.get()?.embed(texts)
    }
}

/// `text`, or its first `max_chars` characters cut back to the last whitespace when that is
/// in the last tenth of them (so a word is not split), trailing whitespace removed.
fn truncate_chars(text: &str, max_chars: usize) -> &str {
    if text.len() <= max_chars {
        // Never more characters than bytes.
        return text;
    }
    let Some((end, _)) = text.char_indices().nth(max_chars) else {
        return text;
    };
    let head = &text[..end];
    let floor = head
        .char_indices()
        .nth(max_chars - max_chars / 10)
        .map_or(head.len(), |(i, _)| i);
    match head.rfind(char::is_whitespace) {
        Some(space) if space >= floor => head[..space].trim_end(),
        _ => head,
    }
}

fn read_model_id(path: &Path) -> Result<String, EmbedError> {
    let bad = |reason: String| EmbedError::ModelInfo {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let info: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if let Some(dim) = info.get("dim")
        && dim.as_u64() != Some(DIMS as u64)
    {
        return Err(bad(format!("dim is {dim}, this code reads {DIMS}")));
    }
    match info.get("model_id").and_then(serde_json::Value::as_str) {
        Some(id) if !id.trim().is_empty() => Ok(id.to_owned()),
        _ => Err(bad("no model_id".into())),
    }
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbedError> {
    let tokenizer = Tokenizer::from_file(path).map_err(|source| EmbedError::TokenizerLoad {
        path: path.to_path_buf(),
        source,
    })?;
    // The contract: no padding or truncation, and `<s>`/`</s>` around every text ("" too).
    let mismatch = |reason: String| EmbedError::TokenizerMismatch {
        path: path.to_path_buf(),
        reason,
    };
    if tokenizer.get_padding().is_some() || tokenizer.get_truncation().is_some() {
        return Err(mismatch("padding or truncation is set".into()));
    }
    let empty = tokenizer
        .encode("", true)
        .map_err(|e| mismatch(e.to_string()))?;
    if empty.get_ids() != [BOS, EOS] {
        return Err(mismatch(format!(
            "the empty text gives {:?}, not [{BOS}, {EOS}]",
            empty.get_ids()
        )));
    }
    Ok(tokenizer)
}

fn check_io(session: &Session) -> Result<(), EmbedError> {
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    if inputs != [TOKEN_IDS, ROW_SPLITS] && inputs != [ROW_SPLITS, TOKEN_IDS] {
        return Err(EmbedError::GraphMismatch {
            reason: format!("inputs {inputs:?}, expected {TOKEN_IDS:?} and {ROW_SPLITS:?}"),
        });
    }
    if !outputs.contains(&EMBEDDINGS) {
        return Err(EmbedError::GraphMismatch {
            reason: format!("outputs {outputs:?}, expected {EMBEDDINGS:?}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_whole() {
        assert_eq!(truncate_chars("", 5), "");
        assert_eq!(truncate_chars("шум ночью", 9), "шум ночью");
    }

    #[test]
    fn long_texts_are_cut_at_a_word_boundary_near_the_limit() {
        let text = "слово ".repeat(30); // 180 chars
        let cut = truncate_chars(&text, 100);
        assert_eq!(cut, ["слово"; 16].join(" "));
        // No whitespace in the last tenth: cut at the limit, on a char boundary.
        let word = "ё".repeat(50);
        assert_eq!(truncate_chars(&word, 20).chars().count(), 20);
        let far = format!("а {}", "б".repeat(40));
        assert_eq!(truncate_chars(&far, 20).chars().count(), 20);
    }
}
