//! `dns-oops dnstap-read FILE [--json]`: summarises a dnstap capture (a Frame Streams file
//! as `fstrm_capture` or a server's file sink writes it): frames, messages by type,
//! responses by RCODE and by Extended DNS Error, and queries and responses per second.
//!
//! A framing error ends the read (the rest of the file cannot be found) and is reported
//! with the file name and byte offset; a frame that is not a valid dnstap message, or a
//! response whose DNS payload cannot be read, is counted as malformed, reported on
//! standard error with its offset, and the summary still printed (exit code 1).
//!
//! Not implemented: reading standard input or a socket; the file is read into memory
//! whole.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use serde::Serialize;

use super::dns::{self, DnsView};
use super::fstrm::FileReader;
use super::message::{self, DnstapType};

/// Summarise a dnstap capture file: frames, counts by message type, RCODE and Extended
/// DNS Error, and the rate over time.
#[derive(Debug, clap::Args)]
pub struct DnstapReadArgs {
    /// The capture, a Frame Streams file with content type protobuf:dnstap.Dnstap.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What a capture holds.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// All frames, control frames included.
    pub frames: u64,
    pub data_frames: u64,
    pub control_frames: u64,
    /// Messages by type (`AUTH_QUERY`, …); `UNKNOWN(n)` for values the schema lacks,
    /// `NON_MESSAGE` for frames whose dnstap type is not MESSAGE.
    pub by_type: BTreeMap<String, u64>,
    /// Responses by RCODE name (extended RCODEs included).
    pub by_rcode: BTreeMap<String, u64>,
    /// Responses by Extended DNS Error info-code (a response with two EDEs counts twice).
    pub by_ede: BTreeMap<u16, u64>,
    /// Data frames that are not valid dnstap messages.
    pub malformed_frames: u64,
    /// Messages whose DNS payload could not be read.
    pub malformed_dns: u64,
    /// Queries and responses per second of message time, in time order.
    pub per_second: Vec<SecondBucket>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SecondBucket {
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub queries: u64,
    pub responses: u64,
}

/// A problem met while summarising, with the byte offset of its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: usize,
    pub message: String,
}

impl Summary {
    /// Summarises a capture held in `capture`; framing errors end the summary.
    pub fn of(capture: &Bytes) -> (Self, Vec<Problem>) {
        let mut summary = Self::default();
        let mut problems = Vec::new();
        let mut seconds: BTreeMap<u64, SecondBucket> = BTreeMap::new();
        let mut reader = FileReader::new(capture);
        loop {
            match reader.next_data() {
                Ok(Some((offset, payload))) => {
                    summary.data_frames += 1;
                    let payload = capture.slice_ref(payload);
                    if let Err(message) = summary.add(payload, &mut seconds) {
                        problems.push(Problem { offset, message });
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    problems.push(Problem {
                        offset: e.offset,
                        message: e.kind.to_string(),
                    });
                    break;
                }
            }
        }
        summary.control_frames = reader.control_frames() as u64;
        summary.frames = summary.data_frames + summary.control_frames;
        summary.per_second = seconds.into_values().collect();
        (summary, problems)
    }

    fn add(
        &mut self,
        payload: Bytes,
        seconds: &mut BTreeMap<u64, SecondBucket>,
    ) -> Result<(), String> {
        let frame = match message::decode(payload) {
            Ok(frame) => frame,
            Err(e) => {
                self.malformed_frames += 1;
                return Err(format!("not a dnstap message: {e}"));
            }
        };
        let message = match (DnstapType::try_from(frame.r#type), frame.message) {
            (Ok(DnstapType::Message), Some(message)) => message,
            _ => {
                *self.by_type.entry("NON_MESSAGE".into()).or_default() += 1;
                return Ok(());
            }
        };
        let kind = message.message_type();
        let name = kind.map_or_else(
            || format!("UNKNOWN({})", message.r#type),
            |k| k.name().into(),
        );
        *self.by_type.entry(name).or_default() += 1;
        let is_query = kind.is_none_or(|k| k.is_query());
        if let Some(time) = message.time_sec() {
            let bucket = seconds.entry(time).or_insert_with(|| SecondBucket {
                time,
                ..SecondBucket::default()
            });
            if is_query {
                bucket.queries += 1;
            } else {
                bucket.responses += 1;
            }
        }
        if is_query {
            return Ok(());
        }
        let Some(wire) = message.response_message else {
            return Ok(());
        };
        self.add_response(&wire).map_err(|e| {
            self.malformed_dns += 1;
            format!("response_message: {e}")
        })
    }

    fn add_response(&mut self, wire: &[u8]) -> Result<(), dns::DnsError> {
        let view = DnsView::parse(wire)?;
        let edns = view.edns()?;
        let upper = edns.map_or(0, |e| u16::from(e.extended_rcode));
        let rcode = (upper << 4) | u16::from(view.header_rcode());
        *self.by_rcode.entry(dns::rcode_name(rcode)).or_default() += 1;
        if let Some(edns) = edns {
            for ede in edns.extended_errors() {
                *self.by_ede.entry(ede?.info_code).or_default() += 1;
            }
        }
        Ok(())
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "frames: {} ({} data, {} control)",
            self.frames, self.data_frames, self.control_frames
        );
        let section = |out: &mut String, title: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "{title}:");
            if rows.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for (key, count) in rows {
                let _ = writeln!(out, "  {key:<24} {count:>10}");
            }
        };
        let rows = |map: &BTreeMap<String, u64>| map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        section(&mut out, "by type", rows(&self.by_type));
        section(&mut out, "responses by rcode", rows(&self.by_rcode));
        let ede = self
            .by_ede
            .iter()
            .map(|(code, count)| {
                let name = dns::ede_name(*code).unwrap_or("unassigned");
                (format!("{code} ({name})"), *count)
            })
            .collect();
        section(&mut out, "responses by extended error", ede);
        if self.malformed_frames + self.malformed_dns > 0 {
            let _ = writeln!(
                out,
                "malformed: {} frames, {} DNS messages",
                self.malformed_frames, self.malformed_dns
            );
        }
        let _ = writeln!(out, "per second (UTC):");
        if self.per_second.is_empty() {
            let _ = writeln!(out, "  (no timestamps)");
        }
        for bucket in &self.per_second {
            let time = i64::try_from(bucket.time)
                .ok()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map_or_else(
                    || bucket.time.to_string(),
                    |t| t.format("%F %T").to_string(),
                );
            let _ = writeln!(
                out,
                "  {time}  {:>8} queries {:>8} responses",
                bucket.queries, bucket.responses
            );
        }
        out
    }
}

