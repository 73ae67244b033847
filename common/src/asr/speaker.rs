//! The speaker encoder: a segment's audio to a [`Voiceprint`].
//!
//! The model is Resemblyzer's GE2E encoder (PyPI `Resemblyzer`, converted by
//! `infra/local/models/resemblyzer_to_onnx.py`): 40-channel mel power frames in, a 256-value
//! L2-normalised embedding out. As Resemblyzer does, the audio is first brought up to
//! -30 dBFS (never down), a segment is cut into 1.6 s pieces (160 frames) that overlap by half,
//! the last one ending with the segment, and the pieces' embeddings are averaged and
//! normalised again. One session, one intra-op thread: the encoder is small and runs once per
//! segment, after Whisper.
//!
//! Measured on this machine (2 cores): about 0.25 s of CPU per minute of speech
//! (`cargo bench -p vox-tests --bench report_quality` prints it per clip).

use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use super::error::AsrError;
use super::mel::{MelPower, SAMPLE_RATE};
use crate::speakers::{VOICE_DIM, Voiceprint};

const N_MELS: usize = 40;
/// Frames in one piece (1.6 s).
const PIECE: usize = 160;
/// Frames between piece starts.
const STEP: usize = PIECE / 2;
/// Shorter segments get no voiceprint: under a second a voice is not reliable.
pub const MIN_SAMPLES: usize = SAMPLE_RATE;
const TARGET_DBFS: f64 = -30.0;

/// The encoder's file under the models directory.
pub const MODEL_FILE: &str = "speaker/resemblyzer.onnx";

#[derive(Debug)]
pub struct SpeakerEncoder {
    session: Session,
    mel: MelPower,
}

impl SpeakerEncoder {
    pub fn open(env: &ort::environment::Environment, path: &Path) -> Result<Self, AsrError> {
        let session = super::runtime::open_session(env, path, 1)?;
        if !session.inputs().iter().any(|i| i.name() == "mels") {
            return Err(AsrError::GraphMismatch {
                model: "speaker",
                tensor: "mels".into(),
                reason: "the graph has no such input; is this resemblyzer.onnx?".into(),
            });
        }
        Ok(Self {
            session,
            mel: MelPower::new(N_MELS),
        })
    }

    /// The voice of `samples` (16 kHz mono), or `None` when they are shorter than
    /// [`MIN_SAMPLES`] or silent.
    pub fn voiceprint(&mut self, samples: &[f32]) -> Result<Option<Voiceprint>, AsrError> {
        if samples.len() < MIN_SAMPLES {
            return Ok(None);
        }
        let mean_square = samples
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            / samples.len() as f64;
        if mean_square <= 1e-10 {
            return Ok(None);
        }
        let dbfs = 10.0 * mean_square.log10();
        let gain = if dbfs < TARGET_DBFS {
            10f64.powf((TARGET_DBFS - dbfs) / 20.0) as f32
        } else {
            1.0
        };
        let scaled: Vec<f32> = samples.iter().map(|&x| x * gain).collect();
        let mut frames = self.mel.compute(&scaled);
        let n_frames = frames.len() / N_MELS;
        // Pieces of 160 frames; a segment shorter than one piece is padded with silence.
        if n_frames < PIECE {
            frames.resize(PIECE * N_MELS, 0.0);
        }
        let n_frames = n_frames.max(PIECE);
        let mut starts: Vec<usize> = (0..=n_frames - PIECE).step_by(STEP).collect();
        if starts.last() != Some(&(n_frames - PIECE)) {
            starts.push(n_frames - PIECE);
        }
        let mut batch = Vec::with_capacity(starts.len() * PIECE * N_MELS);
        for &s in &starts {
            batch.extend_from_slice(&frames[s * N_MELS..(s + PIECE) * N_MELS]);
        }
        let input = TensorRef::from_array_view(([starts.len(), PIECE, N_MELS], &batch[..]))
            .map_err(AsrError::inference("speaker"))?;
        let outputs = self
            .session
            .run(ort::inputs! { "mels" => input })
            .map_err(AsrError::inference("speaker"))?;
        let embeddings = super::runtime::output_f32(&outputs, "speaker", "embedding")?;
        if embeddings.len() != starts.len() * VOICE_DIM {
            return Err(AsrError::GraphMismatch {
                model: "speaker",
                tensor: "embedding".into(),
                reason: format!(
                    "{} values for {} pieces of {VOICE_DIM}",
                    embeddings.len(),
                    starts.len()
                ),
            });
        }
        let mut mean = vec![0.0f32; VOICE_DIM];
        for e in embeddings.chunks_exact(VOICE_DIM) {
            mean.iter_mut().zip(e).for_each(|(m, x)| *m += x);
        }
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm <= 0.0 {
            return Ok(None);
        }
        mean.iter_mut().for_each(|x| *x /= norm);
        Ok(Voiceprint::from_embedding(&mean))
    }
}
