//! Frame Streams framing (the farsightsec `fstrm` protocol): data frames and control
//! frames, decoded from a byte slice without copying.
//!
//! Wire layout: a data frame is a big-endian `u32` length (> 0) followed by that many
//! payload bytes. A control frame starts with the escape `00 00 00 00`, then a `u32`
//! control length (at most [`MAX_CONTROL_LEN`]), then a `u32` control type and zero or
//! more fields (`u32` field type, `u32` length, bytes); field type 1 is a content type of
//! at most [`MAX_CONTENT_TYPE_LEN`] bytes.
//!
//! [`decode_frame`] decodes one frame from the front of a buffer and says how many bytes
//! it used, or that more bytes are needed; [`read_frame`] reads one whole frame from any
//! [`std::io::Read`], checking the bounds before it reads a payload; [`FileReader`] walks a
//! whole capture file held in memory (START, data frames, STOP) and checks the content
//! type.
//!
//! Not implemented here: the bidirectional socket handshake (READY/ACCEPT/START,
//! STOP/FINISH) and the listeners — this module only provides the [`Control`] frames they
//! exchange ([`Control::encode`] writes them) — and frame writing beyond control frames.

use std::fmt;

/// The content type of dnstap streams.
pub const CONTENT_TYPE_DNSTAP: &[u8] = b"protobuf:dnstap.Dnstap";
/// Largest control frame payload (type and fields) that fstrm allows.
pub const MAX_CONTROL_LEN: usize = 512;
/// Largest content type that fstrm allows.
pub const MAX_CONTENT_TYPE_LEN: usize = 256;
/// Default largest data frame accepted (fstrm's own default buffer is far smaller; a DNS
/// message is at most 64 KiB, a dnstap frame carries two of them plus addresses).
pub const DEFAULT_MAX_DATA_LEN: usize = 256 * 1024;

/// Control field type of a content type.
const FIELD_CONTENT_TYPE: u32 = 1;

/// The type of a control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Reader → writer: the chosen content type.
    Accept,
    /// Writer: the stream starts (with at most one content type).
    Start,
    /// Writer: the stream ends.
    Stop,
    /// Writer → reader: the content types it can send.
    Ready,
    /// Reader → writer: acknowledges STOP.
    Finish,
    /// A type this version does not know; ignored after START.
    Unknown(u32),
}

impl ControlType {
    fn from_u32(value: u32) -> Self {
        match value {
            1 => Self::Accept,
            2 => Self::Start,
            3 => Self::Stop,
            4 => Self::Ready,
            5 => Self::Finish,
            other => Self::Unknown(other),
        }
    }

    fn to_u32(self) -> u32 {
        match self {
            Self::Accept => 1,
            Self::Start => 2,
            Self::Stop => 3,
            Self::Ready => 4,
            Self::Finish => 5,
            Self::Unknown(other) => other,
        }
    }
}

/// A decoded control frame: its type and the content types it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control<'a> {
    pub kind: ControlType,
    pub content_types: Vec<&'a [u8]>,
}

impl Control<'_> {
    /// Appends this control frame, escape and lengths included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload_len: usize = 4 + self
            .content_types
            .iter()
            .map(|ct| 8 + ct.len())
            .sum::<usize>();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&(payload_len as u32).to_be_bytes());
        out.extend_from_slice(&self.kind.to_u32().to_be_bytes());
        for ct in &self.content_types {
            out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
            out.extend_from_slice(&(ct.len() as u32).to_be_bytes());
            out.extend_from_slice(ct);
        }
    }
}

