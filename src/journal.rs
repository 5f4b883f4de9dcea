//! The journal: every signal and the current state, in an embedded SQLite database.
//!
//! The engine writes each step — its signals and the changes to the set of met level
//! conditions — in one transaction ([`Journal::record`]) before anyone hears of it, so a
//! restart loses nothing: the next `seq` follows the last one written, the current state is
//! read back with [`Journal::current`], and every channel resumes from its own delivery
//! cursor ([`Journal::cursor`]).
//!
//! Tables (schema version 1, kept in SQLite's `user_version`):
//!
//! * `signals` — one row per signal: `seq` (primary key), `time`, `server`, `condition`,
//!   `subject`, `state` as columns for queries, and the signal's JSON line, from which it is
//!   read back exactly;
//! * `current` — one row per met level condition, keyed by server, condition and subject
//!   (`''` for server-level conditions), with the [`CurrentCondition`] as JSON;
//! * `cursors` — the last `seq` each channel has delivered;
//! * `meta` — the node the journal belongs to and the highest `seq` ever written, so that
//!   [`Journal::last_seq`] stays right after old signals are pruned;
//! * `anycast` — what each anycast policy last had announced ([`AnycastRecord`]), so that a
//!   restart reconciles instead of withdrawing and re-announcing. Created with
//!   `IF NOT EXISTS` on open, so journals of schema version 1 without it gain it as they are.
//!
//! Retention wins over delivery: [`Journal::prune`] deletes old signals even when a channel
//! has not delivered them yet (its peer has been down for longer than the retention, or the
//! channel was removed from the config and its cursor never moves again). It logs a warning
//! naming each channel that loses signals that way; the channel goes on with the oldest
//! signal that is left.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::signal::{CurrentCondition, Signal, StateChange, format_time};

/// The schema version this code writes and understands.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection to the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;
CREATE TABLE signals (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    server    TEXT NOT NULL,
    condition TEXT NOT NULL,
    subject   TEXT,
    state     TEXT NOT NULL,
    json      TEXT NOT NULL
) STRICT;
CREATE INDEX signals_by_time ON signals (time);
CREATE TABLE current (
    server    TEXT NOT NULL,
    condition TEXT NOT NULL,
    subject   TEXT NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (server, condition, subject)
) STRICT;
CREATE TABLE cursors (
    channel TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL
) STRICT;
";

/// Added after schema version 1 was released; created on every open if missing.
const ANYCAST_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS anycast (
    policy    TEXT PRIMARY KEY,
    announced INTEGER NOT NULL,
    prepend   INTEGER NOT NULL,
    changed   TEXT NOT NULL
) STRICT;
";

/// What an anycast policy last had announced, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnycastRecord {
    pub policy: String,
    pub announced: bool,
    /// AS-path prepends while announced.
    pub prepend: u8,
    /// When the driver last changed it.
    pub changed: DateTime<Utc>,
}

const META_LAST_SEQ: &str = "last_seq";
const META_NODE: &str = "node";

/// Why the journal could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the journal has schema version {found}, newer than the {supported} this dns-oops \
         understands; run a newer dns-oops or use another journal path"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("signal seq {got} does not follow the journal's last seq {last} (expected {expected})")]
    SeqGap { last: u64, expected: u64, got: u64 },
    #[error("row {row} of the journal's `{table}` table is corrupt: {source}")]
    CorruptRow {
        table: &'static str,
        /// The `seq` of a signal, the rowid of a current condition.
        row: u64,
        source: serde_json::Error,
    },
    #[error("journal row {seq} holds the JSON of signal {found}")]
    SeqMismatch { seq: u64, found: u64 },
}

