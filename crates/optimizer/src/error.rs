use thiserror::Error;

use crate::llm::LlmError;

pub type Result<T, E = OptimizerError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum OptimizerError {
    #[error(transparent)]
    Store(#[from] lightning_store::StoreError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Too few trajectories, several agents without `--agent`, nothing to start from, ...
    #[error("{0}")]
    Dataset(String),
    /// Invalid flags or templates, named in the message.
    #[error("{0}")]
    Config(String),
    #[error("evaluator: {0}")]
    Evaluator(String),
    /// The run was cancelled (Ctrl-C) and stored as `cancelled`.
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl OptimizerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        OptimizerError::Io {
            context: context.into(),
            source,
        }
    }
}