/// One frame, borrowing from the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A data frame's payload (for dnstap: one serialized `Dnstap` message).
    Data(&'a [u8]),
    Control(Control<'a>),
}

/// The result of decoding the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame and the number of bytes it occupied.
    Frame(Frame<'a>, usize),
    /// The buffer holds only the start of a frame; at least this many bytes are needed
    /// in total.
    Incomplete(usize),
}

/// Why a frame could not be decoded; offsets are relative to the frame's first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A data frame longer than the configured maximum.
    DataTooLong { len: usize, max: usize },
    /// A control frame longer than [`MAX_CONTROL_LEN`].
    ControlTooLong { len: usize },
    /// A control frame too short to hold its type.
    ControlTooShort { len: usize },
    /// A control field whose length runs past the end of the control frame.
    FieldOverrun { at: usize },
    /// A content type longer than [`MAX_CONTENT_TYPE_LEN`].
    ContentTypeTooLong { len: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataTooLong { len, max } => {
                write!(f, "data frame of {len} bytes exceeds the maximum of {max}")
            }
            Self::ControlTooLong { len } => write!(
                f,
                "control frame of {len} bytes exceeds the maximum of {MAX_CONTROL_LEN}"
            ),
            Self::ControlTooShort { len } => {
                write!(f, "control frame of {len} bytes has no room for its type")
            }
            Self::FieldOverrun { at } => write!(
                f,
                "control field at frame byte {at} runs past the end of the frame"
            ),
            Self::ContentTypeTooLong { len } => write!(
                f,
                "content type of {len} bytes exceeds the maximum of {MAX_CONTENT_TYPE_LEN}"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Decodes the frame at the front of `buf`, accepting data frames up to `max_data_len`.
pub fn decode_frame(buf: &[u8], max_data_len: usize) -> Result<Decoded<'_>, FrameError> {
    let Some(len) = be_u32(buf, 0) else {
        return Ok(Decoded::Incomplete(4));
    };
    let len = len as usize;
    if len > 0 {
        if len > max_data_len {
            return Err(FrameError::DataTooLong {
                len,
                max: max_data_len,
            });
        }
        let end = 4 + len;
        return Ok(match buf.get(4..end) {
            Some(payload) => Decoded::Frame(Frame::Data(payload), end),
            None => Decoded::Incomplete(end),
        });
    }
    let Some(control_len) = be_u32(buf, 4) else {
        return Ok(Decoded::Incomplete(8));
    };
    let control_len = control_len as usize;
    if control_len > MAX_CONTROL_LEN {
        return Err(FrameError::ControlTooLong { len: control_len });
    }
    if control_len < 4 {
        return Err(FrameError::ControlTooShort { len: control_len });
    }
    let end = 8 + control_len;
    let Some(payload) = buf.get(8..end) else {
        return Ok(Decoded::Incomplete(end));
    };
    let control = decode_control(payload)?;
    Ok(Decoded::Frame(Frame::Control(control), end))
}

/// Decodes a control payload (type and fields, after the escape and length).
fn decode_control(payload: &[u8]) -> Result<Control<'_>, FrameError> {
    let kind = ControlType::from_u32(be_u32(payload, 0).unwrap_or(0));
    let mut content_types = Vec::new();
    let mut at = 4;
    while at < payload.len() {
        // Offsets in errors count from the frame start: escape (4) + length (4).
        let frame_at = at + 8;
        let (Some(field_type), Some(field_len)) = (be_u32(payload, at), be_u32(payload, at + 4))
        else {
            return Err(FrameError::FieldOverrun { at: frame_at });
        };
        let field_len = field_len as usize;
        let start = at + 8;
        let Some(value) = start
            .checked_add(field_len)
            .and_then(|end| payload.get(start..end))
        else {
            return Err(FrameError::FieldOverrun { at: frame_at });
        };
        if field_type == FIELD_CONTENT_TYPE {
            if field_len > MAX_CONTENT_TYPE_LEN {
                return Err(FrameError::ContentTypeTooLong { len: field_len });
            }
            content_types.push(value);
        }
        // Other field types are skipped: the protocol defines none yet.
        at = start + field_len;
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// Why [`read_frame`] failed.
#[derive(Debug)]
pub enum ReadFrameError {
    Io(std::io::Error),
    Frame(FrameError),
    /// The input ended inside a frame, after this many of its bytes.
    Truncated {
        read: usize,
    },
}

impl fmt::Display for ReadFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Frame(e) => write!(f, "{e}"),
            Self::Truncated { read } => write!(f, "input ends {read} bytes into a frame"),
        }
    }
}

impl std::error::Error for ReadFrameError {}

/// Reads one whole frame from `reader` into `buf` (replacing its contents), checking the
/// bounds before reading the payload; decode it with [`decode_frame`]. `Ok(false)` when
/// the input ends cleanly between frames.
pub fn read_frame(
    reader: &mut impl std::io::Read,
    buf: &mut Vec<u8>,
    max_data_len: usize,
) -> Result<bool, ReadFrameError> {
    buf.clear();
    if !fill(reader, buf, 4, true)? {
        return Ok(false);
    }
    let needed = loop {
        match decode_frame(buf, max_data_len).map_err(ReadFrameError::Frame)? {
            Decoded::Frame(..) => return Ok(true),
            Decoded::Incomplete(needed) => {
                if buf.len() == 4 && buf[..] == [0; 4] {
                    // A control frame: read its length, then the bounds are known.
                    fill(reader, buf, 8, false)?;
                    continue;
                }
                break needed;
            }
        }
    };
    fill(reader, buf, needed, false)?;
    decode_frame(buf, max_data_len).map_err(ReadFrameError::Frame)?;
    Ok(true)
}

