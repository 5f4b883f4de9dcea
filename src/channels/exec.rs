//! The `exec` channel: runs a command for each signal (design.md §3, "Exec").
//!
//! The command gets the configured argv, the environment `OOPS_NODE`, `OOPS_SERVER`,
//! `OOPS_CONDITION`, `OOPS_STATE`, `OOPS_SUBJECT` (`-` for server conditions), `OOPS_SEQ`,
//! and one `OOPS_ARG_<NAME>` per argument (name upper-cased, `-` as `_`), and the signal
//! JSON line on stdin. Runs of one channel are ordered: the next starts when the previous
//! one ended. A run that outlives the timeout is killed. A run that fails is logged and
//! counted, not repeated: the command has had its signal.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::ChannelError;
use crate::config::{ExecChannelConfig, SignalFilter};
use crate::signal::Signal;

pub struct ExecChannel {
    name: String,
    filter: SignalFilter,
    argv: Vec<String>,
    timeout: Duration,
}

impl ExecChannel {
    pub fn new(config: &ExecChannelConfig) -> ExecChannel {
        ExecChannel {
            name: config.name.clone(),
            filter: config.filter.clone(),
            argv: config.command.clone(),
            timeout: config.timeout,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.filter
    }

    pub async fn deliver(&mut self, signal: &Signal) -> Result<(), ChannelError> {
        let command = self.argv.join(" ");
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(environment(signal))
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ChannelError::Spawn {
            command: command.clone(),
            source,
        })?;
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                let mut line = signal.to_json_line();
                line.push('\n');
                // A command that does not read its stdin is not an error.
                let _ = stdin.write_all(line.as_bytes()).await;
            }
            child.wait().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                let _ = child.kill().await;
                Err(ChannelError::Timeout {
                    command,
                    timeout: self.timeout,
                })
            }
            Ok(Err(source)) => Err(ChannelError::Spawn { command, source }),
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(ChannelError::Failed {
                command,
                status: status.to_string(),
            }),
        }
    }
}

/// The `OOPS_*` environment of one signal.
pub fn environment(signal: &Signal) -> Vec<(String, String)> {
    let mut env = vec![
        ("OOPS_NODE".to_string(), signal.node.clone()),
        ("OOPS_SERVER".to_string(), signal.server.clone()),
        ("OOPS_CONDITION".to_string(), signal.condition.to_string()),
        ("OOPS_STATE".to_string(), signal.state.to_string()),
        (
            "OOPS_SUBJECT".to_string(),
            signal.subject_or_dash().to_string(),
        ),
        ("OOPS_SEQ".to_string(), signal.seq.to_string()),
    ];
    for (name, value) in &signal.args {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.push((
            format!("OOPS_ARG_{}", name.to_uppercase().replace('-', "_")),
            value,
        ));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::signal::{Args, SignalState};

    fn channel(argv: &[&str], timeout: Duration) -> ExecChannel {
        ExecChannel::new(&ExecChannelConfig {
            name: "hook".into(),
            command: argv.iter().map(|s| s.to_string()).collect(),
            timeout,
            filter: SignalFilter::default(),
        })
    }

    fn signal(seq: u64) -> Signal {
        Signal {
            seq,
            time: chrono::Utc::now(),
            node: "lab".into(),
            server: "knot".into(),
            condition: ConditionId::ZoneUpdated,
            subject: Some("a.test.".into()),
            state: SignalState::Event,
            args: Args::from([
                ("serial".to_string(), (seq as u32 + 1).into()),
                ("previous-serial".to_string(), (seq as u32).into()),
            ]),
            source: "probe".into(),
        }
    }

    #[tokio::test]
    async fn runs_in_order_with_environment_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "printf '%s %s %s %s %s %s|' \"$OOPS_SEQ\" \"$OOPS_NODE\" \"$OOPS_SERVER\" \"$OOPS_CONDITION\" \
             \"$OOPS_SUBJECT\" \"$OOPS_ARG_PREVIOUS_SERIAL\" >> {out}; head -c 9 >> {out}; echo >> {out}",
            out = out.display()
        );
        let mut hook = channel(&["/bin/sh", "-c", &script], Duration::from_secs(10));
        for seq in 1..=3 {
            hook.deliver(&signal(seq)).await.unwrap();
        }
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "1 lab knot zone-updated a.test. 1|{\"seq\":1,",
                "2 lab knot zone-updated a.test. 2|{\"seq\":2,",
                "3 lab knot zone-updated a.test. 3|{\"seq\":3,",
            ]
        );
    }

    #[tokio::test]
    async fn a_run_past_its_timeout_is_killed() {
        let mut hook = channel(&["/bin/sleep", "10"], Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = hook.deliver(&signal(1)).await.unwrap_err();
        assert!(matches!(err, ChannelError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn failures_are_reported() {
        let mut hook = channel(&["/bin/sh", "-c", "exit 3"], Duration::from_secs(5));
        let err = hook.deliver(&signal(1)).await.unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        let mut missing = channel(&["/nonexistent/hook"], Duration::from_secs(5));
        let err = missing.deliver(&signal(1)).await.unwrap_err();
        assert!(matches!(err, ChannelError::Spawn { .. }), "{err}");
    }

    #[test]
    fn environment_names_arguments_in_upper_case() {
        let env = environment(&signal(7));
        assert!(env.contains(&("OOPS_ARG_PREVIOUS_SERIAL".into(), "7".into())));
        assert!(env.contains(&("OOPS_ARG_SERIAL".into(), "8".into())));
        assert!(env.contains(&("OOPS_STATE".into(), "event".into())));
    }
}
