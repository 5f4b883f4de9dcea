//! Engine tests, driven by a fake clock.

use super::*;
use crate::condition::ConditionId::*;

fn t0() -> Moment {
    Moment {
        mono: Instant::now(),
        wall: DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    }
}

fn engine(hold: Duration) -> Engine {
    engine_after(hold, 0)
}

fn engine_after(hold: Duration, last_seq: u64) -> Engine {
    Engine::new(
        "lab",
        vec![ServerModel {
            name: "knot".into(),
            zones: vec!["a.test.".into(), "b.test.".into()],
            hold,
        }],
        last_seq,
    )
}

fn sample(
    condition: ConditionId,
    subject: Option<&str>,
    met: bool,
    rise: u32,
    fall: u32,
) -> Observation {
    Observation::new(
        "probe",
        "knot",
        condition,
        subject,
        Evidence::Sample { met, rise, fall },
    )
}

/// The process source says, for certain, that a server condition is met.
fn from_process(condition: ConditionId) -> Observation {
    Observation::new(
        "process",
        "knot",
        condition,
        None,
        Evidence::Assert { met: true },
    )
}

fn running(met: bool) -> Observation {
    sample(ServerRunning, None, met, 1, 1)
}

fn zone(name: &str, serial: u32) -> Observation {
    sample(ZoneReady, Some(name), true, 1, 1).arg("serial", serial)
}

fn zone_down(name: &str) -> Observation {
    sample(ZoneReady, Some(name), false, 1, 1).arg("error", "refused")
}

/// `condition subject state` for each signal, for compact assertions.
fn brief(signals: &[Signal]) -> Vec<String> {
    signals
        .iter()
        .map(|s| format!("{} {} {}", s.condition, s.subject_or_dash(), s.state))
        .collect()
}

fn feed(engine: &mut Engine, obs: Vec<Observation>, now: Moment) -> Vec<Signal> {
    obs.into_iter()
        .flat_map(|o| engine.observe(o, now).unwrap())
        .collect()
}

fn bring_up(engine: &mut Engine, now: Moment) -> Vec<Signal> {
    feed(
        engine,
        vec![running(true), zone("a.test.", 1), zone("b.test.", 7)],
        now,
    )
}

#[test]
fn startup_sequence_and_all_zones_ready() {
    let mut e = engine(Duration::ZERO);
    let signals = bring_up(&mut e, t0());
    assert_eq!(
        brief(&signals),
        [
            "server-running - met",
            "zone-ready a.test. met",
            "zone-ready b.test. met",
            "all-zones-ready - met"
        ]
    );
    let seqs: Vec<u64> = signals.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(signals[2].args["serial"], 7);
    assert_eq!(signals[3].args["count"], 2);
    assert_eq!(signals[3].source, ENGINE_SOURCE);
    assert!(e.is_met("knot", AllZonesReady, None));
    assert!(e.is_met("knot", ZoneReady, None));
    assert!(!e.is_met("knot", ZoneReady, Some("c.test.")));
}

#[test]
fn rise_and_fall_need_consecutive_samples() {
    let mut e = engine(Duration::ZERO);
    let now = t0();
    let up = || sample(ServerRunning, None, true, 3, 2);
    let down = || sample(ServerRunning, None, false, 3, 2);
    assert!(feed(&mut e, vec![up(), up()], now).is_empty());
    // A failure in between restarts the count.
    assert!(feed(&mut e, vec![down(), up(), up()], now).is_empty());
    assert_eq!(
        brief(&feed(&mut e, vec![up()], now)),
        ["server-running - met"]
    );
    assert!(feed(&mut e, vec![down(), up(), down()], now).is_empty());
    let signals = feed(&mut e, vec![down()], now);
    assert_eq!(brief(&signals)[0], "server-running - cleared");
}

#[test]
fn polled_failure_of_a_running_server_is_a_crash() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    let signals = feed(&mut e, vec![running(false).arg("error", "timeout")], t0());
    assert_eq!(
        brief(&signals),
        [
            "server-running - cleared",
            "server-crashed - met",
            "zone-ready a.test. cleared",
            "all-zones-ready - cleared",
            "zone-ready b.test. cleared",
        ]
    );
    assert_eq!(signals[0].args["error"], "timeout");
    // Coming back clears the crash.
    let signals = feed(&mut e, vec![running(true)], t0());
    assert_eq!(
        brief(&signals),
        ["server-running - met", "server-crashed - cleared"]
    );
}

