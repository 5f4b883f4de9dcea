//! [`AxfrReader`]: the messages of a zone transfer (RFC 5936) fed, one at a time, into a
//! [`SignatureScan`], without keeping the zone.
//!
//! A transfer is complete only when the zone's SOA comes a second time, with the serial
//! it opened with. Anything else — a message that is not a response to our query, an
//! RCODE other than NOERROR, a first record that is not the zone's SOA, a record after
//! the closing SOA, a malformed RRSIG, a TSIG that does not verify, a stream that ends
//! early — is an [`AxfrError`], so a scan that stopped halfway is never mistaken for a
//! zone whose signatures are all fine.
//!
//! With a TSIG key, every message is checked as RFC 8945 §5.3.1 says: the first must be
//! signed, later ones may leave up to 99 in a row unsigned (their octets are covered by the
//! next MAC), the last must be signed, and each MAC chains on the previous one, starting
//! with the request's.
//!
//! Not implemented: IXFR (every scan is a full transfer); checking that every owner name
//! is inside the zone.

use hickory_proto::rr::TSigner;

use super::name::Name;
use super::rrsig::{Rrsig, RrsigError};
use super::scan::SignatureScan;
use super::types::Rtype;
use super::wire::{
    Header, TsigRecord, Walker, WireError, rcode_name, read_name, skip_name, tsig_error_name,
};

/// The most messages in a row that may go unsigned in a TSIG'd transfer (RFC 8945 §5.3.1).
pub const MAX_UNSIGNED: usize = 99;

/// Why a transfer did not give a complete zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AxfrError {
    #[error("message {message}: {error}")]
    Wire { message: u64, error: WireError },
    #[error("the server answered {rcode}{tsig}")]
    Rcode { rcode: String, tsig: String },
    #[error("message {message} is not an answer to our query (ID {got}, expected {expected})")]
    NotOurs {
        message: u64,
        got: u16,
        expected: u16,
    },
    #[error("message {message} is not a standard query response")]
    NotResponse { message: u64 },
    #[error("message {message} asks about another zone or type")]
    WrongQuestion { message: u64 },
    #[error("the transfer does not start with the zone's SOA")]
    NoOpeningSoa,
    #[error(
        "the transfer ended with serial {closing}, not {opening}: the zone changed while it was read"
    )]
    SerialChanged { opening: u32, closing: u32 },
    #[error("records after the closing SOA")]
    AfterEnd,
    #[error(
        "the transfer stopped after {messages} messages and {records} records, before the closing SOA"
    )]
    Incomplete { messages: u64, records: u64 },
    #[error("malformed RRSIG at {owner}: {error}")]
    Rrsig { owner: String, error: RrsigError },
    #[error("TSIG: {0}")]
    Tsig(String),
}

/// What a complete transfer found.
#[derive(Debug)]
pub struct AxfrSummary {
    pub serial: u32,
    pub messages: u64,
    pub records: u64,
    pub octets: u64,
    pub scan: SignatureScan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the opening SOA.
    Start,
    /// Inside the zone, opened with this serial.
    Records(u32),
    Done(u32),
}

/// See the module documentation.
pub struct AxfrReader {
    zone: Name,
    query_id: u16,
    stage: Stage,
    scan: SignatureScan,
    messages: u64,
    records: u64,
    octets: u64,
    owner: Name,
    tsig: Option<TsigChain>,
}

impl AxfrReader {
    /// A reader of the answer to the AXFR query `query_id` for `zone`; with `tsig`, the
    /// signed query's MAC and the time to judge TSIG times against.
    pub fn new(
        zone: Name,
        query_id: u16,
        scan: SignatureScan,
        tsig: Option<TsigChain>,
    ) -> AxfrReader {
        AxfrReader {
            zone,
            query_id,
            stage: Stage::Start,
            scan,
            messages: 0,
            records: 0,
            octets: 0,
            owner: Name::root(),
            tsig,
        }
    }

    /// Reads one message; `Ok(true)` once the closing SOA has been read.
    pub fn message(&mut self, message: &[u8]) -> Result<bool, AxfrError> {
        self.messages += 1;
        self.octets += message.len() as u64;
        let number = self.messages;
        let wire = |error| AxfrError::Wire {
            message: number,
            error,
        };
        if matches!(self.stage, Stage::Done(_)) {
            return Err(AxfrError::AfterEnd);
        }
        let header = Header::read(message).map_err(wire)?;
        if header.id != self.query_id {
            return Err(AxfrError::NotOurs {
                message: number,
                got: header.id,
                expected: self.query_id,
            });
        }
        if !header.response || header.opcode != 0 || header.truncated {
            return Err(AxfrError::NotResponse { message: number });
        }
        let tsig_record = match &self.tsig {
            Some(_) => TsigRecord::find(message).map_err(wire)?,
            None => None,
        };
        if header.rcode != 0 {
            let tsig = match &tsig_record {
                Some(t) if t.error != 0 => format!(
                    " with TSIG error {} (the server does not accept our key or signature)",
                    tsig_error_name(t.error)
                ),
                _ => String::new(),
            };
            return Err(AxfrError::Rcode {
                rcode: rcode_name(header.rcode),
                tsig,
            });
        }
        if let Some(chain) = &mut self.tsig {
            chain.check(message, tsig_record)?;
        }
        if let Some(question) = Walker::first_question(message).map_err(wire)? {
            let mut name = Name::root();
            read_name(message, question.name_at, &mut name).map_err(wire)?;
            if name != self.zone || question.qtype != Rtype(252) {
                return Err(AxfrError::WrongQuestion { message: number });
            }
        }
        let mut walker = Walker::new(message).map_err(wire)?;
        while let Some(record) = walker.next().map_err(wire)? {
            if record.section != 0 {
                continue;
            }
            self.records += 1;
            read_name(message, record.owner_at, &mut self.owner).map_err(wire)?;
            match self.stage {
                Stage::Done(_) => return Err(AxfrError::AfterEnd),
                Stage::Start => {
                    if record.rtype != Rtype::SOA || self.owner != self.zone {
                        return Err(AxfrError::NoOpeningSoa);
                    }
                    let serial = soa_serial(message, record.rdata.clone()).map_err(wire)?;
                    self.scan
                        .add_record(&self.owner, record.class, record.rtype);
                    self.stage = Stage::Records(serial);
                }
                Stage::Records(opening) => {
                    if record.rtype == Rtype::SOA && self.owner == self.zone {
                        let closing = soa_serial(message, record.rdata.clone()).map_err(wire)?;
                        if closing != opening {
                            return Err(AxfrError::SerialChanged { opening, closing });
                        }
                        self.stage = Stage::Done(opening);
                    } else if record.rtype == Rtype::RRSIG {
                        let rrsig =
                            Rrsig::from_wire(&message[record.rdata.clone()]).map_err(|error| {
                                AxfrError::Rrsig {
                                    owner: self.owner.to_string(),
                                    error,
                                }
                            })?;
                        self.scan.add_signature(&self.owner, &rrsig);
                    } else {
                        self.scan
                            .add_record(&self.owner, record.class, record.rtype);
                    }
                }
            }
        }
        walker.finish().map_err(wire)?;
        Ok(matches!(self.stage, Stage::Done(_)))
    }

