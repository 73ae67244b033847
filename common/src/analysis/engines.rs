//! Choosing the report engine at cold start: the offline engine unless a hosted model is
//! configured (`VOX_LLM_PROVIDER`).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::offline::OfflineEngine;
use super::stage::ReportEngine;
use super::{JobInput, ReportOutput};
use crate::embed::Embedder;
use crate::llm::ChatModel;
use crate::{Error, Result};

/// The offline engine on a blocking thread.
#[derive(Debug, Clone)]
pub struct OfflineReports(pub Arc<OfflineEngine>);

impl ReportEngine for OfflineReports {
    fn engine_id(&self) -> String {
        self.0.engine_id()
    }

    fn analyze<'a>(&'a self, job: &'a JobInput) -> BoxFuture<'a, Result<ReportOutput>> {
        let engine = Arc::clone(&self.0);
        let job = job.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || engine.analyze(&job))
                .await
                .map_err(|e| Error::Analysis {
                    reason: format!("the offline engine panicked: {e}"),
                })?
        })
    }
}

/// The configured engine: a hosted chat model when `VOX_LLM_PROVIDER` names one, else the
/// offline engine.
pub async fn from_env(embedder: Arc<dyn Embedder>) -> Result<Arc<dyn ReportEngine>> {
    for_model(crate::llm::chat_model_from_env().await?, embedder)
}

/// The engine on `model` (from [`crate::llm::chat_model_from_env`], so that a process which
/// also answers questions builds one client), or the offline engine without one.
pub fn for_model(
    model: Option<Arc<dyn ChatModel>>,
    embedder: Arc<dyn Embedder>,
) -> Result<Arc<dyn ReportEngine>> {
    match model {
        Some(model) => Ok(Arc::new(super::llm::LlmReports::new(
            model,
            Arc::clone(&embedder),
        )?)),
        None => Ok(Arc::new(OfflineReports(Arc::new(OfflineEngine::new(
            embedder,
        )?)))),
    }
}