#[test]
fn asserted_crash_clears_running_and_zones_without_a_second_crash() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    let crash = from_process(ServerCrashed).arg("exit-status", "signal 9 (SIGKILL)");
    let signals = feed(&mut e, vec![crash], t0());
    assert_eq!(
        brief(&signals),
        [
            "server-crashed - met",
            "server-running - cleared",
            "zone-ready a.test. cleared",
            "all-zones-ready - cleared",
            "zone-ready b.test. cleared",
        ]
    );
    assert_eq!(signals[0].args["exit-status"], "signal 9 (SIGKILL)");
    assert!(
        signals
            .iter()
            .all(|s| s.source == "process" || s.source == ENGINE_SOURCE)
    );
    // The probe failing afterwards changes nothing.
    assert!(feed(&mut e, vec![running(false), zone_down("a.test.")], t0()).is_empty());
}

#[test]
fn a_stop_is_not_a_crash() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    let stop =
        from_process(ServerStopping).arg("reason", "process exited and removed its pid file");
    let signals = feed(&mut e, vec![stop, running(false)], t0());
    assert_eq!(
        brief(&signals)[..2],
        ["server-stopping - met", "server-running - cleared"]
    );
    assert!(!e.is_met("knot", ServerCrashed, None));
    let signals = feed(&mut e, vec![running(true)], t0());
    assert_eq!(
        brief(&signals),
        ["server-running - met", "server-stopping - cleared"]
    );
}

#[test]
fn a_server_that_never_ran_is_not_crashed() {
    let mut e = engine(Duration::ZERO);
    assert!(feed(&mut e, vec![running(false), running(false)], t0()).is_empty());
}

#[test]
fn serial_change_is_zone_updated_with_both_serials() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    assert!(feed(&mut e, vec![zone("a.test.", 1)], t0()).is_empty());
    let signals = feed(&mut e, vec![zone("a.test.", 2)], t0());
    assert_eq!(brief(&signals), ["zone-updated a.test. event"]);
    assert_eq!(signals[0].args["serial"], 2);
    assert_eq!(signals[0].args["previous-serial"], 1);
    // The current state follows the serial, without a second `met`.
    let a = e
        .current()
        .into_iter()
        .find(|c| c.subject.as_deref() == Some("a.test."))
        .unwrap();
    assert_eq!(a.args["serial"], 2);
    assert_eq!(a.seq, 2, "the row keeps the seq of its met signal");
}

#[test]
fn a_zone_disappearing_clears_all_zones_ready() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    let signals = feed(&mut e, vec![zone_down("b.test.")], t0());
    assert_eq!(
        brief(&signals),
        ["zone-ready b.test. cleared", "all-zones-ready - cleared"]
    );
    assert_eq!(signals[0].args["error"], "refused");
    assert_eq!(signals[1].args["count"], 1);
    let signals = feed(&mut e, vec![zone("b.test.", 8)], t0());
    assert_eq!(
        brief(&signals),
        ["zone-ready b.test. met", "all-zones-ready - met"]
    );
}

#[test]
fn hold_defers_a_change_and_drops_it_when_evidence_turns_back() {
    let hold = Duration::from_secs(10);
    let mut e = engine(hold);
    let start = t0();
    feed(&mut e, vec![running(true)], start);
    // Within the hold, a failure is only pending.
    assert!(
        feed(
            &mut e,
            vec![running(false)],
            start.after(Duration::from_secs(2))
        )
        .is_empty()
    );
    assert_eq!(e.next_deadline(), Some(start.mono + hold));
    // The evidence turns back: the pending change is dropped.
    assert!(
        feed(
            &mut e,
            vec![running(true)],
            start.after(Duration::from_secs(3))
        )
        .is_empty()
    );
    assert_eq!(e.next_deadline(), None);
    assert!(e.tick(start.after(Duration::from_secs(11))).is_empty());
    // A failure that persists is applied when the hold ends, with the time of the tick.
    assert!(
        feed(
            &mut e,
            vec![running(false)],
            start.after(Duration::from_secs(4))
        )
        .is_empty()
    );
    assert!(e.tick(start.after(Duration::from_secs(9))).is_empty());
    let late = start.after(Duration::from_secs(10));
    let signals = e.tick(late);
    assert_eq!(
        brief(&signals)[..2],
        ["server-running - cleared", "server-crashed - met"]
    );
    assert_eq!(signals[0].time, late.wall);
}