/// Reads until `buf` holds `len` bytes; `Ok(false)` if the input ended before the first
/// byte and `clean_end` allows that.
fn fill(
    reader: &mut impl std::io::Read,
    buf: &mut Vec<u8>,
    len: usize,
    clean_end: bool,
) -> Result<bool, ReadFrameError> {
    let start = buf.len();
    buf.resize(len, 0);
    let mut at = start;
    while at < len {
        match reader.read(&mut buf[at..]) {
            Ok(0) if clean_end && at == 0 => {
                buf.clear();
                return Ok(false);
            }
            Ok(0) => {
                buf.truncate(at);
                return Err(ReadFrameError::Truncated { read: at });
            }
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFrameError::Io(e)),
        }
    }
    Ok(true)
}

/// Why a capture file could not be read; `offset` is the byte offset in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub offset: usize,
    pub kind: StreamErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamErrorKind {
    Frame(FrameError),
    /// The file ends inside a frame.
    Truncated {
        needed: usize,
        available: usize,
    },
    /// The first frame is not a START control frame.
    NoStart,
    /// START names a content type other than dnstap's.
    WrongContentType(String),
    /// A START, READY, ACCEPT or FINISH control frame after START.
    UnexpectedControl(ControlType),
    /// The file ends without a STOP frame.
    NoStop,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.kind)
    }
}

impl fmt::Display for StreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "{e}"),
            Self::Truncated { needed, available } => write!(
                f,
                "truncated frame: needs {needed} bytes, only {available} left"
            ),
            Self::NoStart => write!(f, "the stream does not begin with START"),
            Self::WrongContentType(ct) => write!(
                f,
                "content type {ct:?} is not {:?}",
                String::from_utf8_lossy(CONTENT_TYPE_DNSTAP)
            ),
            Self::UnexpectedControl(kind) => {
                write!(f, "unexpected {kind:?} control frame inside the stream")
            }
            Self::NoStop => write!(f, "the stream ends without STOP"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Reads a unidirectional Frame Streams capture (START, data frames, STOP) from one buffer,
/// yielding each data frame with its byte offset. Unknown control types are skipped;
/// anything after STOP is not read.
#[derive(Debug)]
pub struct FileReader<'a> {
    buf: &'a [u8],
    offset: usize,
    max_data_len: usize,
    started: bool,
    done: bool,
    control_frames: usize,
}

