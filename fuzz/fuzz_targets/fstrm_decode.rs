//! Any bytes are decoded as Frame Streams, frame by frame and as a capture file, without
//! a panic; a decoded frame never claims more bytes than it was given, and a control
//! frame re-encodes to the bytes it came from when it has only content-type fields.
#![no_main]

use dns_oops::dnstap::fstrm::{Decoded, FileReader, Frame, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Decoded::Frame(frame, used)) = decode_frame(rest, 4096) {
        assert!(used > 0 && used <= rest.len());
        if let Frame::Control(control) = &frame {
            let mut again = Vec::new();
            control.encode(&mut again);
            assert!(again.len() <= used);
            if again.len() == used {
                assert_eq!(again, &rest[..used]);
            }
        }
        rest = &rest[used..];
    }
    let mut reader = FileReader::with_max_data_len(data, 4096);
    while let Ok(Some((offset, payload))) = reader.next_data() {
        assert!(offset + 4 + payload.len() <= data.len());
    }
});