/// Runs `dnstap-read`: 0 when the whole file was read cleanly, 1 otherwise.
pub fn run(args: &DnstapReadArgs) -> ExitCode {
    let file = args.file.display();
    let capture = match std::fs::read(&args.file) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            eprintln!("dns-oops dnstap-read: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (summary, problems) = Summary::of(&capture);
    for problem in &problems {
        eprintln!(
            "dns-oops dnstap-read: {file}: byte {}: {}",
            problem.offset, problem.message
        );
    }
    if args.json {
        match serde_json::to_string(&summary) {
            Ok(json) => crate::cli::emit(&format!("{json}\n")),
            Err(e) => {
                eprintln!("dns-oops dnstap-read: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        crate::cli::emit(&summary.render());
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnstap::fstrm::{CONTENT_TYPE_DNSTAP, Control, ControlType};
    use crate::dnstap::message::{Dnstap, Message, MessageType};
    use prost::Message as _;

    fn frame(kind: MessageType, time: u64, response: Option<Vec<u8>>) -> Vec<u8> {
        let message = Message {
            r#type: kind as i32,
            query_time_sec: kind.is_query().then_some(time),
            response_time_sec: (!kind.is_query()).then_some(time),
            response_message: response.map(Bytes::from),
            ..Default::default()
        };
        let payload = Dnstap {
            r#type: DnstapType::Message as i32,
            message: Some(message),
            ..Default::default()
        }
        .encode_to_vec();
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&payload);
        out
    }

    fn control(kind: ControlType, content_types: Vec<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        Control {
            kind,
            content_types,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn summarises_types_rcodes_ede_and_seconds() {
        let capture = [
            control(ControlType::Start, vec![CONTENT_TYPE_DNSTAP]),
            frame(MessageType::ClientQuery, 100, None),
            frame(MessageType::ClientQuery, 101, None),
            frame(
                MessageType::ClientResponse,
                101,
                Some(dns::tests::response(2, Some((6, "")))),
            ),
            frame(
                MessageType::ClientResponse,
                101,
                Some(dns::tests::response(3, None)),
            ),
            vec![0, 0, 0, 3, 0xFF, 0xFF, 0xFF],
            control(ControlType::Stop, vec![]),
        ]
        .concat();
        let (summary, problems) = Summary::of(&Bytes::from(capture));
        assert_eq!((summary.frames, summary.data_frames), (7, 5));
        assert_eq!(summary.by_type["CLIENT_QUERY"], 2);
        assert_eq!(summary.by_type["CLIENT_RESPONSE"], 2);
        assert_eq!(summary.by_rcode["SERVFAIL"], 1);
        assert_eq!(summary.by_rcode["NXDOMAIN"], 1);
        assert_eq!(summary.by_ede, BTreeMap::from([(6, 1)]));
        assert_eq!(summary.malformed_frames, 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            summary.per_second,
            vec![
                SecondBucket {
                    time: 100,
                    queries: 1,
                    responses: 0
                },
                SecondBucket {
                    time: 101,
                    queries: 1,
                    responses: 2
                }
            ]
        );
        let text = summary.render();
        assert!(text.contains("6 (DNSSEC Bogus)"), "{text}");
    }
}
