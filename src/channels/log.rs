//! The `log` channel: one signal JSON line per signal, to stdout or appended to a file.

use std::path::Path;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::ChannelError;
use crate::config::{LogChannelConfig, SignalFilter};
use crate::signal::Signal;

pub struct LogChannel {
    name: String,
    filter: SignalFilter,
    target: String,
    out: Box<dyn AsyncWrite + Send + Unpin>,
}

impl LogChannel {
    pub async fn open(config: &LogChannelConfig) -> Result<LogChannel, ChannelError> {
        let (target, out): (String, Box<dyn AsyncWrite + Send + Unpin>) =
            match config.path.as_deref().filter(|p| *p != Path::new("-")) {
                None => ("stdout".to_string(), Box::new(tokio::io::stdout())),
                Some(path) => {
                    let file = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .await
                        .map_err(|source| ChannelError::Open {
                            path: path.display().to_string(),
                            source,
                        })?;
                    (path.display().to_string(), Box::new(file))
                }
            };
        Ok(LogChannel {
            name: config.name.clone(),
            filter: config.filter.clone(),
            target,
            out,
        })
    }

    /// Where it writes: `stdout` or the file's path.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.filter
    }

    pub async fn deliver(&mut self, signal: &Signal) -> Result<(), ChannelError> {
        let mut line = signal.to_json_line();
        line.push('\n');
        let write = async {
            self.out.write_all(line.as_bytes()).await?;
            self.out.flush().await
        };
        write.await.map_err(|source| ChannelError::Write {
            target: self.target.clone(),
            source,
        })
    }
}