    /// The scan of a complete transfer, or why it is not complete.
    pub fn finish(self) -> Result<AxfrSummary, AxfrError> {
        let Stage::Done(serial) = self.stage else {
            return Err(AxfrError::Incomplete {
                messages: self.messages,
                records: self.records,
            });
        };
        if let Some(chain) = &self.tsig {
            chain.finish()?;
        }
        Ok(AxfrSummary {
            serial,
            messages: self.messages,
            records: self.records,
            octets: self.octets,
            scan: self.scan,
        })
    }
}

/// The serial of SOA RDATA.
fn soa_serial(message: &[u8], rdata: std::ops::Range<usize>) -> Result<u32, WireError> {
    let after = skip_name(message, skip_name(message, rdata.start)?)?;
    let serial = message
        .get(after..after + 4)
        .filter(|_| after + 20 == rdata.end)
        .ok_or(WireError::Truncated(rdata.end))?;
    Ok(u32::from_be_bytes([
        serial[0], serial[1], serial[2], serial[3],
    ]))
}

/// The TSIG state of a transfer: the key, the MAC the next one chains on, and the
/// unsigned messages since.
pub struct TsigChain {
    key: TSigner,
    key_name: Name,
    algorithm: Name,
    previous_mac: Vec<u8>,
    unsigned: Vec<u8>,
    unsigned_count: usize,
    first: bool,
    now: u64,
}

impl TsigChain {
    /// `request_mac`: the MAC of our signed query; `now`: seconds since the epoch.
    pub fn new(key: TSigner, request_mac: Vec<u8>, now: u64) -> Result<TsigChain, AxfrError> {
        let parse = |text: String| {
            let text = if text.ends_with('.') {
                text
            } else {
                format!("{text}.")
            };
            Name::parse(text.as_bytes(), None).map_err(|e| AxfrError::Tsig(e.to_string()))
        };
        let key_name = parse(key.signer_name().to_ascii())?;
        let algorithm = parse(key.algorithm().to_name().to_ascii())?;
        Ok(TsigChain {
            key,
            key_name,
            algorithm,
            previous_mac: request_mac,
            unsigned: Vec::new(),
            unsigned_count: 0,
            first: true,
            now,
        })
    }

    fn check(&mut self, message: &[u8], record: Option<TsigRecord>) -> Result<(), AxfrError> {
        let Some(record) = record else {
            if self.first {
                return Err(AxfrError::Tsig(
                    "the first message is not signed (is the key configured on the server?)".into(),
                ));
            }
            self.unsigned_count += 1;
            if self.unsigned_count > MAX_UNSIGNED {
                return Err(AxfrError::Tsig(format!(
                    "more than {MAX_UNSIGNED} messages in a row are not signed"
                )));
            }
            self.unsigned.extend_from_slice(message);
            return Ok(());
        };
        if record.key != self.key_name || record.algorithm != self.algorithm {
            return Err(AxfrError::Tsig(format!(
                "the answer is signed with key {} ({}), not ours",
                record.key, record.algorithm
            )));
        }
        if record.error != 0 {
            return Err(AxfrError::Tsig(format!(
                "the server reports {}",
                tsig_error_name(record.error)
            )));
        }
        let mut signed = Vec::with_capacity(2 + self.previous_mac.len() + message.len());
        signed.extend_from_slice(&(self.previous_mac.len() as u16).to_be_bytes());
        signed.extend_from_slice(&self.previous_mac);
        signed.append(&mut self.unsigned);
        record.append_signed_data(message, self.first, &mut signed);
        if self.key.verify(&signed, &record.mac).is_err() {
            return Err(AxfrError::Tsig(
                "the MAC does not verify (BADSIG): the server signs with another secret".into(),
            ));
        }
        if self.now.abs_diff(record.time_signed) > u64::from(record.fudge) {
            return Err(AxfrError::Tsig(format!(
                "signed at {} but now is {} (BADTIME, fudge {} s)",
                record.time_signed, self.now, record.fudge
            )));
        }
        self.previous_mac = record.mac;
        self.unsigned_count = 0;
        self.first = false;
        Ok(())
    }

    fn finish(&self) -> Result<(), AxfrError> {
        if self.unsigned_count > 0 {
            return Err(AxfrError::Tsig("the last message is not signed".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
