//! The trainer's error type.

use std::path::PathBuf;

use crate::t5::CoderError;

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Coder(#[from] CoderError),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("corpus {}: {reason}", path.display())]
    Corpus { path: PathBuf, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("the loss is not finite at step {0}: the learning rate is likely too high")]
    Diverged(u64),
}

impl TrainError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.to_owned();
        move |source| TrainError::Io { path, source }
    }
}
