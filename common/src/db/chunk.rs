//! Chunks: pieces of narrative reports and windows of transcripts, with their embeddings, the
//! source of the vector index.

use super::GenericClient;
use crate::{Error, Result};

/// A chunk to store for an audit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub seq: i32,
    pub text: String,
    pub start_char: i32,
    pub end_char: i32,
    pub embedding: Vec<f32>,
}

/// Little-endian f32s, as the `embedding` column holds them.
pub fn encode_embedding(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`encode_embedding`].
pub fn decode_embedding(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

const UPSERT: &str = "
INSERT INTO chunk (audit_id, seq, text, start_char, end_char, embedding, embedding_model, dims)
SELECT $1, seq, text, s, e, emb, $6, $7
FROM unnest($2::int[], $3::text[], $4::int[], $5::int[], $8::bytea[]) AS c (seq, text, s, e, emb)
ON CONFLICT (audit_id, seq) DO UPDATE
SET text = EXCLUDED.text, start_char = EXCLUDED.start_char, end_char = EXCLUDED.end_char,
    embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model,
    dims = EXCLUDED.dims
WHERE (chunk.text, chunk.embedding_model) IS DISTINCT FROM (EXCLUDED.text, EXCLUDED.embedding_model)";

/// Stores the chunks of an audit, replacing what an earlier run stored: a chunk that did not
/// change keeps its row and id, and chunks past the new end are removed.
pub async fn replace_for_audit(
    client: &impl GenericClient,
    audit_id: i64,
    chunks: &[NewChunk],
    model: &str,
) -> Result<()> {
    let dims_i16 = check_dims(
        chunks.iter().map(|c| (c.seq, c.embedding.len())),
        &format!("audit {audit_id}"),
    )?;
    let seqs: Vec<i32> = chunks.iter().map(|c| c.seq).collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let starts: Vec<i32> = chunks.iter().map(|c| c.start_char).collect();
    let ends: Vec<i32> = chunks.iter().map(|c| c.end_char).collect();
    let embeddings: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| encode_embedding(&c.embedding))
        .collect();
    let delete = client
        .prepare_cached("DELETE FROM chunk WHERE audit_id = $1 AND seq >= $2")
        .await?;
    client
        .execute(&delete, &[&audit_id, &(chunks.len() as i32)])
        .await?;
    if chunks.is_empty() {
        return Ok(());
    }
    let upsert = client.prepare_cached(UPSERT).await?;
    client
        .execute(
            &upsert,
            &[
                &audit_id,
                &seqs,
                &texts,
                &starts,
                &ends,
                &model,
                &dims_i16,
                &embeddings,
            ],
        )
        .await?;
    Ok(())
}

/// A window of a transcript to store (see `analysis::windows`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTranscriptChunk {
    pub seq: i32,
    pub text: String,
    pub start_char: i32,
    pub end_char: i32,
    /// Segment `seq`s (inclusive) and where they are in the recording.
    pub first_segment: i32,
    pub last_segment: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: Option<String>,
    pub embedding: Vec<f32>,
}

const UPSERT_TRANSCRIPT: &str = "
INSERT INTO chunk (transcription_id, seq, text, start_char, end_char, first_segment, last_segment,
                   start_ms, end_ms, speaker, embedding, embedding_model, dims)