impl<'a> FileReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_max_data_len(buf, DEFAULT_MAX_DATA_LEN)
    }

    pub fn with_max_data_len(buf: &'a [u8], max_data_len: usize) -> Self {
        Self {
            buf,
            offset: 0,
            max_data_len,
            started: false,
            done: false,
            control_frames: 0,
        }
    }

    /// Control frames read so far (START, STOP and skipped unknown ones).
    pub fn control_frames(&self) -> usize {
        self.control_frames
    }

    /// The next data frame as `(offset, payload)`, `None` after STOP.
    pub fn next_data(&mut self) -> Result<Option<(usize, &'a [u8])>, StreamError> {
        while !self.done {
            let at = self.offset;
            let rest = &self.buf[at..];
            if rest.is_empty() {
                self.done = true;
                return Err(self.error(at, StreamErrorKind::NoStop));
            }
            let decoded = decode_frame(rest, self.max_data_len).map_err(|e| {
                self.done = true;
                StreamError {
                    offset: at,
                    kind: StreamErrorKind::Frame(e),
                }
            })?;
            let (frame, used) = match decoded {
                Decoded::Frame(frame, used) => (frame, used),
                Decoded::Incomplete(needed) => {
                    let available = rest.len();
                    return Err(self.error(at, StreamErrorKind::Truncated { needed, available }));
                }
            };
            self.offset = at + used;
            match frame {
                Frame::Data(payload) if self.started => return Ok(Some((at, payload))),
                Frame::Data(_) => return Err(self.error(at, StreamErrorKind::NoStart)),
                Frame::Control(control) => {
                    self.control_frames += 1;
                    self.on_control(at, control)?;
                }
            }
        }
        Ok(None)
    }

    fn on_control(&mut self, at: usize, control: Control<'_>) -> Result<(), StreamError> {
        match (self.started, control.kind) {
            (false, ControlType::Start) => {
                if let Some(ct) = control
                    .content_types
                    .iter()
                    .find(|ct| **ct != CONTENT_TYPE_DNSTAP)
                {
                    let ct = String::from_utf8_lossy(ct).into_owned();
                    return Err(self.error(at, StreamErrorKind::WrongContentType(ct)));
                }
                self.started = true;
            }
            (false, _) => return Err(self.error(at, StreamErrorKind::NoStart)),
            (true, ControlType::Stop) => self.done = true,
            (true, ControlType::Unknown(_)) => {}
            (true, kind) => return Err(self.error(at, StreamErrorKind::UnexpectedControl(kind))),
        }
        Ok(())
    }

    fn error(&mut self, offset: usize, kind: StreamErrorKind) -> StreamError {
        self.done = true;
        StreamError { offset, kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(kind: ControlType, content_types: &[&'static [u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        Control {
            kind,
            content_types: content_types.to_vec(),
        }
        .encode(&mut out);
        out
    }

    fn data(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn start_frame_bytes_and_round_trip() {
        let bytes = control(ControlType::Start, &[CONTENT_TYPE_DNSTAP]);
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 22];
        expected.extend_from_slice(CONTENT_TYPE_DNSTAP);
        assert_eq!(bytes, expected);
        let Decoded::Frame(Frame::Control(c), used) = decode_frame(&bytes, 1024).unwrap() else {
            panic!("not a control frame");
        };
        assert_eq!(used, bytes.len());
        assert_eq!(c.kind, ControlType::Start);
        assert_eq!(c.content_types, vec![CONTENT_TYPE_DNSTAP]);
    }

    #[test]
    fn every_control_type_round_trips() {
        for (kind, value) in [
            (ControlType::Accept, 1),
            (ControlType::Start, 2),
            (ControlType::Stop, 3),
            (ControlType::Ready, 4),
            (ControlType::Finish, 5),
            (ControlType::Unknown(77), 77),
        ] {
            let cts: &[&'static [u8]] = match kind {
                ControlType::Ready => &[b"a/b", CONTENT_TYPE_DNSTAP],
                ControlType::Accept => &[CONTENT_TYPE_DNSTAP],
                _ => &[],
            };
            let bytes = control(kind, cts);
            assert_eq!(&bytes[8..12], &u32::to_be_bytes(value));
            let Decoded::Frame(Frame::Control(c), used) = decode_frame(&bytes, 1024).unwrap()
            else {
                panic!("not a control frame");
            };
            assert_eq!(
                (c.kind, c.content_types.as_slice(), used),
                (kind, cts, bytes.len())
            );
        }
    }

    #[test]
    fn data_frame_and_incomplete() {
        let bytes = data(b"hello");
        assert_eq!(
            decode_frame(&bytes, 1024).unwrap(),
            Decoded::Frame(Frame::Data(b"hello"), 9)
        );
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode_frame(&bytes[..cut], 1024).unwrap(),
                Decoded::Incomplete(n) if n > cut
            ));
        }
        let stop = control(ControlType::Stop, &[]);
        for cut in 0..stop.len() {
            assert!(matches!(
                decode_frame(&stop[..cut], 1024).unwrap(),
                Decoded::Incomplete(n) if n > cut
            ));
        }
    }

    #[test]
    fn oversized_and_garbage_are_errors() {
        assert_eq!(
            decode_frame(&[0, 1, 0, 0, 1, 2], 1024),
            Err(FrameError::DataTooLong {
                len: 65536,
                max: 1024
            })
        );
        assert_eq!(
            decode_frame(&[0, 0, 0, 0, 0, 0, 2, 1], 1024),
            Err(FrameError::ControlTooLong { len: 513 })
        );
        assert_eq!(
            decode_frame(&[0, 0, 0, 0, 0, 0, 0, 2, 0, 0], 1024),
            Err(FrameError::ControlTooShort { len: 2 })
        );
        // START with a field claiming 200 bytes in a 12-byte payload.
        let garbage = [
            0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 200,
        ];
        assert_eq!(
            decode_frame(&garbage, 1024),
            Err(FrameError::FieldOverrun { at: 12 })
        );
        // A field header cut short.
        let short = [0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0];
        assert_eq!(
            decode_frame(&short, 1024),
            Err(FrameError::FieldOverrun { at: 12 })
        );
        let long_ct = vec![b'x'; 300];
        let mut bytes = Vec::new();
        Control {
            kind: ControlType::Ready,
            content_types: vec![&long_ct[..]],
        }
        .encode(&mut bytes);
        assert_eq!(
            decode_frame(&bytes, 1024),
            Err(FrameError::ContentTypeTooLong { len: 300 })
        );
    }

    #[test]
    fn read_frame_from_a_reader() {
        let stream = [
            control(ControlType::Start, &[CONTENT_TYPE_DNSTAP]),
            data(b"payload"),
            control(ControlType::Stop, &[]),
        ]
        .concat();
        let mut reader = &stream[..];
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while read_frame(&mut reader, &mut buf, 1024).unwrap() {
            let Decoded::Frame(frame, used) = decode_frame(&buf, 1024).unwrap() else {
                panic!("incomplete frame from read_frame");
            };
            assert_eq!(used, buf.len());
            frames.push(format!("{frame:?}"));
        }
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains("Data"));
        for cut in 1..stream.len() {
            let mut reader = &stream[..cut];
            let result = (0..3).try_for_each(|_| read_frame(&mut reader, &mut buf, 1024).map(drop));
            assert!(
                matches!(result, Err(ReadFrameError::Truncated { .. })) || cut == 42 || cut == 53,
                "cut at {cut}: {result:?}"
            );
        }
        let mut huge = &[0u8, 1, 0, 0][..];
        assert!(matches!(
            read_frame(&mut huge, &mut buf, 1024),
            Err(ReadFrameError::Frame(FrameError::DataTooLong { .. }))
        ));
        let mut long_control = &[0u8, 0, 0, 0, 0, 0, 9, 0][..];
        assert!(matches!(
            read_frame(&mut long_control, &mut buf, 1024),
            Err(ReadFrameError::Frame(FrameError::ControlTooLong {
                len: 2304
            }))
        ));
    }

    fn file(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn file_reader_reads_data_between_start_and_stop() {
        let bytes = file(&[
            control(ControlType::Start, &[CONTENT_TYPE_DNSTAP]),
            data(b"one"),
            control(ControlType::Unknown(9), &[]),
            data(b"two"),
            control(ControlType::Stop, &[]),
            b"ignored after STOP".to_vec(),
        ]);
        let mut reader = FileReader::new(&bytes);
        assert_eq!(reader.next_data().unwrap(), Some((34 + 8, &b"one"[..])));
        assert_eq!(reader.next_data().unwrap().unwrap().1, b"two");
        assert_eq!(reader.next_data().unwrap(), None);
        assert_eq!(reader.next_data().unwrap(), None);
        assert_eq!(reader.control_frames(), 3);
    }

    #[test]
    fn file_reader_errors_carry_offsets() {
        let start = control(ControlType::Start, &[CONTENT_TYPE_DNSTAP]);
        let truncated = file(&[start.clone(), data(b"abcdef")]);
        let err = FileReader::new(&truncated[..truncated.len() - 2])
            .next_data()
            .unwrap_err();
        assert_eq!(err.offset, start.len());
        assert!(matches!(
            err.kind,
            StreamErrorKind::Truncated {
                needed: 10,
                available: 8
            }
        ));
        assert!(
            err.to_string()
                .starts_with(&format!("byte {}: ", start.len()))
        );

        let no_stop = file(&[start.clone(), data(b"x")]);
        let mut reader = FileReader::new(&no_stop);
        reader.next_data().unwrap();
        let err = reader.next_data().unwrap_err();
        assert_eq!(
            (err.offset, err.kind),
            (no_stop.len(), StreamErrorKind::NoStop)
        );

        let no_start = data(b"x");
        assert_eq!(
            FileReader::new(&no_start).next_data().unwrap_err().kind,
            StreamErrorKind::NoStart
        );
        let wrong = control(ControlType::Start, &[b"protobuf:other"]);
        assert!(matches!(
            FileReader::new(&wrong).next_data().unwrap_err().kind,
            StreamErrorKind::WrongContentType(_)
        ));
        let twice = file(&[start.clone(), start.clone()]);
        assert_eq!(
            FileReader::new(&twice).next_data().unwrap_err(),
            StreamError {
                offset: start.len(),
                kind: StreamErrorKind::UnexpectedControl(ControlType::Start)
            }
        );
        let huge = file(&[start.clone(), data(&[0; 100])]);
        assert!(matches!(
            FileReader::with_max_data_len(&huge, 50)
                .next_data()
                .unwrap_err()
                .kind,
            StreamErrorKind::Frame(FrameError::DataTooLong { len: 100, max: 50 })
        ));
        assert_eq!(
            FileReader::new(&[]).next_data().unwrap_err().kind,
            StreamErrorKind::NoStop
        );
    }
}
