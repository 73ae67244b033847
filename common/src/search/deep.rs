//! Deep answers: every recording in scope is read for passages that answer the question (or
//! nothing), then the extracts are aggregated into one answer with citations. Expensive, so
//! it runs as a job (`question_job`) with progress saved after each recording, under a lease
//! so a crashed run is taken over; model calls run a few at a time.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::db::GenericClient;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::answer::{Answer, Answerer, Statement, as_question, finish, model_answer};
use super::{ChunkQuery, Corpus, Filters, Hit, SearchRequest, configs, hydrate, select};
use crate::db::chunk::decode_embedding;
use crate::embed::cosine;
use crate::{Error, Result};

/// How long a run owns its job before another may take it over (renewed with progress).
const LEASE: Duration = Duration::from_secs(300);

/// Chunks of one recording read for the question.
const CHUNKS_PER_RECORDING: usize = 4;

/// Statements kept from one recording (offline).
const STATEMENTS_PER_RECORDING: usize = 2;

/// The queue message that asks a worker (the analyze function) to run a deep question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionMessage {
    pub question_job_id: i64,
}

/// What a deep question covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    /// A configuration name; `None` routes the question.
    pub config: Option<String>,
    pub filters: Filters,
}

/// A deep question's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionJob {
    pub id: i64,
    pub question: String,
    pub scope: Scope,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    /// Recordings in scope (known once the run starts) and how many have been read.
    pub total_items: Option<i32>,
    pub done_items: i32,
    pub result: Option<Answer>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl QuestionJob {
    /// Share of the recordings read (0 before the run knows how many there are).
    pub fn progress(&self) -> f32 {
        match self.total_items {
            Some(0) => 1.0,
            Some(total) => self.done_items as f32 / total as f32,
            None => 0.0,
        }
    }
}

/// Records a deep question; it runs with [`Answerer::run_deep`].
pub async fn create(client: &impl GenericClient, question: &str, scope: &Scope) -> Result<i64> {
    let mut check = SearchRequest::new(question);
    check.filters = scope.filters.clone();
    check.validate().map_err(as_question)?;
    let all = configs(client).await?;
    select(&all, scope.config.as_deref(), None)?;
    let scope_json = serde_json::to_value(scope).map_err(|e| Error::InvalidInput {
        field: "scope",
        reason: e.to_string(),
    })?;
    let row = client
        .query_one(
            "INSERT INTO question_job (question, scope) VALUES ($1, $2) RETURNING question_job_id",
            &[&question.trim(), &scope_json],
        )
        .await?;
    Ok(row.get(0))
}

/// A deep question by id.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<QuestionJob>> {
    let row = client
        .query_opt(
            "SELECT question_job_id, question, scope, status, total_items, done_items, result,
                    last_error, created_at, updated_at, finished_at
             FROM question_job WHERE question_job_id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let result: Option<serde_json::Value> = r.get(6);
    Ok(Some(QuestionJob {
        id: r.get(0),
        question: r.get(1),
        scope: stored(id, "scope", r.get(2))?,
        status: r.get(3),
        total_items: r.get(4),
        done_items: r.get(5),
        result: result.map(|v| stored(id, "result", v)).transpose()?,
        last_error: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
        finished_at: r.get(10),
    }))
}

/// A JSON column of question `id` read back; one that does not parse (written by another
/// version) is an error naming it, never a silent default: a default scope would widen the
/// question to every report.
fn stored<T: serde::de::DeserializeOwned>(
    id: i64,
    column: &'static str,
    value: serde_json::Value,
) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::InvalidInput {
        field: column,
        reason: format!("question {id}'s stored {column} does not parse: {e}"),
    })
}

const CLAIM_SQL: &str = "
UPDATE question_job
SET status = 'running', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
    done_items = 0, updated_at = now()
WHERE question_job_id = $1
  AND (status = 'pending' OR (status = 'running' AND lease_until < now()))
RETURNING question, scope";

