//! Typed configuration from environment variables, read once per cold start.
//!
//! Every error names the variable at fault, so a misconfigured deployment says what to fix.

use std::str::FromStr;

/// A configuration problem, naming the environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {var} is required but not set")]
    Missing { var: &'static str },
    #[error("environment variable {var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// The variable's value, or `None` when unset or empty.
pub fn optional(var: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            var,
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// The variable's value; an error naming it when unset.
pub fn required(var: &'static str) -> Result<String, ConfigError> {
    optional(var)?.ok_or(ConfigError::Missing { var })
}

/// The variable's value, or `default` when unset.
pub fn or_default(var: &'static str, default: &str) -> Result<String, ConfigError> {
    Ok(optional(var)?.unwrap_or_else(|| default.to_owned()))
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parsed_or<T>(var: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(var)? {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("{raw:?}: {e}"),
            }),
    }
}

/// Names this process's leases: the Lambda log stream (one per execution environment) or
/// the host, and the process id.
pub fn worker_id() -> String {
    let host = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "local".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_defaults_or_an_error_naming_them() {
        assert_eq!(
            parsed_or::<u32>("VOX_TEST_CONFIG_SURELY_UNSET", 7).ok(),
            Some(7)
        );
        let err = required("VOX_TEST_CONFIG_SURELY_UNSET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable VOX_TEST_CONFIG_SURELY_UNSET is required but not set"
        );
    }
}
