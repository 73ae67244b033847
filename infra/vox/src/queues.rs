//! Queue URLs from the variables the functions read: a URL as it is, a bare queue name
//! looked up with GetQueueUrl.

use anyhow::Context;

/// The queue in `var` (`None` when unset).
pub async fn url_from_env(
    client: &aws_sdk_sqs::Client,
    var: &'static str,
) -> anyhow::Result<Option<String>> {
    let Some(value) = common::config::optional(var)? else {
        return Ok(None);
    };
    if value.starts_with("http://") || value.starts_with("https://") {
        return Ok(Some(value));
    }
    let url = client
        .get_queue_url()
        .queue_name(&value)
        .send()
        .await
        .with_context(|| format!("{var}: no queue named {value:?}"))?
        .queue_url()
        .map(str::to_owned)
        .with_context(|| format!("{var}: no URL for queue {value:?}"))?;
    Ok(Some(url))
}
