//! Any bytes are decoded as one dnstap data frame, and its DNS payloads are read the way
//! `dnstap-read` and the traffic conditions read them, without a panic.
#![no_main]

use dns_oops::dnstap::dns::DnsView;
use dns_oops::dnstap::message;
use libfuzzer_sys::fuzz_target;

fn read_dns(wire: &[u8]) {
    let Ok(view) = DnsView::parse(wire) else {
        return;
    };
    let _ = (
        view.id(),
        view.is_response(),
        view.opcode(),
        view.header_rcode(),
    );
    let _ = view.question();
    let _ = view.full_rcode();
    if let Ok(Some(edns)) = view.edns() {
        for option in edns.options() {
            let _ = option;
        }
        for ede in edns.extended_errors() {
            let _ = ede;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a DNS message too: the payload parser must hold on its own.
    read_dns(data);
    let Ok(frame) = message::decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Some(message) = frame.message {
        let _ = (message.message_type(), message.time_sec());
        for wire in [&message.query_message, &message.response_message]
            .into_iter()
            .flatten()
        {
            read_dns(wire);
        }
    }
});
