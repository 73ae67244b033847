//! Search, answers, deep questions and index state over `common::search`; 503 when this
//! deployment has no search state.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::{Caller, Permission};
use crate::extract::{Id, JsonBody};
use crate::problem::{Kind, Problem, ProblemBody};
use crate::routes::required_text;
use crate::search::{
    AnswerResponse, IndexState, QuestionJob, QuestionRequest, SearchFilters, SearchHit,
    SearchRequest, SearchResponse, SearchState,
};
use common::search::deep::{self, QuestionMessage, Scope};
use common::search::{self as core, Served};

/// Looks for a newer snapshot in the background (at most every poll interval; a search never
/// waits for a download).
fn refresh(search: &SearchState) {
    if let Some(served) = search.served.clone() {
        tokio::spawn(async move { served.maybe_refresh().await });
    }
}

/// The longest query or question accepted.
const MAX_QUESTION_CHARS: usize = 2000;

/// The search state, or 503 when this deployment has none.
fn configured(state: &AppState) -> Result<&SearchState, Problem> {
    state.search.as_deref().ok_or_else(not_configured)
}

fn not_configured() -> Problem {
    Problem::new(Kind::SearchUnavailable, "search is not configured")
}

fn check_filters(filters: &SearchFilters) -> Result<(), Problem> {
    if let (Some(from), Some(to)) = (filters.date_from, filters.date_to)
        && from > to
    {
        return Err(Problem::invalid(
            "filters.date_from",
            format!("{from} is after filters.date_to {to}"),
        ));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/search",
    tag = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "The nearest chunks", body = SearchResponse),
        (status = 503, description = "Search is not configured", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<SearchRequest>,
) -> Result<Json<SearchResponse>, Problem> {
    caller.require(Permission::Search)?;
    required_text("query", &req.query, MAX_QUESTION_CHARS)?;
    if req.limit.is_some_and(|n| !(1..=100).contains(&n)) {
        return Err(Problem::invalid("limit", "must be between 1 and 100"));
    }
    check_filters(&req.filters)?;
    let search = configured(&state)?;
    refresh(search);
    let mut request = core::SearchRequest::new(req.query.trim());
    request.config = req.index.clone();
    request.filters = (&req.filters).into();
    request.limit = req.limit.map_or(10, usize::from);
    request.hybrid = req.hybrid;
    request.corpus = req.corpus.map(Into::into);
    let snapshot = search.served.as_ref().and_then(|s| s.current());
    let results = search
        .answerer
        .searcher
        .search(snapshot.as_deref().map(Served::from), &request)
        .await?;
    Ok(Json(SearchResponse {
        index: results.configs.join(","),
        generation: results.freshness.generation,
        fresh_scanned: results.freshness.fresh_scanned,
        hits: results.hits.into_iter().map(SearchHit::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/answers",
    operation_id = "answer_question",
    tag = "search",
    request_body = QuestionRequest,
    responses(
        (status = 200, description = "A fast answer from the top chunks", body = AnswerResponse),
        (status = 503, description = "Search is not configured", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn answer(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<QuestionRequest>,
) -> Result<Json<AnswerResponse>, Problem> {
    caller.require(Permission::Search)?;
    required_text("question", &req.question, MAX_QUESTION_CHARS)?;
    check_filters(&req.filters)?;
    let search = configured(&state)?;
    refresh(search);
    let mut request = common::search::answer::AnswerRequest::new(req.question.trim());
    request.config = req.index.clone();
    request.filters = (&req.filters).into();
    let snapshot = search.served.as_ref().and_then(|s| s.current());
    let answer = search
        .answerer
        .answer(snapshot.as_deref().map(Served::from), &request)
        .await?;
    Ok(Json(answer.into()))
}

#[utoipa::path(
    post,
    path = "/questions",
    operation_id = "ask_question",
    tag = "search",
    request_body = QuestionRequest,
    responses(
        (status = 202, description = "A deep question's job; follow it at /questions/{id}",
         body = QuestionJob),
        (status = 503, description = "Search is not configured", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn ask(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<QuestionRequest>,
) -> Result<(StatusCode, Json<QuestionJob>), Problem> {
    caller.require(Permission::Search)?;
    required_text("question", &req.question, MAX_QUESTION_CHARS)?;
    check_filters(&req.filters)?;
    let search = configured(&state)?;
    let scope = Scope {
        config: req.index.clone(),
        filters: (&req.filters).into(),
    };
    let conn = state.pool.get().await?;
    let id = deep::create(&conn, req.question.trim(), &scope).await?;
    match &search.questions {
        Some(queue) => {
            queue
                .send_json(
                    &QuestionMessage {
                        question_job_id: id,
                    },
                    "question",
                    &format!("question-{id}"),
                )
                .await?;
        }
        None => {
            // No worker queue (`vox serve`): answer it in this process.
            let answerer = search.answerer.clone();
            tokio::spawn(async move {
                let worker = common::config::worker_id();
                if let Err(e) = answerer.run_deep(id, &worker, &|_, _| {}).await {
                    tracing::warn!(question_job_id = id, error = %common::error::chain(&e), "deep question failed");
                }
            });
        }
    }
    let job = deep::get(&conn, id)
        .await?
        .ok_or(common::Error::UnknownQuestion { id })?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

#[utoipa::path(
    get,
    path = "/questions/{id}",
    operation_id = "get_question",
    tag = "search",
    params(("id" = i64, Path, description = "Question id", minimum = 1)),
    responses(
        (status = 200, description = "The question's progress and result", body = QuestionJob),
        (status = 404, description = "No such question", body = ProblemBody,
         content_type = "application/problem+json"),
        (status = 503, description = "Search is not configured", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn question(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<QuestionJob>, Problem> {
    caller.require(Permission::Search)?;
    configured(&state)?;
    let conn = state.pool.get().await?;
    match deep::get(&conn, id).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(Problem::not_found(format!("question {id} does not exist"))),
    }
}

#[utoipa::path(
    get,
    path = "/index",
    tag = "state",
    responses(
        (status = 200, description = "The served index and its lag", body = IndexState),
        (status = 503, description = "Search is not configured", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn index_state(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<IndexState>, Problem> {
    caller.require(Permission::Search)?;
    let search = configured(&state)?;
    refresh(search);
    let conn = state.pool.get().await?;
    let snapshot = search.served.as_ref().and_then(|s| s.current());
    let lag = common::index::reader::IndexLag::measure(
        &conn,
        snapshot.as_ref().map(|s| s.manifest.generation),
        snapshot.as_ref().map_or(0, |s| s.manifest.high_water_mark),
    )
    .await?;
    Ok(Json(IndexState {
        generation: lag.generation,
        high_water_mark: lag.high_water_mark,
        embedding_model: snapshot
            .as_ref()
            .map(|s| s.manifest.embedding_model.clone()),
        lag_chunks: lag.chunks_not_indexed,
        published_at: snapshot.as_ref().map(|s| s.manifest.created_at),
        counts: snapshot
            .as_ref()
            .map(|s| s.manifest.counts.clone())
            .unwrap_or_default(),
    }))
}