/// The journal of one node: a SQLite database behind a mutex, shared as `Arc<Journal>`.
///
/// Every method is one short, blocking SQLite call; async callers with a lot to read run
/// them on a blocking thread.
pub struct Journal {
    connection: Mutex<Connection>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, creating missing parent directories, in
    /// WAL mode with `synchronous=NORMAL`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| JournalError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.execute_batch("PRAGMA synchronous = NORMAL")?;
        Journal::with_connection(connection)
    }

    /// A journal that lives in memory only (tests, one-shot runs).
    pub fn open_in_memory() -> Result<Journal, JournalError> {
        Journal::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(mut connection: Connection) -> Result<Journal, JournalError> {
        migrate(&mut connection)?;
        connection.execute_batch(ANYCAST_SCHEMA)?;
        Ok(Journal {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled back any open transaction when the
        // transaction was dropped, so the connection is still consistent.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The highest `seq` ever recorded; 0 for a new journal. Pruning does not lower it.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        Ok(read_last_seq(&self.lock())?)
    }

    /// Writes one engine step in one transaction: the signals, which must continue the
    /// journal's numbering (`last_seq + 1`, `+ 2`, …), and the changes to the current state.
    /// On error nothing is written.
    pub fn record(&self, signals: &[Signal], changes: &[StateChange]) -> Result<(), JournalError> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let last = read_last_seq(&tx)?;
        for (expected, signal) in (last + 1..).zip(signals) {
            if signal.seq != expected {
                return Err(JournalError::SeqGap {
                    last,
                    expected,
                    got: signal.seq,
                });
            }
            insert_signal(&tx, signal)?;
        }
        if let Some(signal) = signals.last() {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![META_LAST_SEQ, signal.seq],
            )?;
        }
        for change in changes {
            apply_change(&tx, change)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The level conditions that are met now, sorted by server, condition (in catalogue
    /// order) and subject (server-level first).
    pub fn current(&self) -> Result<Vec<CurrentCondition>, JournalError> {
        read_current(&self.lock())
    }

    /// The last `seq` and the current state as of that signal, read together.
    pub fn current_with_seq(&self) -> Result<(u64, Vec<CurrentCondition>), JournalError> {
        let connection = self.lock();
        Ok((read_last_seq(&connection)?, read_current(&connection)?))
    }

    /// Up to `limit` signals with a `seq` greater than `after`, oldest first.
    pub fn signals_after(&self, after: u64, limit: usize) -> Result<Vec<Signal>, JournalError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT seq, json FROM signals WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        // No seq is beyond i64::MAX, SQLite's largest integer.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![after, limit], |row| {
            Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut signals = Vec::new();
        for row in rows {
            let (seq, json) = row?;
            let signal: Signal =
                serde_json::from_str(&json).map_err(|source| JournalError::CorruptRow {
                    table: "signals",
                    row: seq,
                    source,
                })?;
            if signal.seq != seq {
                return Err(JournalError::SeqMismatch {
                    seq,
                    found: signal.seq,
                });
            }
            signals.push(signal);
        }
        Ok(signals)
    }

    /// The last `seq` the channel has delivered, or `None` for a channel new to this journal.
    pub fn cursor(&self, channel: &str) -> Result<Option<u64>, JournalError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT seq FROM cursors WHERE channel = ?1",
                [channel],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records that the channel has delivered every signal up to `seq`.
    pub fn set_cursor(&self, channel: &str, seq: u64) -> Result<(), JournalError> {
        self.lock().execute(
            "INSERT INTO cursors (channel, seq) VALUES (?1, ?2)
             ON CONFLICT (channel) DO UPDATE SET seq = excluded.seq",
            params![channel, seq],
        )?;
        Ok(())
    }

    /// Deletes signals older than `older_than` and, with `max_signals`, all but the newest
    /// `max_signals`; returns how many were deleted. Retention wins over delivery: signals a
    /// channel has not delivered yet are deleted too, with a warning naming the channel.
    /// The current state and [`Journal::last_seq`] are untouched.
    pub fn prune(
        &self,
        older_than: DateTime<Utc>,
        max_signals: Option<u64>,
    ) -> Result<u64, JournalError> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let last = read_last_seq(&tx)?;
        // Signals up to this seq go whatever their age; 0 keeps them all.
        let beyond_count = max_signals.map_or(0, |max| last.saturating_sub(max));
        let cutoff = format_time(&older_than);
        let newest_deleted: Option<u64> = tx.query_row(
            "SELECT MAX(seq) FROM signals WHERE time < ?1 OR seq <= ?2",
            params![cutoff, beyond_count],
            |row| row.get(0),
        )?;
        let Some(newest_deleted) = newest_deleted else {
            return Ok(0);
        };
        warn_about_undelivered(&tx, &cutoff, beyond_count, newest_deleted)?;
        let deleted = tx.execute(
            "DELETE FROM signals WHERE time < ?1 OR seq <= ?2",
            params![cutoff, beyond_count],
        )?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    /// The node this journal belongs to, once set.
    pub fn node(&self) -> Result<Option<String>, JournalError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [META_NODE],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records the node this journal belongs to.
    pub fn set_node(&self, node: &str) -> Result<(), JournalError> {
        self.lock().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![META_NODE, node],
        )?;
        Ok(())
    }

    /// What each anycast policy last had announced, by policy name. A row with an
    /// unreadable time is read as changed long ago.
    pub fn anycast_records(&self) -> Result<Vec<AnycastRecord>, JournalError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "SELECT policy, announced, prepend, changed FROM anycast ORDER BY policy",
        )?;
        let rows = statement.query_map([], |row| {
            let changed: String = row.get(3)?;
            Ok(AnycastRecord {
                policy: row.get(0)?,
                announced: row.get(1)?,
                prepend: row.get(2)?,
                changed: DateTime::parse_from_rfc3339(&changed)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(DateTime::UNIX_EPOCH),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records what an anycast policy has announced now.
    pub fn set_anycast_record(&self, record: &AnycastRecord) -> Result<(), JournalError> {
        self.lock().execute(
            "INSERT INTO anycast (policy, announced, prepend, changed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (policy) DO UPDATE SET announced = excluded.announced,
                 prepend = excluded.prepend, changed = excluded.changed",
            params![
                record.policy,
                record.announced,
                record.prepend,
                format_time(&record.changed)
            ],
        )?;
        Ok(())
    }
}

/// Brings the schema to [`SCHEMA_VERSION`].
fn migrate(connection: &mut Connection) -> Result<(), JournalError> {
    let tx = connection.transaction()?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(JournalError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    tx.commit()?;
    Ok(())
}

fn read_last_seq(connection: &Connection) -> rusqlite::Result<u64> {
    Ok(connection
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_LAST_SEQ],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn insert_signal(tx: &Transaction<'_>, signal: &Signal) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO signals (seq, time, server, condition, subject, state, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        signal.seq,
        format_time(&signal.time),
        signal.server,
        signal.condition.as_str(),
        signal.subject,
        signal.state.as_str(),
        signal.to_json_line(),
    ])?;
    Ok(())
}

fn apply_change(tx: &Transaction<'_>, change: &StateChange) -> Result<(), JournalError> {
    match change {
        StateChange::Upsert(current) => {
            let json =
                serde_json::to_string(current).expect("a current condition always serialises");
            tx.prepare_cached(
                "INSERT INTO current (server, condition, subject, json) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (server, condition, subject) DO UPDATE SET json = excluded.json",
            )?
            .execute(params![
                current.server,
                current.condition.as_str(),
                current.subject.as_deref().unwrap_or(""),
                json
            ])?;
        }
        StateChange::Remove {
            server,
            condition,
            subject,
        } => {
            tx.prepare_cached(
                "DELETE FROM current WHERE server = ?1 AND condition = ?2 AND subject = ?3",
            )?
            .execute(params![
                server,
                condition.as_str(),
                subject.as_deref().unwrap_or("")
            ])?;
        }
    }
    Ok(())
}

fn read_current(connection: &Connection) -> Result<Vec<CurrentCondition>, JournalError> {
    let mut statement = connection.prepare_cached("SELECT rowid, json FROM current")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut current = Vec::new();
    for row in rows {
        let (rowid, json) = row?;
        let condition: CurrentCondition =
            serde_json::from_str(&json).map_err(|source| JournalError::CorruptRow {
                table: "current",
                row: rowid,
                source,
            })?;
        current.push(condition);
    }
    current.sort_by(|a, b| {
        (&a.server, a.condition, &a.subject).cmp(&(&b.server, b.condition, &b.subject))
    });
    Ok(current)
}

/// Logs each channel whose undelivered signals a prune is about to delete.
fn warn_about_undelivered(
    tx: &Transaction<'_>,
    cutoff: &str,
    beyond_count: u64,
    newest_deleted: u64,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare(
        "SELECT c.channel, c.seq,
                (SELECT COUNT(*) FROM signals s
                  WHERE s.seq > c.seq AND (s.time < ?1 OR s.seq <= ?2))
           FROM cursors c WHERE c.seq < ?3",
    )?;
    let rows = statement.query_map(params![cutoff, beyond_count, newest_deleted], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u64>(1)?,
            row.get::<_, u64>(2)?,
        ))
    })?;
    for row in rows {
        let (channel, cursor, lost) = row?;
        if lost > 0 {
            tracing::warn!(
                channel,
                cursor,
                "pruning {lost} signals the channel has not delivered yet (older than the \
                 retention or beyond max-signals); it continues with the oldest signal left"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::signal::{Args, SignalState};
    use chrono::TimeZone;

    fn signal(seq: u64, time: DateTime<Utc>, state: SignalState) -> Signal {
        Signal {
            seq,
            time,
            node: "ams1".into(),
            server: "knot".into(),
            condition: ConditionId::ZoneReady,
            subject: Some("example.net.".into()),
            state,
            args: Args::from([("serial".to_string(), serde_json::Value::from(2026112201u32))]),
            source: "probe".into(),
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 8, minute, 0).unwrap()
            + chrono::Duration::microseconds(123_456)
    }

    fn met(
        server: &str,
        condition: ConditionId,
        subject: Option<&str>,
        seq: u64,
    ) -> CurrentCondition {
        CurrentCondition {
            server: server.into(),
            condition,
            subject: subject.map(str::to_string),
            since: at(0),
            args: Args::new(),
            source: "probe".into(),
            seq,
        }
    }

    fn events(first: u64, count: u64) -> Vec<Signal> {
        (first..first + count)
            .map(|seq| signal(seq, at(0), SignalState::Event))
            .collect()
    }

    #[test]
    fn new_journal_is_empty() {
        let journal = Journal::open_in_memory().unwrap();
        assert_eq!(journal.last_seq().unwrap(), 0);
        assert!(journal.current().unwrap().is_empty());
        assert!(journal.signals_after(0, 10).unwrap().is_empty());
        assert_eq!(journal.node().unwrap(), None);
    }

    #[test]
    fn seq_and_state_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/journal.sqlite");
        {
            let journal = Journal::open(&path).unwrap();
            journal.set_node("ams1").unwrap();
            let first = signal(1, at(1), SignalState::Met);
            journal
                .record(
                    &[first.clone(), signal(2, at(2), SignalState::Event)],
                    &[StateChange::Upsert(met(
                        "knot",
                        ConditionId::ZoneReady,
                        Some("example.net."),
                        1,
                    ))],
                )
                .unwrap();
            assert_eq!(journal.signals_after(0, 1).unwrap(), vec![first]);
        }
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.last_seq().unwrap(), 2);
        assert_eq!(journal.node().unwrap().as_deref(), Some("ams1"));
        assert_eq!(journal.current().unwrap().len(), 1);
        journal
            .record(&[signal(3, at(3), SignalState::Cleared)], &[])
            .unwrap();
        let err = journal
            .record(&[signal(3, at(3), SignalState::Cleared)], &[])
            .unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::SeqGap {
                    expected: 4,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(journal.last_seq().unwrap(), 3);
    }

    #[test]
    fn signals_read_back_exactly() {
        let journal = Journal::open_in_memory().unwrap();
        let mut original = signal(1, at(1), SignalState::Met);
        original
            .args
            .insert("text".into(), "ünïcode \"quoted\"".into());
        journal
            .record(std::slice::from_ref(&original), &[])
            .unwrap();
        assert_eq!(journal.signals_after(0, 10).unwrap(), vec![original]);
    }

    #[test]
    fn record_refuses_a_gap_and_writes_nothing() {
        let journal = Journal::open_in_memory().unwrap();
        journal.record(&events(1, 2), &[]).unwrap();
        let upsert = StateChange::Upsert(met("knot", ConditionId::ServerRunning, None, 3));
        let err = journal
            .record(
                &[
                    signal(3, at(0), SignalState::Met),
                    signal(5, at(0), SignalState::Met),
                ],
                &[upsert],
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::SeqGap {
                    last: 2,
                    expected: 4,
                    got: 5
                }
            ),
            "{err}"
        );
        assert_eq!(journal.last_seq().unwrap(), 2);
        assert_eq!(journal.signals_after(0, 10).unwrap().len(), 2);
        assert!(journal.current().unwrap().is_empty());
        let err = journal
            .record(&[signal(0, at(0), SignalState::Met)], &[])
            .unwrap_err();
        assert!(matches!(err, JournalError::SeqGap { got: 0, .. }), "{err}");
    }

    #[test]
    fn state_is_upserted_removed_and_sorted() {
        let journal = Journal::open_in_memory().unwrap();
        let changes = [
            StateChange::Upsert(met("nsd", ConditionId::ServerRunning, None, 1)),
            StateChange::Upsert(met("knot", ConditionId::ZoneReady, Some("b.example."), 2)),
            StateChange::Upsert(met("knot", ConditionId::ZoneReady, Some("a.example."), 3)),
            StateChange::Upsert(met("knot", ConditionId::ServerRunning, None, 4)),
        ];
        journal.record(&[], &changes).unwrap();
        let keys = |journal: &Journal| -> Vec<(String, ConditionId, Option<String>)> {
            journal
                .current()
                .unwrap()
                .into_iter()
                .map(|c| (c.server, c.condition, c.subject))
                .collect()
        };
        assert_eq!(
            keys(&journal),
            vec![
                ("knot".into(), ConditionId::ServerRunning, None),
                (
                    "knot".into(),
                    ConditionId::ZoneReady,
                    Some("a.example.".into())
                ),
                (
                    "knot".into(),
                    ConditionId::ZoneReady,
                    Some("b.example.".into())
                ),
                ("nsd".into(), ConditionId::ServerRunning, None),
            ]
        );

        let mut updated = met("knot", ConditionId::ZoneReady, Some("a.example."), 3);
        updated.args.insert("serial".into(), 7.into());
        journal
            .record(
                &[],
                &[
                    StateChange::Upsert(updated.clone()),
                    StateChange::Remove {
                        server: "knot".into(),
                        condition: ConditionId::ServerRunning,
                        subject: None,
                    },
                    StateChange::Remove {
                        server: "knot".into(),
                        condition: ConditionId::ZoneReady,
                        subject: Some("b.example.".into()),
                    },
                ],
            )
            .unwrap();
        let (seq, current) = journal.current_with_seq().unwrap();
        assert_eq!(seq, 0);
        assert_eq!(
            current,
            vec![updated, met("nsd", ConditionId::ServerRunning, None, 1)]
        );
    }

    #[test]
    fn signals_after_pages_through_the_journal() {
        let journal = Journal::open_in_memory().unwrap();
        journal.record(&events(1, 10), &[]).unwrap();
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = journal.signals_after(after, 3).unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            seen.extend(page.iter().map(|s| s.seq));
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
        assert!(journal.signals_after(10, 3).unwrap().is_empty());
        assert!(journal.signals_after(u64::MAX, 3).unwrap().is_empty());
    }

    #[test]
    fn cursors_are_per_channel() {
        let journal = Journal::open_in_memory().unwrap();
        assert_eq!(journal.cursor("log").unwrap(), None);
        journal.set_cursor("log", 5).unwrap();
        journal.set_cursor("exec", 2).unwrap();
        journal.set_cursor("log", 7).unwrap();
        assert_eq!(journal.cursor("log").unwrap(), Some(7));
        assert_eq!(journal.cursor("exec").unwrap(), Some(2));
    }

    #[test]
    fn prune_by_age_and_count_keeps_last_seq() {
        let journal = Journal::open_in_memory().unwrap();
        let signals: Vec<Signal> = (1..=10)
            .map(|seq| signal(seq, at(seq as u32), SignalState::Event))
            .collect();
        journal.record(&signals, &[]).unwrap();
        journal.set_cursor("slow", 1).unwrap();

        // Older than minute 4: seq 1, 2, 3.
        assert_eq!(journal.prune(at(4), None).unwrap(), 3);
        assert_eq!(journal.signals_after(0, 100).unwrap()[0].seq, 4);
        // Keep the newest 5: seq 6..=10.
        assert_eq!(journal.prune(at(0), Some(5)).unwrap(), 2);
        assert_eq!(journal.signals_after(0, 100).unwrap()[0].seq, 6);
        assert_eq!(journal.prune(at(0), Some(5)).unwrap(), 0);
        // Everything.
        assert_eq!(journal.prune(at(59), None).unwrap(), 5);
        assert!(journal.signals_after(0, 100).unwrap().is_empty());
        assert_eq!(journal.last_seq().unwrap(), 10);
        // The channel that lagged behind continues after the gap.
        assert_eq!(journal.cursor("slow").unwrap(), Some(1));
        journal
            .record(&[signal(11, at(0), SignalState::Event)], &[])
            .unwrap();
        assert_eq!(journal.signals_after(1, 100).unwrap()[0].seq, 11);
    }

    #[test]
    fn a_corrupt_row_is_an_error_not_a_panic() {
        let journal = Journal::open_in_memory().unwrap();
        journal.record(&events(1, 2), &[]).unwrap();
        journal
            .record(
                &[],
                &[StateChange::Upsert(met(
                    "knot",
                    ConditionId::ServerRunning,
                    None,
                    1,
                ))],
            )
            .unwrap();
        {
            let connection = journal.lock();
            connection
                .execute(
                    "UPDATE signals SET json = '{\"seq\": 2, oops' WHERE seq = 2",
                    [],
                )
                .unwrap();
            connection
                .execute("UPDATE current SET json = 'null'", [])
                .unwrap();
        }
        assert_eq!(journal.signals_after(0, 1).unwrap().len(), 1);
        let err = journal.signals_after(0, 10).unwrap_err();
        assert!(
            matches!(err, JournalError::CorruptRow { row: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            journal.current().unwrap_err(),
            JournalError::CorruptRow { .. }
        ));

        let other = serde_json::to_string(&signal(9, at(0), SignalState::Event)).unwrap();
        journal
            .lock()
            .execute("UPDATE signals SET json = ?1 WHERE seq = 2", [other])
            .unwrap();
        let err = journal.signals_after(1, 10).unwrap_err();
        assert!(
            matches!(err, JournalError::SeqMismatch { seq: 2, found: 9 }),
            "{err}"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        drop(Journal::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = Journal::open(&path).err().unwrap();
        assert!(
            matches!(
                err,
                JournalError::NewerSchema {
                    found: 99,
                    supported: 1
                }
            ),
            "{err}"
        );
    }
}