#[test]
fn hold_applies_to_asserted_changes_too() {
    let hold = Duration::from_secs(5);
    let mut e = engine(hold);
    let start = t0();
    feed(&mut e, vec![running(true)], start);
    let crash = from_process(ServerCrashed);
    let signals = feed(&mut e, vec![crash], start.after(Duration::from_secs(1)));
    // The crash is new, so it is signalled; clearing `server-running` waits for the hold.
    assert_eq!(brief(&signals), ["server-crashed - met"]);
    let signals = e.tick(start.after(hold));
    assert_eq!(brief(&signals), ["server-running - cleared"]);
}

#[test]
fn restore_does_not_repeat_met_and_continues_seq() {
    let mut first = engine(Duration::ZERO);
    let signals = bring_up(&mut first, t0());
    let changes = first.take_changes();
    assert_eq!(changes.len(), 4);
    let rows = first.current();
    let last_seq = signals.last().unwrap().seq;

    let mut second = engine_after(Duration::ZERO, last_seq);
    assert!(second.restore(rows, t0()).is_empty());
    assert!(second.take_changes().is_empty());
    // Same observations as before the restart: nothing to say.
    assert!(bring_up(&mut second, t0()).is_empty());
    // What changed while down is signalled, numbered after the last signal.
    let signals = feed(&mut second, vec![zone("a.test.", 5)], t0());
    assert_eq!(brief(&signals), ["zone-updated a.test. event"]);
    assert_eq!(signals[0].seq, last_seq + 1);
    assert_eq!(signals[0].args["previous-serial"], 1);
}

#[test]
fn restore_rederives_all_zones_ready_for_a_changed_zone_list() {
    let mut first = engine(Duration::ZERO);
    bring_up(&mut first, t0());
    let rows = first.current();
    let mut second = Engine::new(
        "lab",
        vec![ServerModel {
            name: "knot".into(),
            zones: vec!["a.test.".into(), "b.test.".into(), "c.test.".into()],
            hold: Duration::ZERO,
        }],
        4,
    );
    let signals = second.restore(rows, t0());
    assert_eq!(brief(&signals), ["all-zones-ready - cleared"]);
    assert_eq!(signals[0].seq, 5);
}

#[test]
fn restore_drops_rows_of_servers_no_longer_configured() {
    let mut e = engine(Duration::ZERO);
    let stale = CurrentCondition {
        server: "gone".into(),
        condition: ServerRunning,
        subject: None,
        since: t0().wall,
        args: Args::new(),
        source: "probe".into(),
        seq: 1,
    };
    e.restore(vec![stale], t0());
    assert!(e.current().is_empty());
    assert_eq!(
        e.take_changes(),
        [StateChange::Remove {
            server: "gone".into(),
            condition: ServerRunning,
            subject: None
        }]
    );
}

#[test]
fn take_changes_reports_upserts_and_removals_once() {
    let mut e = engine(Duration::ZERO);
    bring_up(&mut e, t0());
    e.take_changes();
    feed(&mut e, vec![zone_down("a.test.")], t0());
    let changes = e.take_changes();
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| matches!(c, StateChange::Remove { .. }))
    );
    assert!(e.take_changes().is_empty());
}

#[test]
fn events_pass_through() {
    let mut e = engine(Duration::ZERO);
    let obs = Observation::new(
        "knot-dbus",
        "knot",
        KskSubmission,
        Some("a.test."),
        Evidence::Event,
    )
    .arg("key-tag", 12345);
    let signals = e.observe(obs, t0()).unwrap();
    assert_eq!(brief(&signals), ["ksk-submission a.test. event"]);
    assert!(e.current().is_empty());
}