impl Answerer {
    /// Runs deep question `id` to the end as `worker`, calling `progress(done, total)` after
    /// each recording. A finished question returns its stored answer; one another worker holds
    /// is [`Error::QuestionBusy`]; a failure is recorded on the job and returned.
    pub async fn run_deep(
        &self,
        id: i64,
        worker: &str,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<Answer> {
        let conn = self.searcher.pool.get().await?;
        let claimed = conn
            .query_opt(CLAIM_SQL, &[&id, &worker, &LEASE.as_secs_f64()])
            .await?;
        let Some(row) = claimed else {
            let job = get(&conn, id).await?.ok_or(Error::UnknownQuestion { id })?;
            return match (job.status.as_str(), job.result) {
                ("done", Some(answer)) => Ok(answer),
                ("failed", _) => Err(Error::InvalidInput {
                    field: "question",
                    reason: format!(
                        "question {id} failed: {}",
                        job.last_error.unwrap_or_default()
                    ),
                }),
                _ => Err(Error::QuestionBusy {
                    id,
                    until: job.updated_at.to_rfc3339(),
                }),
            };
        };
        drop(conn);
        let question: String = row.get(0);
        let scope: Scope = stored(id, "scope", row.get(1))?;
        match self.deep(id, worker, &question, &scope, progress).await {
            Ok(answer) => {
                let json = serde_json::to_value(&answer).map_err(|e| Error::InvalidInput {
                    field: "result",
                    reason: e.to_string(),
                })?;
                let conn = self.searcher.pool.get().await?;
                let n = conn
                    .execute(
                        "UPDATE question_job SET status = 'done', result = $3, lease_owner = NULL,
                                lease_until = NULL, finished_at = now(), updated_at = now(),
                                last_error = NULL
                         WHERE question_job_id = $1 AND lease_owner = $2",
                        &[&id, &worker, &json],
                    )
                    .await?;
                if n == 0 {
                    return Err(Error::QuestionBusy {
                        id,
                        until: "now (the lease was taken over)".into(),
                    });
                }
                Ok(answer)
            }
            Err(e) => {
                let conn = self.searcher.pool.get().await?;
                let status = if e.is_retryable() {
                    "pending"
                } else {
                    "failed"
                };
                conn.execute(
                    "UPDATE question_job SET status = $3, last_error = $4, lease_owner = NULL,
                            lease_until = NULL, updated_at = now(),
                            finished_at = CASE WHEN $3 = 'failed' THEN now() END
                     WHERE question_job_id = $1 AND lease_owner = $2",
                    &[&id, &worker, &status, &e.to_string()],
                )
                .await?;
                Err(e)
            }
        }
    }

    async fn deep(
        &self,
        id: i64,
        worker: &str,
        question: &str,
        scope: &Scope,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<Answer> {
        let vector = self
            .searcher
            .embed(vec![question.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::Embed {
                reason: "the encoder returned no vector for the question".into(),
            })?;
        let route = self.route(scope.config.as_deref(), &vector).await?;
        let conn = self.searcher.pool.get().await?;
        let all = self.searcher.configs(&conn).await?;
        let config_ids: Vec<i16> = select(all, Some(&route.config), Some(Corpus::Both))?
            .iter()
            .map(|c| c.id as i16)
            .collect();
        let f = &scope.filters;
        let model_id = self.searcher.embedder.model_id().to_owned();
        let mut q = ChunkQuery::new("DISTINCT a.transcription_id", f, &config_ids);
        let m = q.param(&model_id);
        q.and(&format!("c.embedding_model = {m}"));
        q.sql.push_str("\nORDER BY 1");
        let rows = conn.query(&q.sql, &q.params).await?;
        let recordings: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let total = recordings.len();
        conn.execute(
            "UPDATE question_job SET total_items = $2, updated_at = now() WHERE question_job_id = $1",
            &[&id, &(total as i32)],
        )
        .await?;
        drop(conn);
        progress(0, total);

        let concurrency = if self.model.is_some() {
            self.settings.deep_concurrency.max(1)
        } else {
            1
        };
        let mut extracts = futures::stream::iter(recordings.into_iter().map(|transcription| {
            let (config_ids, model_id, vector) = (&config_ids, &model_id, &vector);
            async move {
                let conn = self.searcher.pool.get().await?;
                let mut q = ChunkQuery::new("c.chunk_id, c.embedding", f, config_ids);
                let (m, t) = (q.param(model_id), q.param(&transcription));
                q.and(&format!(
                    "c.embedding_model = {m} AND a.transcription_id = {t}"
                ));
                let stmt = conn.prepare_cached(&q.sql).await?;
                let rows = conn.query(&stmt, &q.params).await?;
                let mut scored: Vec<(f32, i64)> = rows
                    .iter()
                    .map(|r| {
                        let e = decode_embedding(r.get::<_, &[u8]>(1));
                        (cosine(vector, &e), r.get::<_, i64>(0))
                    })
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.truncate(CHUNKS_PER_RECORDING);
                let ids: Vec<i64> = scored.iter().map(|s| s.1).collect();
                let mut hits = hydrate(&conn, &ids).await?;
                drop(conn);
                hits.sort_by_key(|h| ids.iter().position(|&i| i == h.chunk_id));
                for (i, h) in hits.iter_mut().enumerate() {
                    h.rank = i + 1;
                }
                let found = match &self.model {
                    Some(model) => model_answer(model.as_ref(), question, &hits).await?,
                    None => {
                        self.extract(question, vector, &hits, STATEMENTS_PER_RECORDING)
                            .await?
                    }
                };
                Ok::<_, Error>((hits, found))
            }
        }))
        .buffered(concurrency);

        // Hits of every recording, ranked globally in the order recordings were read.
        let mut sources: Vec<Hit> = Vec::new();
        let mut statements: Vec<Statement> = Vec::new();
        let mut done = 0usize;
        while let Some(read) = extracts.next().await {
            let (hits, found) = read?;
            let offset = sources.len();
            sources.extend(hits.into_iter().map(|mut h| {
                h.rank += offset;
                h
            }));
            statements.extend(found.into_iter().map(|mut s| {
                s.sources.iter_mut().for_each(|n| *n += offset);
                s
            }));
            done += 1;
            let conn = self.searcher.pool.get().await?;
            let n = conn
                .execute(
                    "UPDATE question_job SET done_items = $3, updated_at = now(),
                            lease_until = now() + make_interval(secs => $4)
                     WHERE question_job_id = $1 AND lease_owner = $2",
                    &[&id, &worker, &(done as i32), &LEASE.as_secs_f64()],
                )
                .await?;
            if n == 0 {
                return Err(Error::QuestionBusy {
                    id,
                    until: "now (the lease was taken over)".into(),
                });
            }
            progress(done, total);
        }
        drop(extracts);

        // Aggregate: a model writes one answer over the cited extracts; offline, the extracts
        // are the answer.
        if let Some(model) = &self.model
            && !statements.is_empty()
        {
            let cited: BTreeSet<usize> =
                statements.iter().flat_map(|s| s.sources.clone()).collect();
            let used: Vec<Hit> = sources
                .iter()
                .filter(|h| cited.contains(&h.rank))
                .cloned()
                .collect();
            statements = model_answer(model.as_ref(), question, &used).await?;
        }
        Ok(finish(
            question.to_owned(),
            statements,
            sources,
            route,
            self.engine_id(),
            super::Freshness {
                generation: None,
                high_water_mark: 0,
                fresh_scanned: 0,
                fresh_truncated: false,
                warning: None,
            },
        ))
    }
}