SELECT $1, seq, text, s, e, fs, ls, sm, em, sp, emb, $11, $12
FROM unnest($2::int[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[], $8::bigint[],
            $9::bigint[], $10::text[], $13::bytea[]) AS c (seq, text, s, e, fs, ls, sm, em, sp, emb)
ON CONFLICT (transcription_id, seq) WHERE transcription_id IS NOT NULL DO UPDATE
SET text = EXCLUDED.text, start_char = EXCLUDED.start_char, end_char = EXCLUDED.end_char,
    first_segment = EXCLUDED.first_segment, last_segment = EXCLUDED.last_segment,
    start_ms = EXCLUDED.start_ms, end_ms = EXCLUDED.end_ms, speaker = EXCLUDED.speaker,
    embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model,
    dims = EXCLUDED.dims
WHERE (chunk.text, chunk.start_ms, chunk.end_ms, chunk.speaker, chunk.embedding_model)
      IS DISTINCT FROM
      (EXCLUDED.text, EXCLUDED.start_ms, EXCLUDED.end_ms, EXCLUDED.speaker, EXCLUDED.embedding_model)";

/// Stores the windows of a transcript, replacing what an earlier run stored, as
/// [`replace_for_audit`] does for a report: a window that did not change keeps its row and id
/// (so storing the same windows again changes nothing), and windows past the new end are
/// removed.
pub async fn replace_for_transcription(
    client: &impl GenericClient,
    transcription_id: i64,
    chunks: &[NewTranscriptChunk],
    model: &str,
) -> Result<()> {
    let dims = check_dims(
        chunks.iter().map(|c| (c.seq, c.embedding.len())),
        &format!("transcription {transcription_id}"),
    )?;
    let delete = client
        .prepare_cached("DELETE FROM chunk WHERE transcription_id = $1 AND seq >= $2")
        .await?;
    client
        .execute(&delete, &[&transcription_id, &(chunks.len() as i32)])
        .await?;
    if chunks.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i32> = chunks.iter().map(|c| c.seq).collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let starts: Vec<i32> = chunks.iter().map(|c| c.start_char).collect();
    let ends: Vec<i32> = chunks.iter().map(|c| c.end_char).collect();
    let firsts: Vec<i32> = chunks.iter().map(|c| c.first_segment).collect();
    let lasts: Vec<i32> = chunks.iter().map(|c| c.last_segment).collect();
    let start_ms: Vec<i64> = chunks.iter().map(|c| c.start_ms).collect();
    let end_ms: Vec<i64> = chunks.iter().map(|c| c.end_ms).collect();
    let speakers: Vec<Option<&str>> = chunks.iter().map(|c| c.speaker.as_deref()).collect();
    let embeddings: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| encode_embedding(&c.embedding))
        .collect();
    let upsert = client.prepare_cached(UPSERT_TRANSCRIPT).await?;
    client
        .execute(
            &upsert,
            &[
                &transcription_id,
                &seqs,
                &texts,
                &starts,
                &ends,
                &firsts,
                &lasts,
                &start_ms,
                &end_ms,
                &speakers,
                &model,
                &dims,
                &embeddings,
            ],
        )
        .await?;
    Ok(())
}

/// How many windows of a transcript are stored embedded with `model` (0: they are still to
/// be made, or were made with another encoder).
pub async fn transcript_chunks(
    client: &impl GenericClient,
    transcription_id: i64,
    model: &str,
) -> Result<i64> {
    let stmt = client
        .prepare_cached(
            "SELECT count(*) FROM chunk WHERE transcription_id = $1 AND embedding_model = $2",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&transcription_id, &model])
        .await?
        .get(0))
}

/// The common dimension of chunks' embeddings (`(seq, dims)` each), checked to be the same
/// for all and more than 0; `owner` names whose chunks they are in the error.
fn check_dims(mut dims: impl Iterator<Item = (i32, usize)>, owner: &str) -> Result<i16> {
    let Some((seq0, first)) = dims.next() else {
        return Ok(0);
    };
    let mut all = std::iter::once((seq0, first)).chain(dims);
    if let Some((seq, bad)) = all.find(|&(_, d)| d != first || first == 0) {
        return Err(Error::InvalidInput {
            field: "chunk.embedding",
            reason: format!(
                "chunk {seq} of {owner} has {bad} dimensions, expected {first} (and more than 0)"
            ),
        });
    }
    i16::try_from(first).map_err(|_| Error::InvalidInput {
        field: "chunk.embedding",
        reason: format!("{first} dimensions is more than the schema allows"),
    })
}

/// A stored chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub chunk_id: i64,
    pub audit_id: i64,
    pub seq: i32,
    pub text: String,
    pub start_char: i32,
    pub end_char: i32,
    pub embedding: Vec<f32>,
    pub embedding_model: String,
}

/// The chunks of an audit in order.
pub async fn for_audit(client: &impl GenericClient, audit_id: i64) -> Result<Vec<ChunkRow>> {
    let stmt = client
        .prepare_cached(
            "SELECT chunk_id, audit_id, seq, text, start_char, end_char, embedding, embedding_model
             FROM chunk WHERE audit_id = $1 ORDER BY seq",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&audit_id])
        .await?
        .into_iter()
        .map(|r| ChunkRow {
            chunk_id: r.get(0),
            audit_id: r.get(1),
            seq: r.get(2),
            text: r.get(3),
            start_char: r.get(4),
            end_char: r.get(5),
            embedding: decode_embedding(r.get(6)),
            embedding_model: r.get(7),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_bytes_round_trip() {
        let v = vec![0.0, -1.5, 3.25e-7, f32::MAX];
        let bytes = encode_embedding(&v);
        assert_eq!(bytes.len(), 16);
        assert_eq!(decode_embedding(&bytes), v);
    }
}