#[test]
fn invalid_observations_are_refused() {
    let mut e = engine(Duration::ZERO);
    let cases = [
        (
            Observation::new(
                "probe",
                "nsd",
                ServerRunning,
                None,
                Evidence::Assert { met: true },
            ),
            ObservationError::UnknownServer("nsd".into()),
        ),
        (
            Observation::new(
                "probe",
                "knot",
                ZoneUpdated,
                Some("a.test."),
                Evidence::Assert { met: true },
            ),
            ObservationError::EventAsLevel(ZoneUpdated),
        ),
        (
            Observation::new("probe", "knot", ZoneReady, Some("a.test."), Evidence::Event),
            ObservationError::LevelAsEvent(ZoneReady),
        ),
        (
            Observation::new(
                "probe",
                "knot",
                ZoneReady,
                None,
                Evidence::Assert { met: true },
            ),
            ObservationError::MissingSubject(ZoneReady),
        ),
        (
            Observation::new(
                "probe",
                "knot",
                ServerRunning,
                Some("a.test."),
                Evidence::Assert { met: true },
            ),
            ObservationError::UnexpectedSubject(ServerRunning),
        ),
        (
            Observation::new(
                "probe",
                "knot",
                AllZonesReady,
                None,
                Evidence::Assert { met: true },
            ),
            ObservationError::Derived(AllZonesReady),
        ),
    ];
    for (obs, expected) in cases {
        assert_eq!(e.observe(obs, t0()).unwrap_err(), expected);
    }
    assert!(e.current().is_empty());
}

#[test]
fn drain_holds_server_stopping_until_undrain() {
    let mut e = engine(Duration::from_secs(30));
    let now = t0();
    bring_up(&mut e, now);
    // At once, despite the hold time, and the server stays running.
    let signals = e.drain("knot", "maintenance", now).unwrap();
    assert_eq!(brief(&signals), ["server-stopping - met"]);
    assert_eq!(signals[0].args["reason"], "maintenance");
    assert_eq!(signals[0].source, DRAIN_SOURCE);
    assert!(e.is_drained("knot"));
    assert!(e.is_met("knot", ServerRunning, None));
    assert!(e.is_met("knot", AllZonesReady, None));
    // Sources cannot clear it: a stop and a start of the server come and go under it.
    let later = now.after(Duration::from_secs(60));
    let stopped = Observation::new(
        "knot-dbus",
        "knot",
        ServerStopping,
        None,
        Evidence::Assert { met: false },
    );
    assert!(feed(&mut e, vec![stopped], later).is_empty());
    let signals = feed(&mut e, vec![from_process(ServerCrashed)], later);
    assert_eq!(
        brief(&signals)[..2],
        ["server-crashed - met", "server-running - cleared"]
    );
    let back = later.after(Duration::from_secs(60));
    let signals = feed(&mut e, vec![running(true)], back);
    assert_eq!(
        brief(&signals),
        ["server-running - met", "server-crashed - cleared"]
    );
    assert!(e.is_drained("knot"));
    // Undrain clears it at once; undrain again does nothing.
    let signals = e.undrain("knot", back).unwrap();
    assert_eq!(brief(&signals), ["server-stopping - cleared"]);
    assert!(!e.is_drained("knot"));
    assert!(e.undrain("knot", back).unwrap().is_empty());
    assert_eq!(
        e.drain("nsd", "x", back).unwrap_err(),
        ObservationError::UnknownServer("nsd".into())
    );
}

#[test]
fn drain_takes_over_a_stop_in_progress_and_survives_a_restore() {
    let mut e = engine(Duration::ZERO);
    let now = t0();
    bring_up(&mut e, now);
    let signals = feed(&mut e, vec![from_process(ServerStopping)], now);
    assert_eq!(brief(&signals)[0], "server-stopping - met");
    e.take_changes();
    // Already stopping: no new signal, but the row now belongs to the drain.
    assert!(e.drain("knot", "upgrade", now).unwrap().is_empty());
    assert!(e.is_drained("knot"));
    let changes = e.take_changes();
    assert!(matches!(&changes[..], [StateChange::Upsert(row)]
        if row.source == DRAIN_SOURCE && row.args["reason"] == "upgrade"));
    // After a restart the drain is still there.
    let mut restored = engine(Duration::ZERO);
    restored.restore(e.current(), now);
    assert!(restored.is_drained("knot"));
    assert!(
        feed(&mut restored, vec![running(true)], now)
            .iter()
            .all(|s| s.condition != ServerStopping)
    );
    assert!(restored.is_drained("knot"));
}
