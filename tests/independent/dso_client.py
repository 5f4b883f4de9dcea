#!/usr/bin/env python3
"""Independent DNS Push Notification (RFC 8765) / DNS Stateful Operations
(RFC 8490) test client.

Written only from the RFC texts (RFC 8490; draft-ietf-dnssd-push-25, which
was published as RFC 8765).  Standard library only; Python >= 3.8.

Sub-commands
============

  dso_client.py conformance --host H --port P --ca F --zone Z --name N
                            [--cert F --key F] [--tls-name S] [--json]
                            [--timeout SEC] [--only ID,ID] [--list]
      Runs the checks below, each in its own fresh TLS connection(s), and
      prints one line per check:
          PASS|FAIL <id> <section> <description> -- <detail>
      or, with --json, one object per line:
          {"id", "section", "description", "passed", "detail"}
      Exit status 0 iff every check passed.  Every wait is bounded by
      --timeout (default 3 s) and the whole run by a 55 s budget.

  dso_client.py watch --host H --port P --ca F --name N [--type TXT]
                      [--seconds S] [--cert F --key F] [--tls-name S]
      Establishes a DSO session (Keepalive), subscribes to NAME/TYPE/IN and
      prints one JSON object per PUSH change notification, flushed:
          {"op": "add"|"remove"|"remove-rrset"|"remove-name",
           "name", "type", "class", "ttl", "rdata"}
      rdata: TXT -> list of strings; other types -> hex of the RDATA with
      any compressed names expanded; collective removes -> null.
      Other lines: {"op":"keepalive",...} (server-initiated Keepalive),
      {"op":"unmatched",...} (a change matching no subscription; RFC 8765
      says to ignore it, it is shown for diagnosis), {"op":"tlv",...} (a TLV
      the client did not expect) and finally {"op":"closed","reason":...}.
      Exits after S seconds (default 30, status 0), on a clean EOF (status 0)
      or on an error / reset / refused subscription (status 1).

Conformance checks (id: section -- what is asserted)
====================================================

Plain DNS on the push port
  dns-soa             RFC 8765 s3, s6.1: SOA query for the zone apex is answered
                      NOERROR, AA=1, with the apex SOA in the answer section.
  dns-srv             RFC 8765 s6.1 step 6: "_dns-push-tls._tcp.<zone>" SRV
                      exists ("this SRV record MUST exist"), NOERROR, AA=1.
  dns-in-session      RFC 8765 s3, RFC 8490 s7.1.2: after DSO establishment,
                      standard queries are still answered authoritatively, and
                      no response carries an edns-tcp-keepalive option.
Session establishment and Keepalive
  keepalive-first     RFC 8490 s5.1, s5.4.1, s7.1: Keepalive request as first
                      message -> QR=1, OPCODE 6, same MESSAGE ID, NOERROR, zero
                      counts, exactly one 8-byte Keepalive TLV as Response
                      Primary TLV, keepalive interval >= 10 s.
  keepalive-values    RFC 8490 s6.5.2, s7.1: asking for 100 ms / 100 ms and
                      then for infinity still yields a server-chosen keepalive
                      interval >= 10 s (inactivity timeout: any value).
  unknown-additional-tlv  RFC 8490 s5.4.5: unrecognised Additional TLV is
                      silently ignored (normal Keepalive response).
  padding             RFC 8490 s7.3: request with Encryption Padding TLV ->
                      response MUST also include an Encryption Padding TLV.
  dsotypeni           RFC 8490 s5.4.5: request with unrecognised Primary TLV ->
                      RCODE DSOTYPENI (11), same ID, no copy of the TLV; the
                      session stays usable (Keepalive answered).
  dsotypeni-first     RFC 8490 s5.1.1: same as the first DSO message; then a
                      Keepalive still establishes the session (NOERROR).
  formerr-nonzero-counts  RFC 8490 s5.4: "If a DSO message is received where
                      any of the count fields are not zero, then a FORMERR MUST
                      be returned" -- tried for QD/AN/NS/ARCOUNT in turn.
DNS Push
  subscribe-first     RFC 8765 s6, s6.2.2, s6.3, s6.3.1: SUBSCRIBE as first
                      message -> NOERROR without SUBSCRIBE TLV; then (never
                      before) an initial PUSH: MESSAGE ID 0, QR=0, PUSH TLV
                      only, >= 1 change, adds of NAME/TXT/IN, <= 16382 bytes.
  subscribe-pipelined RFC 8490 s6.1, RFC 8765 s6: two SUBSCRIBEs sent in one
                      write as the first messages are both answered NOERROR and
                      both initial answers (TXT, apex SOA) are pushed.
  subscribe-absent-name  RFC 8765 s6.2.1: SUBSCRIBE for a non-existent name in
                      the zone is accepted (NOERROR, "MUST NOT return NXDOMAIN").
  subscribe-outside-zone RFC 8765 s6.2.2 Table 1: SUBSCRIBE for a name outside
                      the zone -> NOTAUTH (9) ("Server is not authoritative for
                      the requested name").
  subscribe-type-any  RFC 8765 s6.2.1: TYPE ANY subscription is accepted and
                      the initial PUSH includes the TXT records of NAME.
  unsubscribe         RFC 8765 s6.4.1: UNSUBSCRIBE (by MESSAGE ID) gets no
                      response, the session stays usable, and the same
                      NAME/TYPE/CLASS can be subscribed again (it is no longer
                      active, so this is not a fatal duplicate).
  unsubscribe-unknown-id RFC 8765 s6.4.1: UNSUBSCRIBE matching no subscription
                      is silently ignored.
  unsubscribe-legacy  interop (pre-RFC UNSUBSCRIBE carrying NAME/TYPE/CLASS):
                      the session survives (Keepalive answered); whether the
                      form was honoured is reported in the detail.
  reconfirm           RFC 8765 s6.5.1, RFC 8490 s5.4.3: RECONFIRM is
                      unidirectional -- no response, session stays usable.
Fatal errors (each also verifies that a second session, opened before the
offence, still gets its Keepalive answered -- the abort is per connection)
  fatal-unidirectional-unknown-tlv  RFC 8490 s5.4.5, s5.4.3
  fatal-response-unknown-id         RFC 8490 s5.5.2
  fatal-response-id-zero            RFC 8490 s5.4.1, s8.1
  fatal-client-subscribe-response   RFC 8765 s6.2
  fatal-client-push                 RFC 8765 s6.3
  fatal-retry-delay-unidirectional  RFC 8490 s7.2.1, s6.6.1
  fatal-retry-delay-request         RFC 8490 s7.2.1
  fatal-keepalive-id-zero           RFC 8490 s7.1, s5.4.1
  fatal-subscribe-id-zero           RFC 8490 s5.4.1
  fatal-unsubscribe-nonzero-id      RFC 8490 s5.4.1, RFC 8765 s6.4.1
  fatal-duplicate-subscribe         RFC 8765 s6.2.1 (case-insensitive match)
  fatal-edns-tcp-keepalive          RFC 8490 s7.1.2, s5.4.6
  For each: no answer to the offending message, no answer to a Keepalive
  pipelined right behind it, and the connection is closed/reset.
Malformed input where the RFC names no single outcome
  tlv-overrun         RFC 8490 s5.4.4: a TLV whose DSO-LENGTH runs past the
                      message end -> FORMERR or abort (never NOERROR/silence).
  subscribe-id-reuse  RFC 8490 s5.4.1, s5.5.2, RFC 8765 s6.2.1: SUBSCRIBE reusing
                      the MESSAGE ID of an active subscription -> abort or an
                      error RCODE, never NOERROR; IDs of other sessions are
                      independent (same ID on a second session is fine).

Every DSO message received from the server is also checked against RFC 8490
s5.4/s5.4.1 (zero counts, zero Z bits, TLVs inside the message, QR/ID
combinations), s5.1 (no unidirectional message before the session is
established), s6.5.2 (Keepalive interval >= 10 s), s7.1 (Keepalive TLV only
in Keepalive responses) and RFC 8765 s6.2.2/s6.3.1/s6.4/s6.5 (no SUBSCRIBE TLV
in SUBSCRIBE responses, PUSH well-formed, no UNSUBSCRIBE/RECONFIRM/SUBSCRIBE
from the server); any violation fails the check in which it was seen.
"""

import argparse
import json
import socket
import ssl
import struct
import time

# ---------------------------------------------------------------------------
# Constants (RFC 1035, RFC 8490 s10, RFC 8765 s8)
# ---------------------------------------------------------------------------

OPCODE_QUERY = 0
OPCODE_DSO = 6

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
               4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET",
               8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI"}
NOERROR, FORMERR, NXDOMAIN, NOTAUTH, DSOTYPENI = 0, 1, 3, 9, 11

TLV_KEEPALIVE = 0x0001
TLV_RETRY_DELAY = 0x0002
TLV_PADDING = 0x0003
TLV_SUBSCRIBE = 0x0040
TLV_PUSH = 0x0041
TLV_UNSUBSCRIBE = 0x0042
TLV_RECONFIRM = 0x0043
TLV_UNASSIGNED = 0xF7FE      # in the "Unassigned" range 0040-F7FF
TLV_NAMES = {TLV_KEEPALIVE: "Keepalive", TLV_RETRY_DELAY: "RetryDelay",
             TLV_PADDING: "EncryptionPadding", TLV_SUBSCRIBE: "SUBSCRIBE",
             TLV_PUSH: "PUSH", TLV_UNSUBSCRIBE: "UNSUBSCRIBE",
             TLV_RECONFIRM: "RECONFIRM"}

CLASS_IN = 1
CLASS_ANY = 255
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "RP": 17, "AFSDB": 18, "PX": 26, "AAAA": 28, "SRV": 33,
         "KX": 36, "DNAME": 39, "OPT": 41, "NSEC": 47, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
CLASS_NAMES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
T_SOA, T_TXT, T_SRV, T_OPT, T_ANY = 6, 16, 33, 41, 255

TTL_MAX_ADD = 0x7FFFFFFF
TTL_REMOVE_ONE = 0xFFFFFFFF
TTL_REMOVE_COLLECTIVE = 0xFFFFFFFE
MAX_PUSH_MESSAGE = 16382          # RFC 8765 s6.3.1
MIN_KEEPALIVE_INTERVAL_MS = 10000  # RFC 8490 s6.5.2
EDNS_TCP_KEEPALIVE = 11           # RFC 7828 option code

TOTAL_BUDGET = 55.0               # seconds, whole conformance run


def rcode_name(rcode):
    return RCODE_NAMES.get(rcode, "RCODE%d" % rcode)


def type_name(rtype):
    return TYPE_NAMES.get(rtype, "TYPE%d" % rtype)


def class_name(rclass):
    return CLASS_NAMES.get(rclass, "CLASS%d" % rclass)


def parse_type(text):
    t = text.upper()
    if t in TYPES:
        return TYPES[t]
    if t.startswith("TYPE") and t[4:].isdigit():
        return int(t[4:])
    if t.isdigit():
        return int(t)
    raise argparse.ArgumentTypeError("unknown RR type %r" % text)


class ParseError(Exception):
    """Malformed DNS/DSO data received."""


# ---------------------------------------------------------------------------
# Domain names (RFC 1035 s3.1, s4.1.4)
# ---------------------------------------------------------------------------

def fqdn(name):
    return name if name.endswith(".") else name + "."


def name_eq(a, b):
    """DNS case-insensitive comparison for US-ASCII letters (RFC 4343)."""
    return fqdn(a).lower() == fqdn(b).lower()


def encode_name(name):
    """Presentation-format name -> uncompressed wire format."""
    name = fqdn(name)
    if name == ".":
        return b"\x00"
    out = b""
    for label in name[:-1].split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError("bad label in %r" % name)
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > 255:
        raise ValueError("name too long: %r" % name)
    return out


def label_text(raw):
    out = []
    for b in raw:
        c = chr(b)
        if c in ".\\":
            out.append("\\" + c)
        elif 0x21 <= b <= 0x7E:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return "".join(out)


def decode_name(buf, off, end=None):
    """Decode a possibly compressed name at buf[off:].

    Compression pointers are offsets from the start of the DNS message
    (buf must begin with the 12-byte header, without the TCP length prefix).
    Returns (name, offset just past the name in the original position).
    `end` bounds the uncompressed part (e.g. the end of a TLV or RDATA).
    """
    limit = len(buf) if end is None else end
    labels, after, hops, wire_len = [], None, 0, 0
    pos = off
    while True:
        if pos >= (limit if after is None else len(buf)):
            raise ParseError("name runs past end of data at offset %d" % pos)
        n = buf[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= (limit if after is None else len(buf)):
                raise ParseError("truncated compression pointer")
            ptr = ((n & 0x3F) << 8) | buf[pos + 1]
            if after is None:
                after = pos + 2
            hops += 1
            if hops > 64 or ptr >= pos:
                raise ParseError("bad compression pointer %d at %d" % (ptr, pos))
            pos = ptr
            continue
        if n & 0xC0:
            raise ParseError("unsupported label type 0x%02x" % n)
        pos += 1
        wire_len += n + 1
        if wire_len > 255:
            raise ParseError("name longer than 255 octets")
        if n == 0:
            break
        if pos + n > (limit if after is None else len(buf)):
            raise ParseError("label runs past end of data")
        labels.append(label_text(buf[pos:pos + n]))
        pos += n
    name = ".".join(labels) + "." if labels else "."
    return name, (after if after is not None else pos)


# ---------------------------------------------------------------------------
# RDATA helpers
# ---------------------------------------------------------------------------

def parse_txt(rdata):
    strings, i = [], 0
    while i < len(rdata):
        n = rdata[i]
        if i + 1 + n > len(rdata):
            raise ParseError("TXT character-string runs past RDATA")
        strings.append(rdata[i + 1:i + 1 + n])
        i += 1 + n
    return strings


def txt_rdata(strings):
    out = b""
    for s in strings:
        b = s.encode() if isinstance(s, str) else s
        out += bytes([len(b)]) + b
    return out


# RR types whose RDATA may hold compressed names (RFC 8765 s6.3.1 list):
# a layout string: 'N' = domain name, digit = that many fixed bytes,
# '*' = rest of RDATA verbatim.
_RDATA_LAYOUT = {2: "N", 5: "N", 12: "N", 39: "N", 6: "NN*", 15: "2N",
                 18: "2N", 21: "2N", 36: "2N", 17: "NN", 26: "2NN",
                 33: "6N", 47: "N*"}


def expand_rdata(msg, rtype, off, rdlen):
    """RDATA at msg[off:off+rdlen] with compressed names expanded."""
    end = off + rdlen
    layout = _RDATA_LAYOUT.get(rtype)
    if layout is None:
        return msg[off:end]
    out, pos = b"", off
    for item in layout:
        if item == "N":
            name, pos = decode_name(msg, pos, end)
            out += encode_name_raw(name)
        elif item == "*":
            out += msg[pos:end]
            pos = end
        else:
            n = int(item)
            if pos + n > end:
                raise ParseError("RDATA too short for %s" % type_name(rtype))
            out += msg[pos:pos + n]
            pos += n
    if pos != end:
        raise ParseError("RDATA length mismatch for %s" % type_name(rtype))
    return out


def encode_name_raw(name):
    """Like encode_name, but accepts the escaped labels decode_name emits."""
    if name == ".":
        return b"\x00"
    out, label, i = b"", b"", 0
    while i < len(name):
        c = name[i]
        if c == "\\":
            if name[i + 1:i + 4].isdigit():
                label += bytes([int(name[i + 1:i + 4])])
                i += 4
            else:
                label += name[i + 1].encode("latin-1")
                i += 2
            continue
        if c == ".":
            out += bytes([len(label)]) + label
            label = b""
        else:
            label += c.encode("latin-1")
        i += 1
    if label:
        out += bytes([len(label)]) + label
    return out + b"\x00"


def rdata_text(rtype, rdata):
    """Short human-readable RDATA (for details)."""
    try:
        if rtype == T_TXT:
            return " ".join(json.dumps(s.decode("utf-8", "backslashreplace"))
                            for s in parse_txt(rdata))
        if rtype == 1 and len(rdata) == 4:
            return ".".join(str(b) for b in rdata)
    except ParseError:
        pass
    return rdata.hex()


# ---------------------------------------------------------------------------
# DNS message building and parsing
# ---------------------------------------------------------------------------

def pack_header(msg_id, qr=0, opcode=0, aa=0, rd=0, z=0, rcode=0,
                counts=(0, 0, 0, 0)):
    flags = (qr << 15) | (opcode << 11) | (aa << 10) | (rd << 8) | (z << 4) | rcode
    return struct.pack("!HHHHHH", msg_id, flags, *counts)


def build_query(msg_id, qname, qtype, qclass=CLASS_IN, edns_options=None):
    """Standard QUERY; edns_options (list of (code, data)) adds an OPT RR."""
    arcount = 0 if edns_options is None else 1
    msg = pack_header(msg_id, opcode=OPCODE_QUERY, counts=(1, 0, 0, arcount))
    msg += encode_name(qname) + struct.pack("!HH", qtype, qclass)
    if edns_options is not None:
        opts = b"".join(struct.pack("!HH", c, len(d)) + d for c, d in edns_options)
        msg += b"\x00" + struct.pack("!HHIH", T_OPT, 1232, 0, len(opts)) + opts
    return msg


class RR:
    """A resource record / PUSH change notification, with message context."""

    def __init__(self, msg, name, rtype, rclass, ttl, off, rdlen):
        self.msg, self.name, self.type, self.rclass = msg, name, rtype, rclass
        self.ttl, self.rdoff, self.rdlen = ttl, off, rdlen

    @property
    def rdata(self):
        return self.msg[self.rdoff:self.rdoff + self.rdlen]

    def canonical_rdata(self):
        return expand_rdata(self.msg, self.type, self.rdoff, self.rdlen)

    def __repr__(self):
        return "%s %s %s ttl=%d %s" % (self.name, class_name(self.rclass),
                                       type_name(self.type), self.ttl,
                                       rdata_text(self.type, self.rdata))


def parse_rr(buf, off, end=None):
    end = len(buf) if end is None else end
    name, off = decode_name(buf, off, end)
    if off + 10 > end:
        raise ParseError("resource record header truncated")
    rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", buf, off)
    off += 10
    if off + rdlen > end:
        raise ParseError("RDATA runs past end (%s %s)" % (name, type_name(rtype)))
    return RR(buf, name, rtype, rclass, ttl, off, rdlen), off + rdlen


class Tlv:
    def __init__(self, ttype, data, offset):
        self.type, self.data, self.offset = ttype, data, offset

    def __repr__(self):
        return "%s(len=%d)" % (TLV_NAMES.get(self.type, "TLV0x%04x" % self.type),
                               len(self.data))


def parse_tlvs(buf, off):
    """RFC 8490 s5.4.4: DSO-TYPE, DSO-LENGTH, DSO-DATA up to the message end."""
    tlvs = []
    while off < len(buf):
        if off + 4 > len(buf):
            raise ParseError("truncated TLV header at offset %d" % off)
        ttype, tlen = struct.unpack_from("!HH", buf, off)
        if off + 4 + tlen > len(buf):
            raise ParseError("TLV 0x%04x DSO-LENGTH %d runs past message end"
                             % (ttype, tlen))
        tlvs.append(Tlv(ttype, buf[off + 4:off + 4 + tlen], off + 4))
        off += 4 + tlen
    return tlvs


class Msg:
    """A received DNS message (standard or DSO)."""

    def __init__(self, raw):
        if len(raw) < 12:
            raise ParseError("message shorter than the 12-byte header")
        self.raw = raw
        (self.id, flags, self.qdcount, self.ancount, self.nscount,
         self.arcount) = struct.unpack_from("!HHHHHH", raw)
        self.qr = flags >> 15
        self.opcode = (flags >> 11) & 0xF
        self.aa = (flags >> 10) & 1
        self.tc = (flags >> 9) & 1
        self.dso_z = (flags >> 4) & 0x7F       # RFC 8490 s5.4.1 "Z" bits
        self.rcode = flags & 0xF
        self.questions, self.answers, self.authority, self.additional = [], [], [], []
        self.tlvs = []
        self.parse_error = None
        try:
            if self.opcode == OPCODE_DSO:
                self.tlvs = parse_tlvs(raw, 12)
            else:
                self._parse_sections()
        except ParseError as e:
            self.parse_error = str(e)

    def _parse_sections(self):
        off = 12
        for _ in range(self.qdcount):
            name, off = decode_name(self.raw, off)
            if off + 4 > len(self.raw):
                raise ParseError("question truncated")
            qtype, qclass = struct.unpack_from("!HH", self.raw, off)
            off += 4
            self.questions.append((name, qtype, qclass))
        for count, section in ((self.ancount, self.answers),
                               (self.nscount, self.authority),
                               (self.arcount, self.additional)):
            for _ in range(count):
                rr, off = parse_rr(self.raw, off)
                section.append(rr)

    @property
    def is_dso(self):
        return self.opcode == OPCODE_DSO

    def primary(self):
        return self.tlvs[0] if self.tlvs else None

    def edns_options(self):
        """Options of the OPT RR, or None if there is none."""
        for rr in self.additional:
            if rr.type == T_OPT:
                opts, data, i = [], rr.rdata, 0
                while i + 4 <= len(data):
                    code, olen = struct.unpack_from("!HH", data, i)
                    opts.append((code, data[i + 4:i + 4 + olen]))
                    i += 4 + olen
                return opts
        return None

    def describe(self):
        if self.is_dso:
            return "DSO %s id=0x%04x %s tlvs=%s" % (
                "response" if self.qr else ("request" if self.id else "unidirectional"),
                self.id, rcode_name(self.rcode), self.tlvs)
        return "DNS opcode=%d qr=%d id=0x%04x %s" % (self.opcode, self.qr, self.id,
                                                     rcode_name(self.rcode))


# ---------------------------------------------------------------------------
# DSO TLVs and messages (RFC 8490 s5.4, s7; RFC 8765 s6.2-6.5)
# ---------------------------------------------------------------------------

def tlv(ttype, data=b""):
    return struct.pack("!HH", ttype, len(data)) + data


def keepalive_tlv(inactivity_ms, interval_ms):
    return tlv(TLV_KEEPALIVE, struct.pack("!II", inactivity_ms, interval_ms))


def retry_delay_tlv(ms):
    return tlv(TLV_RETRY_DELAY, struct.pack("!I", ms))


def padding_tlv(n):
    return tlv(TLV_PADDING, b"\x00" * n)


def subscribe_tlv(name, rtype, rclass=CLASS_IN):
    return tlv(TLV_SUBSCRIBE, encode_name(name) + struct.pack("!HH", rtype, rclass))


def unsubscribe_tlv(sub_id):
    return tlv(TLV_UNSUBSCRIBE, struct.pack("!H", sub_id))


def legacy_unsubscribe_tlv(name, rtype, rclass=CLASS_IN):
    """Pre-RFC UNSUBSCRIBE form: NAME TYPE CLASS instead of a MESSAGE ID."""
    return tlv(TLV_UNSUBSCRIBE, encode_name(name) + struct.pack("!HH", rtype, rclass))


def reconfirm_tlv(name, rtype, rclass, rdata):
    """RFC 8765 s6.5.1: NAME TYPE CLASS RDATA (no RDLEN)."""
    return tlv(TLV_RECONFIRM, encode_name(name) + struct.pack("!HH", rtype, rclass) + rdata)


def push_tlv(changes):
    """changes: list of (name, type, class, ttl, rdata)."""
    data = b""
    for name, rtype, rclass, ttl, rdata in changes:
        data += encode_name(name) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata
    return tlv(TLV_PUSH, data)


def build_dso(msg_id, *tlvs, qr=0, rcode=0, counts=(0, 0, 0, 0)):
    return pack_header(msg_id, qr=qr, opcode=OPCODE_DSO, rcode=rcode,
                       counts=counts) + b"".join(tlvs)


def parse_keepalive(t):
    if len(t.data) != 8:
        raise ParseError("Keepalive TLV DSO-LENGTH %d, expected 8" % len(t.data))
    return struct.unpack("!II", t.data)


def parse_push_changes(msg, t):
    """Change notifications of a PUSH TLV (RFC 8765 s6.3.1, Figure 3)."""
    off, end, changes = t.offset, t.offset + len(t.data), []
    while off < end:
        rr, off = parse_rr(msg.raw, off, end)
        changes.append(rr)
    return changes


def change_op(rr):
    """RFC 8765 s6.3.1 TTL semantics -> watch 'op'."""
    if rr.ttl <= TTL_MAX_ADD:
        return "add"
    if rr.ttl == TTL_REMOVE_ONE:
        return "remove"
    if rr.ttl == TTL_REMOVE_COLLECTIVE:
        if rr.rclass == CLASS_ANY or rr.type == T_ANY:
            return "remove-name"
        return "remove-rrset"
    return None  # "SHOULD silently ignore this particular change notification"


def change_violations(rr):
    """Things RFC 8765 s6.3.1 makes a fatal error for the receiving client."""
    v = []
    op = change_op(rr)
    if op in ("add", "remove") and (rr.type == T_ANY or rr.rclass == CLASS_ANY):
        v.append("%s with TYPE/CLASS ANY (%r) is fatal (RFC 8765 s6.3.1)" % (op, rr))
    if rr.ttl == TTL_REMOVE_COLLECTIVE and rr.rdlen != 0:
        v.append("collective remove with RDLEN %d is fatal (RFC 8765 s6.3.1)" % rr.rdlen)
    if rr.ttl == TTL_REMOVE_COLLECTIVE and rr.rclass == CLASS_ANY and rr.type != 0:
        v.append("remove-all-classes with TYPE %d, MUST be 0 on transmission "
                 "(RFC 8765 s6.3.1)" % rr.type)
    return v


def subscription_matches(sub, rr):
    """Does change rr fall under subscription sub=(name,type,class)?"""
    name, rtype, rclass = sub
    if not name_eq(name, rr.name):
        return False
    if rr.ttl == TTL_REMOVE_COLLECTIVE:
        # collective removes: the removed set must intersect the subscription
        type_ok = rr.rclass == CLASS_ANY or rr.type == T_ANY or rtype == T_ANY or rtype == rr.type
        class_ok = rr.rclass == CLASS_ANY or rclass == CLASS_ANY or rclass == rr.rclass
        return type_ok and class_ok
    return (rtype == T_ANY or rtype == rr.type) and (rclass == CLASS_ANY or rclass == rr.rclass)


# ---------------------------------------------------------------------------
# TLS transport with 2-byte length framing (RFC 1035 s4.2.2, RFC 7766, RFC 7858)
# ---------------------------------------------------------------------------

class Closed(Exception):
    """The server closed the connection. kind: 'reset', 'eof', 'close_notify'."""

    def __init__(self, kind, detail=""):
        super().__init__("%s%s" % (kind, (": " + detail) if detail else ""))
        self.kind = kind


def make_tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


class Conn:
    """One TLS connection carrying length-prefixed DNS messages."""

    def __init__(self, host, port, tls_ctx, server_name, timeout):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = tls_ctx.wrap_socket(raw, server_hostname=server_name,
                                            suppress_ragged_eofs=False)
        except Exception:
            raw.close()
            raise
        self.buf = b""
        self.closed = None
        self.last_io = time.monotonic()
        self.sent = 0

    def send(self, *messages):
        """Send whole messages in a single write (pipelined)."""
        if self.closed:
            raise Closed(self.closed, "connection already closed")
        data = b"".join(struct.pack("!H", len(m)) + m for m in messages)
        try:
            self.sock.settimeout(5.0)
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed = "reset"
            raise Closed("reset", str(e))
        except ssl.SSLEOFError as e:
            self.closed = "eof"
            raise Closed("eof", str(e))
        except (ssl.SSLError, OSError) as e:
            self.closed = "error"
            raise Closed("error", "%s: %s" % (type(e).__name__, e))
        self.last_io = time.monotonic()
        self.sent += len(messages)

    def _fill(self, timeout):
        """Read more bytes; False on timeout; raises Closed."""
        if self.closed:
            raise Closed(self.closed)
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLWantReadError:
            return False
        except ConnectionResetError as e:
            self.closed = "reset"
            raise Closed("reset", str(e))
        except ssl.SSLEOFError as e:
            # OpenSSL reports both a bare FIN and an RST this way; the kernel's
            # TCP state tells them apart.
            self.closed = self.tcp_close_kind() or "eof"
            raise Closed(self.closed, {"reset": "TCP RST",
                                       "eof": "TCP FIN without TLS close_notify"}
                         .get(self.closed, str(e)))
        except (ssl.SSLError, OSError) as e:
            self.closed = self.tcp_close_kind() or "error"
            raise Closed(self.closed, "%s: %s" % (type(e).__name__, e))
        if not data:
            self.closed = "close_notify"
            raise Closed("close_notify", "TLS close_notify / orderly close")
        self.buf += data
        return True

    def tcp_close_kind(self):
        """'reset' if the peer sent RST, 'eof' if it sent FIN (Linux TCP_INFO)."""
        try:
            state = self.sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_INFO", 11), 1)[0]
        except (OSError, ValueError):
            return None
        return {7: "reset", 8: "eof"}.get(state)    # TCP_CLOSE / TCP_CLOSE_WAIT

    def recv_msg(self, timeout):
        """Next whole DNS message (bytes), or None after `timeout` seconds."""
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                n = struct.unpack_from("!H", self.buf)[0]
                if len(self.buf) >= 2 + n:
                    msg, self.buf = self.buf[2:2 + n], self.buf[2 + n:]
                    self.last_io = time.monotonic()
                    return msg
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self._fill(remaining)

    def close_gracefully(self):
        """RFC 8765 s6.7: TLS close_notify, then TCP FIN (shutdown SHUT_WR)."""
        if self.closed is None:
            try:
                self.sock.setblocking(False)
                try:
                    self.sock.unwrap()        # sends close_notify
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                self.sock.shutdown(socket.SHUT_WR)
            except (OSError, ValueError, ssl.SSLError):
                pass
            self.closed = "local"
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Forcibly abort: SO_LINGER 0 then close -> TCP RST (RFC 8490 s5.3)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.closed = self.closed or "local"
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# DSO session bookkeeping and validation of what the server sends
# ---------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def require(cond, message):
    if not cond:
        raise CheckFailed(message)


class Session:
    """Client side of one DSO session; validates every server message."""

    _id_seed = (time.monotonic_ns() >> 8) & 0x7FFF

    def __init__(self, conn, label="session"):
        self.conn = conn
        self.label = label
        Session._id_seed = (Session._id_seed + 0x1234) & 0xFFFF
        self.next_id = Session._id_seed or 1
        self.pending = {}        # id -> ('dso', primary TLV type) | ('dns', qtype)
        self.responses = {}      # id -> Msg
        self.subs = {}           # id -> (name, type, class), active
        self.sub_requests = {}   # id -> (name, type, class), awaiting response
        self.ever_subscribed = False
        self.established = False
        self.dso_sent = False
        self.pushes = []         # (Msg, [RR])
        self.keepalives = []     # server-initiated (inactivity, interval)
        self.retry_delay = None  # (rcode, ms) if the server ended the session
        self.cancelled = {}      # sub id -> rcode (RFC 8490 s5.6)
        self.violations = []
        self.log = []

    # -- sending --------------------------------------------------------
    def alloc_id(self):
        while True:
            i = self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFF or 1
            if i and i not in self.pending and i not in self.subs and i not in self.sub_requests:
                return i

    def dso_request_bytes(self, primary, *additional, msg_id=None, track=True):
        """Build a DSO request; register it as outstanding. Returns (id, bytes)."""
        msg_id = self.alloc_id() if msg_id is None else msg_id
        ptype = struct.unpack_from("!H", primary)[0]
        if track:
            self.pending[msg_id] = ("dso", ptype)
            if ptype == TLV_SUBSCRIBE:
                name, off = decode_name(primary, 4)
                rtype, rclass = struct.unpack_from("!HH", primary, off)
                self.sub_requests[msg_id] = (name, rtype, rclass)
                self.ever_subscribed = True
        return msg_id, build_dso(msg_id, primary, *additional)

    def request(self, primary, *additional, msg_id=None):
        msg_id, raw = self.dso_request_bytes(primary, *additional, msg_id=msg_id)
        self.send(raw)
        return msg_id

    def keepalive_bytes(self, inactivity=30000, interval=3600000):
        return self.dso_request_bytes(keepalive_tlv(inactivity, interval))

    def query_bytes(self, qname, qtype, edns_options=None):
        msg_id = self.alloc_id()
        self.pending[msg_id] = ("dns", qtype)
        return msg_id, build_query(msg_id, qname, qtype, edns_options=edns_options)

    def send(self, *raws):
        for r in raws:
            if r[2] >> 3 & 0xF == OPCODE_DSO:
                self.dso_sent = True
        self.conn.send(*raws)

    # -- receiving ------------------------------------------------------
    def violation(self, text):
        self.violations.append("%s: %s" % (self.label, text))

    def pump(self, timeout):
        """Receive and dispatch at most one message. Raises Closed."""
        raw = self.conn.recv_msg(timeout)
        if raw is None:
            return None
        msg = Msg(raw)
        self.log.append(msg)
        if msg.is_dso:
            self._on_dso(msg)
        else:
            self._on_dns(msg)
        return msg

    def _on_dns(self, msg):
        if msg.parse_error:
            self.violation("malformed DNS message: %s" % msg.parse_error)
        if not msg.qr:
            self.violation("unexpected DNS request from server (%s)" % msg.describe())
            return
        opts = msg.edns_options() or []
        if self.dso_sent and any(code == EDNS_TCP_KEEPALIVE for code, _ in opts):
            self.violation("edns-tcp-keepalive option in a message on a DSO session "
                           "(fatal, RFC 8490 s7.1.2)")
        kind = self.pending.get(msg.id)
        if kind is None or kind[0] != "dns":
            self.violation("DNS response with unknown MESSAGE ID 0x%04x" % msg.id)
            return
        del self.pending[msg.id]
        self.responses[msg.id] = msg

    def _on_dso(self, msg):
        if msg.qdcount or msg.ancount or msg.nscount or msg.arcount:
            self.violation("DSO message with nonzero count fields (RFC 8490 s5.4): %s"
                           % msg.describe())
        if msg.dso_z:
            self.violation("DSO message with nonzero Z bits 0x%02x (RFC 8490 s5.4.1)" % msg.dso_z)
        if msg.parse_error:
            self.violation("malformed DSO message: %s" % msg.parse_error)
            return
        if msg.qr:
            self._on_dso_response(msg)
        elif msg.id:
            self.violation("server sent a DSO request (id 0x%04x, primary %r); none is "
                           "defined server->client (RFC 8490 s7.1: Keepalive from a server "
                           "MUST be unidirectional; RFC 8765 s6.2: SUBSCRIBE from a server "
                           "is fatal)" % (msg.id, msg.primary()))
        else:
            self._on_dso_unidirectional(msg)

    def _on_dso_response(self, msg):
        if msg.id == 0:
            self.violation("DSO response with MESSAGE ID 0 (fatal, RFC 8490 s5.4.1)")
            return
        kind = self.pending.get(msg.id)
        if kind is None or kind[0] != "dso":
            if msg.id in self.subs and msg.rcode != NOERROR:
                # RFC 8490 s5.6 responder-initiated cancellation
                self.cancelled[msg.id] = msg.rcode
                del self.subs[msg.id]
                return
            self.violation("DSO response for MESSAGE ID 0x%04x with no outstanding request "
                           "(fatal, RFC 8490 s5.5.2): %s" % (msg.id, msg.describe()))
            return
        del self.pending[msg.id]
        ptype = kind[1]
        types = [t.type for t in msg.tlvs]
        if ptype == TLV_KEEPALIVE and msg.rcode == NOERROR:
            if types.count(TLV_KEEPALIVE) != 1 or types[0] != TLV_KEEPALIVE:
                self.violation("Keepalive response must carry exactly one Keepalive TLV, "
                               "first (RFC 8490 s7.1, s5.4.2); got %r" % msg.tlvs)
            else:
                try:
                    _, interval = parse_keepalive(msg.tlvs[0])
                    if interval < MIN_KEEPALIVE_INTERVAL_MS:
                        self.violation("keepalive interval %d ms < 10 s (fatal, RFC 8490 "
                                       "s6.5.2)" % interval)
                except ParseError as e:
                    self.violation(str(e))
        elif ptype != TLV_KEEPALIVE and TLV_KEEPALIVE in types:
            self.violation("Keepalive TLV added to a non-Keepalive response (RFC 8490 s7.1)")
        if ptype == TLV_SUBSCRIBE and TLV_SUBSCRIBE in types:
            self.violation("SUBSCRIBE response contains a SUBSCRIBE TLV (RFC 8765 s6.2.2)")
        if ptype != TLV_KEEPALIVE and ptype in types and msg.rcode == DSOTYPENI:
            self.violation("DSOTYPENI response contains a copy of the unrecognised "
                           "Primary TLV (RFC 8490 s5.4.5)")
        for t in msg.tlvs:
            if t.type == TLV_RETRY_DELAY and len(t.data) != 4:
                self.violation("Retry Delay TLV with DSO-LENGTH %d (RFC 8490 s7.2)" % len(t.data))
        if msg.rcode == NOERROR:
            self.established = True
        sub = self.sub_requests.pop(msg.id, None)
        if sub is not None and msg.rcode == NOERROR:
            self.subs[msg.id] = sub
        self.responses[msg.id] = msg

    def _on_dso_unidirectional(self, msg):
        prim = msg.primary()
        if prim is None:
            self.violation("DSO unidirectional message without TLVs (RFC 8490 s5.4.2)")
            return
        if not self.established:
            self.violation("server sent a DSO unidirectional %r before the DSO session was "
                           "established (RFC 8490 s5.1)" % prim)
        if prim.type == TLV_PUSH:
            self._on_push(msg, prim)
        elif prim.type == TLV_KEEPALIVE:
            try:
                inact, interval = parse_keepalive(prim)
                self.keepalives.append((inact, interval))
                if interval < MIN_KEEPALIVE_INTERVAL_MS:
                    self.violation("server Keepalive with interval %d ms < 10 s (fatal, "
                                   "RFC 8490 s6.5.2)" % interval)
            except ParseError as e:
                self.violation(str(e))
        elif prim.type == TLV_RETRY_DELAY:
            if len(prim.data) != 4:
                self.violation("Retry Delay TLV with DSO-LENGTH %d" % len(prim.data))
                self.retry_delay = (msg.rcode, None)
            else:
                self.retry_delay = (msg.rcode, struct.unpack("!I", prim.data)[0])
        elif prim.type in (TLV_UNSUBSCRIBE, TLV_RECONFIRM, TLV_SUBSCRIBE):
            self.violation("server sent %r (fatal, RFC 8765 s6.2/6.4/6.5)" % prim)
        else:
            self.violation("unexpected unidirectional DSO message %r (RFC 8490 s5.4.3: "
                           "must not be sent speculatively)" % prim)

    def _on_push(self, msg, prim):
        if len(msg.raw) > MAX_PUSH_MESSAGE:
            self.violation("PUSH message of %d bytes > 16382 (fatal, RFC 8765 s6.3.1)"
                           % len(msg.raw))
        try:
            changes = parse_push_changes(msg, prim)
        except ParseError as e:
            self.violation("malformed PUSH TLV: %s" % e)
            return
        if not changes:
            self.violation("PUSH with no change notification (fatal, RFC 8765 s6.3.1)")
        for rr in changes:
            for v in change_violations(rr):
                self.violation(v)
        if not self.ever_subscribed:
            self.violation("PUSH on a session that never subscribed: %r" % changes)
        self.pushes.append((msg, changes))

    # -- waiting helpers -------------------------------------------------
    def wait_response(self, msg_id, timeout, what="request"):
        end = time.monotonic() + timeout
        while msg_id not in self.responses:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise CheckFailed("%s: no response to %s (ID 0x%04x) within %.1fs"
                                  % (self.label, what, msg_id, timeout))
            try:
                self.pump(remaining)
            except Closed as c:
                raise CheckFailed("%s: connection closed (%s) while waiting for the "
                                  "response to %s" % (self.label, c, what))
        return self.responses.pop(msg_id)

    def wait_pushes(self, predicate, timeout):
        """Pump until predicate(all changes so far) is true; returns it (or False)."""
        end = time.monotonic() + timeout
        while True:
            changes = [c for _, cs in self.pushes for c in cs]
            if predicate(changes):
                return True
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.pump(remaining)
            except Closed as c:
                raise CheckFailed("%s: connection closed (%s) while waiting for PUSH"
                                  % (self.label, c))

    def drain(self, duration):
        """Pump for `duration` seconds; returns the messages seen."""
        seen, end = [], time.monotonic() + duration
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return seen
            try:
                m = self.pump(remaining)
            except Closed as c:
                raise CheckFailed("%s: connection closed (%s)" % (self.label, c))
            if m is not None:
                seen.append(m)

    def keepalive(self, timeout, inactivity=30000, interval=3600000):
        """Send a Keepalive request, require NOERROR; returns granted values."""
        kid, raw = self.keepalive_bytes(inactivity, interval)
        try:
            self.send(raw)
        except Closed as c:
            raise CheckFailed("%s: connection closed (%s) when sending Keepalive"
                              % (self.label, c))
        r = self.wait_response(kid, timeout, "Keepalive")
        require(r.rcode == NOERROR, "%s: Keepalive answered %s (RFC 8490 s5.2: MUST return "
                "NOERROR)" % (self.label, rcode_name(r.rcode)))
        require(r.tlvs and r.tlvs[0].type == TLV_KEEPALIVE,
                "%s: Keepalive response without Keepalive TLV" % self.label)
        return parse_keepalive(r.tlvs[0])

    def subscribe(self, name, rtype, timeout, rclass=CLASS_IN, msg_id=None, expect=NOERROR):
        sid = self.request(subscribe_tlv(name, rtype, rclass), msg_id=msg_id)
        r = self.wait_response(sid, timeout, "SUBSCRIBE %s %s" % (name, type_name(rtype)))
        if expect is not None:
            require(r.rcode == expect, "%s: SUBSCRIBE %s %s answered %s, expected %s"
                    % (self.label, name, type_name(rtype), rcode_name(r.rcode),
                       rcode_name(expect)))
        return sid, r

    def expect_abort(self, timeout, probe_id, offence_ids=()):
        """After a fatal offence: no answers, connection must go away."""
        end = time.monotonic() + timeout
        while True:
            for oid in offence_ids:
                if oid in self.responses:
                    r = self.responses[oid]
                    raise CheckFailed("server answered the offending message (%s) instead of "
                                      "forcibly aborting" % r.describe())
            if probe_id in self.responses:
                raise CheckFailed("server still answered a Keepalive sent right after the "
                                  "offending message: the connection was not aborted")
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise CheckFailed("connection still open %.1fs after the offence (RFC: MUST "
                                  "forcibly abort)" % timeout)
            try:
                m = self.pump(remaining)
            except Closed as c:
                return c.kind
            if m is not None and m.is_dso and m.qr and m.id == 0:
                raise CheckFailed("server sent a response with MESSAGE ID 0: %s" % m.describe())


# ---------------------------------------------------------------------------
# Conformance framework
# ---------------------------------------------------------------------------

CHECKS = []


def check(cid, section, description):
    def deco(fn):
        CHECKS.append((cid, section, description, fn))
        return fn
    return deco


class Ctx:
    def __init__(self, args):
        self.args = args
        self.zone = fqdn(args.zone)
        self.name = fqdn(args.name)
        self.tls = make_tls_context(args)
        self.server_name = args.tls_name or args.host
        self.start = time.monotonic()
        self.sessions = []
        self.uniq = 0

    @property
    def t(self):
        """Per-wait timeout, bounded by the global budget."""
        left = TOTAL_BUDGET - (time.monotonic() - self.start)
        return max(0.2, min(self.args.timeout, left))

    def budget_left(self):
        return TOTAL_BUDGET - (time.monotonic() - self.start)

    def session(self, label="session"):
        try:
            conn = Conn(self.args.host, self.args.port, self.tls, self.server_name, self.t)
        except (OSError, ssl.SSLError) as e:
            raise CheckFailed("%s: TLS connection failed: %s: %s" % (label, type(e).__name__, e))
        s = Session(conn, label)
        self.sessions.append(s)
        return s

    def established(self, label="session"):
        s = self.session(label)
        s.keepalive(self.t)
        return s

    def unique_label(self):
        self.uniq += 1
        return "dso-conformance-%d-%d" % (int(time.time() * 1000) % 10**9, self.uniq)

    def finish(self):
        violations = []
        for s in self.sessions:
            violations.extend(s.violations)
            s.conn.close_gracefully()
        self.sessions = []
        return violations


def run_conformance(args):
    ctx = Ctx(args)
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - {c[0] for c in CHECKS}
        if unknown:
            raise SystemExit("unknown check id(s): %s" % ", ".join(sorted(unknown)))
    all_ok = True
    for cid, section, desc, fn in CHECKS:
        if only and cid not in only:
            continue
        if ctx.budget_left() < 1.0:
            passed, detail = False, "not run: total time budget (%.0fs) exhausted" % TOTAL_BUDGET
        else:
            try:
                detail = fn(ctx) or ""
                passed = True
            except CheckFailed as e:
                passed, detail = False, str(e)
            except Closed as e:
                passed, detail = False, "connection closed unexpectedly (%s)" % e
            except ParseError as e:
                passed, detail = False, "malformed data from server: %s" % e
            except (OSError, ssl.SSLError) as e:
                passed, detail = False, "%s: %s" % (type(e).__name__, e)
            except Exception as e:   # e.g. struct.error on truncated RDATA from the server
                passed, detail = False, "unexpected data or client error: %s: %s" % (
                    type(e).__name__, e)
            violations = ctx.finish()
            if violations:
                passed = False
                detail = "; ".join(violations) + ((" | " + detail) if detail else "")
        all_ok = all_ok and passed
        if args.json:
            print(json.dumps({"id": cid, "section": section, "description": desc,
                              "passed": passed, "detail": detail}), flush=True)
        else:
            print("%s %s %s %s%s" % ("PASS" if passed else "FAIL", cid, section, desc,
                                     (" -- " + detail) if detail else ""), flush=True)
    return 0 if all_ok else 1


def dns_answer(r, qname, qtype):
    return [rr for rr in r.answers if rr.type == qtype and name_eq(rr.name, qname)]


def require_authoritative(r, what):
    require(r.qr == 1 and r.opcode == OPCODE_QUERY, "%s: not a QUERY response" % what)
    require(r.parse_error is None, "%s: malformed response: %s" % (what, r.parse_error))
    require(r.rcode == NOERROR, "%s answered %s" % (what, rcode_name(r.rcode)))
    require(r.aa == 1, "%s: AA bit not set (RFC 8765 s3: MUST respond authoritatively)" % what)


# ---------------------------------------------------------------------------
# Checks: plain DNS
# ---------------------------------------------------------------------------

@check("dns-soa", "RFC8765:3,6.1", "SOA query for the zone apex over the TLS connection")
def chk_dns_soa(ctx):
    s = ctx.session()
    qid, raw = s.query_bytes(ctx.zone, T_SOA)
    s.send(raw)
    r = s.wait_response(qid, ctx.t, "SOA query")
    require_authoritative(r, "SOA %s" % ctx.zone)
    require(len(r.questions) == 1 and name_eq(r.questions[0][0], ctx.zone)
            and r.questions[0][1] == T_SOA, "question section not echoed")
    soas = dns_answer(r, ctx.zone, T_SOA)
    require(len(soas) == 1, "expected one SOA for %s in the answer section, got %r"
            % (ctx.zone, r.answers))
    mname, off = decode_name(r.raw, soas[0].rdoff, soas[0].rdoff + soas[0].rdlen)
    rname, off = decode_name(r.raw, off, soas[0].rdoff + soas[0].rdlen)
    serial = struct.unpack_from("!I", r.raw, off)[0]
    return "SOA mname=%s serial=%d" % (mname, serial)


@check("dns-srv", "RFC8765:6.1", "_dns-push-tls._tcp.<zone> SRV exists and is answered")
def chk_dns_srv(ctx):
    s = ctx.session()
    owner = "_dns-push-tls._tcp." + ctx.zone
    qid, raw = s.query_bytes(owner, T_SRV)
    s.send(raw)
    r = s.wait_response(qid, ctx.t, "SRV query")
    require_authoritative(r, "SRV %s" % owner)
    srvs = dns_answer(r, owner, T_SRV)
    require(srvs, "no SRV record for %s (RFC 8765 s6.1 step 6: MUST exist)" % owner)
    out = []
    for rr in srvs:
        prio, weight, port = struct.unpack_from("!HHH", r.raw, rr.rdoff)
        target, _ = decode_name(r.raw, rr.rdoff + 6, rr.rdoff + rr.rdlen)
        out.append("%d %d %d %s" % (prio, weight, port, target))
    return "SRV " + "; ".join(out)


@check("dns-in-session", "RFC8765:3+RFC8490:7.1.2",
       "standard queries answered on an established DSO session, no edns-tcp-keepalive")
def chk_dns_in_session(ctx):
    s = ctx.established()
    qid, raw1 = s.query_bytes(ctx.zone, T_SOA, edns_options=[])
    tid, raw2 = s.query_bytes(ctx.name, T_TXT, edns_options=[])
    s.send(raw1, raw2)
    r = s.wait_response(qid, ctx.t, "SOA query")
    require_authoritative(r, "SOA %s" % ctx.zone)
    require(dns_answer(r, ctx.zone, T_SOA), "no SOA in the answer")
    r2 = s.wait_response(tid, ctx.t, "TXT query")
    require_authoritative(r2, "TXT %s" % ctx.name)
    for resp in (r, r2):
        opts = resp.edns_options() or []
        require(all(code != EDNS_TCP_KEEPALIVE for code, _ in opts),
                "response carries edns-tcp-keepalive on a DSO session (RFC 8490 s7.1.2)")
    return "TXT %s: %d record(s)" % (ctx.name, len(dns_answer(r2, ctx.name, T_TXT)))


# ---------------------------------------------------------------------------
# Checks: session establishment, Keepalive, generic DSO behaviour
# ---------------------------------------------------------------------------

def check_dso_response_header(r, msg_id, what):
    require(r.is_dso, "%s: response OPCODE %d, expected 6 (DSO)" % (what, r.opcode))
    require(r.qr == 1, "%s: QR bit not set" % what)
    require(r.id == msg_id, "%s: MESSAGE ID 0x%04x != 0x%04x" % (what, r.id, msg_id))
    require((r.qdcount, r.ancount, r.nscount, r.arcount) == (0, 0, 0, 0),
            "%s: nonzero count fields" % what)


@check("keepalive-first", "RFC8490:5.1,5.4.1,7.1,6.5.2",
       "Keepalive request as first message establishes the session")
def chk_keepalive_first(ctx):
    s = ctx.session()
    kid = s.request(keepalive_tlv(30000, 3600000))
    r = s.wait_response(kid, ctx.t, "Keepalive")
    check_dso_response_header(r, kid, "Keepalive response")
    require(r.rcode == NOERROR, "Keepalive answered %s (RFC 8490 s5.1.1/5.2: a DSO server "
            "MUST return NOERROR, never DSOTYPENI)" % rcode_name(r.rcode))
    require([t.type for t in r.tlvs].count(TLV_KEEPALIVE) == 1 and r.tlvs[0].type == TLV_KEEPALIVE,
            "response must carry exactly one Keepalive TLV as Response Primary TLV, got %r"
            % r.tlvs)
    require(len(r.tlvs[0].data) == 8, "Keepalive TLV DSO-LENGTH %d != 8" % len(r.tlvs[0].data))
    inact, interval = parse_keepalive(r.tlvs[0])
    require(interval >= MIN_KEEPALIVE_INTERVAL_MS,
            "keepalive interval %d ms < 10000 ms (RFC 8490 s6.5.2)" % interval)
    return "granted inactivity=%d ms keepalive=%d ms (asked 30000/3600000)" % (inact, interval)


@check("keepalive-values", "RFC8490:6.5.2,7.1",
       "server-chosen Keepalive values; interval never below 10 s")
def chk_keepalive_values(ctx):
    s = ctx.session()
    inact1, int1 = s.keepalive(ctx.t, 100, 100)
    require(int1 >= MIN_KEEPALIVE_INTERVAL_MS,
            "asked 100 ms, granted keepalive interval %d ms < 10 s (RFC 8490 s6.5.2)" % int1)
    inact2, int2 = s.keepalive(ctx.t, 0xFFFFFFFF, 0xFFFFFFFF)
    require(int2 >= MIN_KEEPALIVE_INTERVAL_MS, "granted interval %d ms < 10 s" % int2)
    return ("asked 100/100 ms -> %d/%d ms; asked infinite -> %d/%d ms"
            % (inact1, int1, inact2, int2))


@check("unknown-additional-tlv", "RFC8490:5.4.5",
       "unrecognised Additional TLV is silently ignored")
def chk_unknown_additional(ctx):
    s = ctx.session()
    kid = s.request(keepalive_tlv(30000, 3600000), tlv(TLV_UNASSIGNED, b"ignore me"))
    r = s.wait_response(kid, ctx.t, "Keepalive with unknown additional TLV")
    check_dso_response_header(r, kid, "Keepalive response")
    require(r.rcode == NOERROR, "answered %s; unrecognised Additional TLVs MUST be silently "
            "ignored" % rcode_name(r.rcode))
    require(r.tlvs and r.tlvs[0].type == TLV_KEEPALIVE, "no Keepalive TLV in response")
    s.keepalive(ctx.t)
    return ""


@check("padding", "RFC8490:7.3", "Encryption Padding in a request -> padded response")
def chk_padding(ctx):
    s = ctx.session()
    body = build_dso(0, keepalive_tlv(30000, 3600000))
    pad = (-(len(body) + 4)) % 128               # RFC 8467: queries to 128-octet blocks
    kid = s.request(keepalive_tlv(30000, 3600000), padding_tlv(pad))
    r = s.wait_response(kid, ctx.t, "padded Keepalive")
    check_dso_response_header(r, kid, "padded Keepalive response")
    require(r.rcode == NOERROR, "padded Keepalive answered %s" % rcode_name(r.rcode))
    types = [t.type for t in r.tlvs]
    require(types and types[0] == TLV_KEEPALIVE, "Keepalive TLV not first: %r" % r.tlvs)
    require(TLV_PADDING in types[1:], "Keepalive response lacks an Encryption Padding TLV "
            "(RFC 8490 s7.3: the DSO response MUST also include one)")
    sid = s.request(subscribe_tlv(ctx.name, T_TXT), padding_tlv(64))
    r2 = s.wait_response(sid, ctx.t, "padded SUBSCRIBE")
    require(r2.rcode == NOERROR, "padded SUBSCRIBE answered %s" % rcode_name(r2.rcode))
    require(TLV_PADDING in [t.type for t in r2.tlvs],
            "SUBSCRIBE response lacks an Encryption Padding TLV (RFC 8490 s7.3)")
    return "response sizes %d and %d bytes (RFC 8467 suggests multiples of 468)" % (
        len(r.raw), len(r2.raw))


@check("dsotypeni", "RFC8490:5.4.5,5.5.3",
       "unknown Primary TLV in a request -> DSOTYPENI, session stays usable")
def chk_dsotypeni(ctx):
    s = ctx.established()
    uid = s.request(tlv(TLV_UNASSIGNED, b"unknown primary"))
    r = s.wait_response(uid, ctx.t, "request with unknown primary TLV")
    check_dso_response_header(r, uid, "DSOTYPENI response")
    require(r.rcode == DSOTYPENI, "answered %s, expected DSOTYPENI (11)" % rcode_name(r.rcode))
    require(TLV_UNASSIGNED not in [t.type for t in r.tlvs],
            "error response contains a copy of the unrecognised Primary TLV")
    s.keepalive(ctx.t)
    return ""


@check("dsotypeni-first", "RFC8490:5.1.1",
       "unknown Primary TLV as first DSO message -> DSOTYPENI; Keepalive then establishes")
def chk_dsotypeni_first(ctx):
    s = ctx.session()
    uid = s.request(tlv(TLV_UNASSIGNED, b"unknown primary"))
    r = s.wait_response(uid, ctx.t, "request with unknown primary TLV")
    check_dso_response_header(r, uid, "DSOTYPENI response")
    require(r.rcode == DSOTYPENI, "answered %s, expected DSOTYPENI (11)" % rcode_name(r.rcode))
    require(not s.established, "internal: session marked established")
    s.keepalive(ctx.t)
    return ""


@check("formerr-nonzero-counts", "RFC8490:5.4",
       "DSO request with a nonzero QD/AN/NS/ARCOUNT -> FORMERR")
def chk_formerr_counts(ctx):
    notes = []
    for i, field in enumerate(("QDCOUNT", "ANCOUNT", "NSCOUNT", "ARCOUNT")):
        s = ctx.established(field)
        counts = [0, 0, 0, 0]
        counts[i] = 1
        mid = s.alloc_id()
        s.pending[mid] = ("dso", TLV_KEEPALIVE)
        raw = build_dso(mid, keepalive_tlv(30000, 3600000), counts=tuple(counts))
        try:
            s.send(raw)
            r = s.wait_response(mid, ctx.t, "Keepalive with %s=1" % field)
        except CheckFailed as e:
            raise CheckFailed("%s=1: %s (RFC 8490 s5.4: a FORMERR MUST be returned)" % (field, e))
        require(r.qr == 1 and r.id == mid and r.rcode == FORMERR,
                "%s=1: answered %s, expected FORMERR (RFC 8490 s5.4)"
                % (field, rcode_name(r.rcode)))
        # Whether the session survives is the server's choice (RFC 8490 s5.5.3 SHOULD).
        try:
            s.keepalive(min(ctx.t, 1.5))
            notes.append("%s: FORMERR, session kept" % field)
        except CheckFailed:
            notes.append("%s: FORMERR, session then closed" % field)
    return "; ".join(notes)


# ---------------------------------------------------------------------------
# Checks: DNS Push
# ---------------------------------------------------------------------------

def push_changes_for(session, name, rtype):
    return [c for _, cs in session.pushes for c in cs
            if name_eq(c.name, name) and (rtype == T_ANY or c.type == rtype)]


def validate_initial_push(session, sub):
    """All changes of the initial answer must be adds matching subscription `sub`."""
    for msg, changes in session.pushes:
        require(msg.id == 0 and msg.qr == 0, "PUSH with MESSAGE ID %d / QR %d (RFC 8765 "
                "s6.3.1: unidirectional, MESSAGE ID MUST be zero)" % (msg.id, msg.qr))
        types = [t.type for t in msg.tlvs]
        require(types[0] == TLV_PUSH, "PUSH TLV is not the primary TLV")
        extra = [t for t in msg.tlvs[1:] if t.type != TLV_PADDING]
        require(not extra, "PUSH message carries TLVs other than PUSH: %r" % extra)
        for c in changes:
            require(subscription_matches(sub, c),
                    "initial PUSH contains a change matching no subscription: %r" % c)


@check("subscribe-first", "RFC8765:6,6.2.2,6.3,6.3.1",
       "SUBSCRIBE as first message -> NOERROR, then initial PUSH of the TXT RRset")
def chk_subscribe_first(ctx):
    s = ctx.session()
    sid = s.request(subscribe_tlv(ctx.name, T_TXT))
    r = s.wait_response(sid, ctx.t, "SUBSCRIBE")
    require(not s.pushes, "PUSH arrived before the SUBSCRIBE response (RFC 8490 s5.1)")
    check_dso_response_header(r, sid, "SUBSCRIBE response")
    require(r.rcode == NOERROR, "SUBSCRIBE %s TXT answered %s" % (ctx.name, rcode_name(r.rcode)))
    require(TLV_SUBSCRIBE not in [t.type for t in r.tlvs],
            "SUBSCRIBE response includes a SUBSCRIBE TLV (RFC 8765 s6.2.2)")
    got = s.wait_pushes(lambda ch: any(name_eq(c.name, ctx.name) and c.type == T_TXT
                                       for c in ch), ctx.t)
    require(got, "no initial PUSH with the TXT records of %s within %.1fs (RFC 8765 s6.3)"
            % (ctx.name, ctx.t))
    validate_initial_push(s, (ctx.name, T_TXT, CLASS_IN))
    adds = [c for c in push_changes_for(s, ctx.name, T_TXT) if change_op(c) == "add"]
    require(adds, "initial PUSH contains no add for %s TXT" % ctx.name)
    return "initial answer: " + "; ".join(rdata_text(c.type, c.rdata) for c in adds)


@check("subscribe-pipelined", "RFC8490:6.1+RFC8765:6",
       "two SUBSCRIBEs pipelined as first messages are both answered and pushed")
def chk_subscribe_pipelined(ctx):
    s = ctx.session()
    a, raw_a = s.dso_request_bytes(subscribe_tlv(ctx.name, T_TXT))
    b, raw_b = s.dso_request_bytes(subscribe_tlv(ctx.zone, T_SOA))
    s.send(raw_a, raw_b)
    ra = s.wait_response(a, ctx.t, "SUBSCRIBE TXT")
    rb = s.wait_response(b, ctx.t, "SUBSCRIBE SOA")
    require(ra.rcode == NOERROR and rb.rcode == NOERROR,
            "answered %s / %s" % (rcode_name(ra.rcode), rcode_name(rb.rcode)))
    got = s.wait_pushes(lambda ch: any(name_eq(c.name, ctx.name) and c.type == T_TXT for c in ch)
                        and any(name_eq(c.name, ctx.zone) and c.type == T_SOA for c in ch), ctx.t)
    require(got, "initial PUSH for both subscriptions not seen within %.1fs (have %r)"
            % (ctx.t, [c for _, cs in s.pushes for c in cs]))
    return "%d PUSH message(s)" % len(s.pushes)


@check("subscribe-absent-name", "RFC8765:6.2.1",
       "SUBSCRIBE for a not-yet-existing name in the zone is accepted")
def chk_subscribe_absent(ctx):
    s = ctx.established()
    name = ctx.unique_label() + "." + ctx.zone
    sid = s.request(subscribe_tlv(name, T_TXT))
    r = s.wait_response(sid, ctx.t, "SUBSCRIBE absent name")
    require(r.rcode != NXDOMAIN, "answered NXDOMAIN (RFC 8765 s6.2.1: MUST NOT return NXDOMAIN)")
    require(r.rcode == NOERROR, "answered %s (RFC 8765 s6.2.1: the server MUST accept these "
            "requests)" % rcode_name(r.rcode))
    s.drain(0.3)
    adds = [c for c in push_changes_for(s, name, T_ANY) if change_op(c) == "add"]
    require(not adds, "PUSH adds records for a name that does not exist: %r" % adds)
    return name


@check("subscribe-outside-zone", "RFC8765:6.2.2",
       "SUBSCRIBE for a name outside the zone -> NOTAUTH")
def chk_subscribe_outside(ctx):
    s = ctx.established()
    name = ctx.unique_label() + ".dso-conformance.invalid."
    sid = s.request(subscribe_tlv(name, T_TXT))
    r = s.wait_response(sid, ctx.t, "SUBSCRIBE outside zone")
    check_dso_response_header(r, sid, "SUBSCRIBE response")
    require(r.rcode != NOERROR, "accepted a subscription for %s, outside %s" % (name, ctx.zone))
    require(r.rcode != NXDOMAIN, "NXDOMAIN is not a valid SUBSCRIBE RCODE (RFC 8765 s6.2.2)")
    require(r.rcode == NOTAUTH, "answered %s; RFC 8765 s6.2.2 Table 1: NOTAUTH (9) = 'Server is "
            "not authoritative for the requested name'" % rcode_name(r.rcode))
    rd = [struct.unpack("!I", t.data)[0] for t in r.tlvs if t.type == TLV_RETRY_DELAY
          and len(t.data) == 4]
    return "NOTAUTH, Retry Delay %s" % (("%d ms" % rd[0]) if rd else "absent (SHOULD be present)")


@check("subscribe-type-any", "RFC8765:6.2.1",
       "SUBSCRIBE TYPE ANY is accepted and the initial PUSH includes the TXT RRs")
def chk_subscribe_any(ctx):
    s = ctx.established()
    sid = s.request(subscribe_tlv(ctx.name, T_ANY))
    r = s.wait_response(sid, ctx.t, "SUBSCRIBE ANY")
    require(r.rcode == NOERROR, "answered %s" % rcode_name(r.rcode))
    got = s.wait_pushes(lambda ch: any(name_eq(c.name, ctx.name) and c.type == T_TXT
                                       and change_op(c) == "add" for c in ch), ctx.t)
    require(got, "no TXT add in the initial PUSH for %s ANY" % ctx.name)
    validate_initial_push(s, (ctx.name, T_ANY, CLASS_IN))
    types = sorted({type_name(c.type) for c in push_changes_for(s, ctx.name, T_ANY)})
    return "types pushed: " + ",".join(types)


@check("unsubscribe", "RFC8765:6.4.1",
       "UNSUBSCRIBE by MESSAGE ID: no response, session usable, subscription gone")
def chk_unsubscribe(ctx):
    s = ctx.established()
    sid, _ = s.subscribe(ctx.name, T_TXT, ctx.t)
    s.wait_pushes(lambda ch: bool(ch), ctx.t)
    kid, kraw = s.keepalive_bytes()
    s.send(build_dso(0, unsubscribe_tlv(sid)), kraw)
    del s.subs[sid]
    r = s.wait_response(kid, ctx.t, "Keepalive after UNSUBSCRIBE")
    require(r.rcode == NOERROR, "Keepalive after UNSUBSCRIBE answered %s" % rcode_name(r.rcode))
    s.drain(0.3)
    # No subscription with this NAME/TYPE/CLASS is active any more, so a new
    # SUBSCRIBE is not a duplicate (which would be fatal, RFC 8765 s6.2.1).
    before = len(s.pushes)
    sid2, _ = s.subscribe(ctx.name, T_TXT, ctx.t)
    got = s.wait_pushes(lambda ch: len(s.pushes) > before, ctx.t)
    require(got, "re-subscribing after UNSUBSCRIBE gave no new initial PUSH (RFC 8765 s6.3)")
    return ""


@check("unsubscribe-unknown-id", "RFC8765:6.4.1",
       "UNSUBSCRIBE matching no subscription is silently ignored")
def chk_unsubscribe_unknown(ctx):
    s = ctx.established()
    bogus = s.alloc_id()
    kid, kraw = s.keepalive_bytes()
    s.send(build_dso(0, unsubscribe_tlv(bogus)), kraw)
    r = s.wait_response(kid, ctx.t, "Keepalive after UNSUBSCRIBE of unknown ID")
    require(r.rcode == NOERROR, "Keepalive answered %s" % rcode_name(r.rcode))
    s.drain(0.2)
    return ""


@check("unsubscribe-legacy", "interop(RFC8765:6.4.1)",
       "pre-RFC UNSUBSCRIBE carrying NAME/TYPE/CLASS: session survives")
def chk_unsubscribe_legacy(ctx):
    s = ctx.established()
    sid, _ = s.subscribe(ctx.name, T_TXT, ctx.t)
    s.wait_pushes(lambda ch: bool(ch), ctx.t)
    kid, kraw = s.keepalive_bytes()
    s.send(build_dso(0, legacy_unsubscribe_tlv(ctx.name, T_TXT)), kraw)
    r = s.wait_response(kid, ctx.t, "Keepalive after legacy UNSUBSCRIBE")
    require(r.rcode == NOERROR, "Keepalive answered %s" % rcode_name(r.rcode))
    s.drain(0.2)
    # Informational: was the legacy form honoured?  Re-subscribing is fine if it
    # was, and a fatal duplicate if it was not -- probe on this session only.
    keep = list(s.violations)
    nid, nraw = s.dso_request_bytes(subscribe_tlv(ctx.name, T_TXT))
    del s.subs[sid]
    try:
        s.send(nraw)
        r2 = s.wait_response(nid, min(ctx.t, 1.5), "re-SUBSCRIBE")
        how = "honoured (re-SUBSCRIBE answered %s)" % rcode_name(r2.rcode)
    except (CheckFailed, Closed):
        how = "ignored (re-SUBSCRIBE treated as duplicate: connection closed)"
    s.violations = keep
    return "legacy form " + how


@check("reconfirm", "RFC8765:6.5.1+RFC8490:5.4.3",
       "RECONFIRM is unidirectional: no response, session usable")
def chk_reconfirm(ctx):
    s = ctx.established()
    qid, raw = s.query_bytes(ctx.name, T_TXT)
    s.send(raw)
    r = s.wait_response(qid, ctx.t, "TXT query")
    txts = dns_answer(r, ctx.name, T_TXT)
    rdata = txts[0].rdata if txts else txt_rdata(["dso-conformance"])
    kid, kraw = s.keepalive_bytes()
    s.send(build_dso(0, reconfirm_tlv(ctx.name, T_TXT, CLASS_IN, rdata)), kraw)
    r2 = s.wait_response(kid, ctx.t, "Keepalive after RECONFIRM")
    require(r2.rcode == NOERROR, "Keepalive answered %s" % rcode_name(r2.rcode))
    s.drain(0.3)
    return ""


# ---------------------------------------------------------------------------
# Checks: fatal errors (offending session must be aborted, a sibling survives)
# ---------------------------------------------------------------------------

def fatal_case(ctx, offence, setup=None, sibling_setup=None):
    """offence(session) -> (list of raw messages, list of offending request IDs)."""
    a = ctx.established("offender")
    b = ctx.established("sibling")
    if sibling_setup:
        sibling_setup(b)
    if setup:
        setup(a)
    raws, offence_ids = offence(a)
    probe_id, probe = a.keepalive_bytes()
    try:
        a.send(*raws, probe)
    except Closed as c:
        kind = c.kind
    else:
        kind = a.expect_abort(ctx.t, probe_id, offence_ids)
    try:
        b.keepalive(ctx.t)
    except CheckFailed as e:
        raise CheckFailed("offending session aborted (%s), but the other session broke too: %s"
                          % (kind, e))
    return "offender: connection %s; sibling session still answered" % kind


@check("fatal-unidirectional-unknown-tlv", "RFC8490:5.4.5,5.4.3",
       "unidirectional message with unknown Primary TLV -> abort, no DSOTYPENI")
def chk_fatal_uni_unknown(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0, tlv(TLV_UNASSIGNED, b"x"))], []))


@check("fatal-response-unknown-id", "RFC8490:5.5.2",
       "DSO response with a MESSAGE ID the server never used -> abort")
def chk_fatal_resp_unknown(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0x6B6B, keepalive_tlv(15000, 15000), qr=1)], []))


@check("fatal-response-id-zero", "RFC8490:5.4.1,8.1",
       "DSO message with QR=1 and MESSAGE ID 0 -> abort")
def chk_fatal_resp_zero(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0, keepalive_tlv(15000, 15000), qr=1)], []))


@check("fatal-client-subscribe-response", "RFC8765:6.2",
       "client sends a SUBSCRIBE response -> abort")
def chk_fatal_sub_response(ctx):
    return fatal_case(ctx, lambda a: (
        [build_dso(0x5A5A, subscribe_tlv(ctx.name, T_TXT), qr=1)], []))


@check("fatal-client-push", "RFC8765:6.3",
       "client sends a PUSH message -> abort")
def chk_fatal_push(ctx):
    change = (ctx.name, T_TXT, CLASS_IN, 60, txt_rdata(["from-client"]))
    return fatal_case(ctx, lambda a: ([build_dso(0, push_tlv([change]))], []),
                      setup=lambda a: a.subscribe(ctx.name, T_TXT, ctx.t))


@check("fatal-retry-delay-unidirectional", "RFC8490:7.2.1,6.6.1",
       "client sends Retry Delay as Primary TLV (unidirectional) -> abort")
def chk_fatal_retry_uni(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0, retry_delay_tlv(5000))], []))


@check("fatal-retry-delay-request", "RFC8490:7.2.1",
       "client sends Retry Delay as Primary TLV of a request -> abort")
def chk_fatal_retry_req(ctx):
    def offence(a):
        mid, raw = a.dso_request_bytes(retry_delay_tlv(5000))
        return [raw], [mid]
    return fatal_case(ctx, offence)


@check("fatal-keepalive-id-zero", "RFC8490:7.1,5.4.1",
       "Keepalive with MESSAGE ID 0 from the client -> abort")
def chk_fatal_keepalive_zero(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0, keepalive_tlv(15000, 15000))], []))


@check("fatal-subscribe-id-zero", "RFC8490:5.4.1",
       "SUBSCRIBE with MESSAGE ID 0 -> abort")
def chk_fatal_subscribe_zero(ctx):
    return fatal_case(ctx, lambda a: ([build_dso(0, subscribe_tlv(ctx.name, T_TXT))], []))


@check("fatal-unsubscribe-nonzero-id", "RFC8490:5.4.1+RFC8765:6.4.1",
       "UNSUBSCRIBE sent as a request (nonzero MESSAGE ID) -> abort")
def chk_fatal_unsub_nonzero(ctx):
    state = {}

    def setup(a):
        state["sid"], _ = a.subscribe(ctx.name, T_TXT, ctx.t)

    def offence(a):
        mid = a.alloc_id()
        return [build_dso(mid, unsubscribe_tlv(state["sid"]))], [mid]
    return fatal_case(ctx, offence, setup=setup)


@check("fatal-duplicate-subscribe", "RFC8765:6.2.1",
       "duplicate SUBSCRIBE (NAME in other case) on the same session -> abort")
def chk_fatal_duplicate(ctx):
    def offence(a):
        mid, raw = a.dso_request_bytes(subscribe_tlv(ctx.name.upper(), T_TXT))
        return [raw], [mid]
    # The sibling holds the same subscription: uniqueness is per session.
    return fatal_case(ctx, offence,
                      setup=lambda a: a.subscribe(ctx.name, T_TXT, ctx.t),
                      sibling_setup=lambda b: b.subscribe(ctx.name, T_TXT, ctx.t))


@check("fatal-edns-tcp-keepalive", "RFC8490:7.1.2,5.4.6",
       "query with edns-tcp-keepalive on a DSO session -> abort")
def chk_fatal_edns_keepalive(ctx):
    def offence(a):
        qid, raw = a.query_bytes(ctx.zone, T_SOA, edns_options=[(EDNS_TCP_KEEPALIVE, b"")])
        return [raw], [qid]
    return fatal_case(ctx, offence)


# ---------------------------------------------------------------------------
# Checks: malformed input where the RFC allows an error RCODE or an abort
# ---------------------------------------------------------------------------

def error_or_abort(ctx, a, b, raws, offence_id, what):
    probe_id, probe = a.keepalive_bytes()
    try:
        a.send(*raws, probe)
    except Closed as c:
        return "connection %s" % c.kind
    end = time.monotonic() + ctx.t
    while offence_id not in a.responses:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise CheckFailed("%s: neither an error response nor an abort within %.1fs"
                              % (what, ctx.t))
        try:
            a.pump(remaining)
        except Closed as c:
            require(probe_id not in a.responses, "Keepalive after the offence was answered "
                    "before the connection closed")
            b.keepalive(ctx.t)
            return "connection %s; sibling session still answered" % c.kind
    r = a.responses.pop(offence_id)
    require(r.rcode != NOERROR, "%s was accepted with NOERROR" % what)
    return "answered %s" % rcode_name(r.rcode)


@check("tlv-overrun", "RFC8490:5.4.4",
       "TLV whose DSO-LENGTH runs past the message end -> FORMERR or abort")
def chk_tlv_overrun(ctx):
    a = ctx.established("offender")
    b = ctx.established("sibling")
    mid = a.alloc_id()
    a.pending[mid] = ("dso", TLV_KEEPALIVE)
    raw = build_dso(mid) + struct.pack("!HH", TLV_KEEPALIVE, 16) + struct.pack("!II", 15000, 15000)
    detail = error_or_abort(ctx, a, b, [raw], mid, "Keepalive with overrunning TLV")
    a.violations = [v for v in a.violations if "Keepalive response" not in v]
    return detail


@check("subscribe-id-reuse", "RFC8490:5.4.1,5.5.2+RFC8765:6.2.1",
       "SUBSCRIBE reusing the MESSAGE ID of an active subscription -> abort or error")
def chk_subscribe_id_reuse(ctx):
    a = ctx.established("offender")
    b = ctx.established("sibling")
    sid, _ = b.subscribe(ctx.name, T_TXT, ctx.t)
    # MESSAGE ID namespaces are per session: the same ID on `a` is legitimate.
    a.subscribe(ctx.name, T_TXT, ctx.t, msg_id=sid)
    a.pending[sid] = ("dso", TLV_SUBSCRIBE)
    raw = build_dso(sid, subscribe_tlv(ctx.zone, T_SOA))
    keep = list(a.violations)
    detail = error_or_abort(ctx, a, b, [raw], sid, "SUBSCRIBE with an in-use MESSAGE ID")
    a.violations = keep   # a cancellation of `sid` by the server is not an error here
    return detail


# ---------------------------------------------------------------------------
# watch sub-command
# ---------------------------------------------------------------------------

def emit(obj):
    print(json.dumps(obj), flush=True)


def change_json(rr, op):
    if rr.ttl == TTL_REMOVE_COLLECTIVE:
        rdata = None
    elif rr.type == T_TXT:
        try:
            rdata = [s.decode("utf-8", "backslashreplace") for s in parse_txt(rr.rdata)]
        except ParseError:
            rdata = rr.rdata.hex()
    else:
        try:
            rdata = rr.canonical_rdata().hex()
        except ParseError:
            rdata = rr.rdata.hex()
    return {"op": op, "name": rr.name, "type": type_name(rr.type),
            "class": class_name(rr.rclass), "ttl": rr.ttl, "rdata": rdata}


def tlv_json(msg, t, note):
    return {"op": "tlv", "note": note, "tlv": TLV_NAMES.get(t.type, "0x%04x" % t.type),
            "type": t.type, "length": len(t.data), "data": t.data.hex(),
            "message_id": msg.id, "qr": msg.qr, "rcode": rcode_name(msg.rcode)}


class WatchEnded(Exception):
    def __init__(self, reason, code, graceful=True):
        super().__init__(reason)
        self.reason, self.code, self.graceful = reason, code, graceful


def fatal(reason):
    """A condition the RFCs make fatal for the client: forcibly abort."""
    return WatchEnded(reason, 1, graceful=False)


class Watcher:
    """Minimal DNS Push client: Keepalive + one SUBSCRIBE, prints changes."""

    WANT = (15000, 3600000)   # RFC 8490 s6.5.2: 60 min keepalive recommended

    def __init__(self, conn, name, rtype, seconds):
        self.conn = conn
        self.seconds = seconds
        self.sub = (name, rtype, CLASS_IN)
        self.interval = 15.0          # RFC 8490 s6.2 default until told otherwise
        self.sub_id = 2
        self.outstanding = {1: TLV_KEEPALIVE, self.sub_id: TLV_SUBSCRIBE}
        self.next_id = 3
        self.subscribed = False

    def start(self):
        self.conn.send(build_dso(1, keepalive_tlv(*self.WANT)),
                       build_dso(self.sub_id, subscribe_tlv(self.sub[0], self.sub[1])))

    def keepalive_due_in(self):
        """Seconds until a Keepalive must be sent (RFC 8490 s6.5.1); inf if one is pending."""
        if TLV_KEEPALIVE in self.outstanding.values():
            return float("inf")
        return 0.8 * self.interval - (time.monotonic() - self.conn.last_io)

    def send_keepalive(self):
        self.outstanding[self.next_id] = TLV_KEEPALIVE
        self.conn.send(build_dso(self.next_id, keepalive_tlv(*self.WANT)))
        self.next_id = self.next_id % 0xFFFF + 1

    def run(self, end):
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise WatchEnded("%g seconds elapsed" % self.seconds, 0)
            if self.keepalive_due_in() <= 0:
                self.send_keepalive()
            raw = self.conn.recv_msg(min(remaining, max(0.05, self.keepalive_due_in())))
            if raw is not None:
                self.on_message(Msg(raw))

    def set_interval(self, ms):
        if ms < MIN_KEEPALIVE_INTERVAL_MS:
            raise fatal("keepalive interval %d ms < 10 s (fatal, RFC 8490 s6.5.2)" % ms)
        self.interval = float("inf") if ms == 0xFFFFFFFF else ms / 1000.0

    def on_message(self, msg):
        if not msg.is_dso:
            emit({"op": "tlv", "note": "unexpected non-DSO message", "describe": msg.describe()})
        elif msg.parse_error:
            raise fatal("malformed DSO message: %s" % msg.parse_error)
        elif msg.qr:
            self.on_response(msg)
        elif msg.id != 0:
            raise fatal("server sent a DSO request %r (none is defined server->client)"
                        % msg.primary())
        else:
            self.on_unidirectional(msg)

    def on_response(self, msg):
        ptype = self.outstanding.pop(msg.id, None)
        if ptype is None and msg.id == self.sub_id and self.subscribed:
            ptype = TLV_SUBSCRIBE           # RFC 8490 s5.6 cancellation
        if msg.id == 0 or ptype is None:
            raise fatal("response with unknown MESSAGE ID 0x%04x (fatal, RFC 8490 s5.5.2)"
                        % msg.id)
        extra = msg.tlvs
        if ptype == TLV_KEEPALIVE:
            if msg.rcode != NOERROR or not msg.tlvs or msg.tlvs[0].type != TLV_KEEPALIVE:
                raise WatchEnded("Keepalive answered %s" % rcode_name(msg.rcode), 1)
            self.set_interval(parse_keepalive(msg.tlvs[0])[1])
            extra = msg.tlvs[1:]
        elif ptype == TLV_SUBSCRIBE:
            if msg.rcode != NOERROR:
                rd = [struct.unpack("!I", t.data)[0] for t in msg.tlvs
                      if t.type == TLV_RETRY_DELAY and len(t.data) == 4]
                raise WatchEnded("subscription %s: %s%s" % (
                    "cancelled by server" if self.subscribed else "refused",
                    rcode_name(msg.rcode), (" retry-delay %d ms" % rd[0]) if rd else ""), 1)
            self.subscribed = True
            extra = [t for t in msg.tlvs if t.type != TLV_SUBSCRIBE]   # RFC 8765 s6.2.2
        for t in extra:
            if t.type not in (TLV_PADDING, TLV_RETRY_DELAY):
                emit(tlv_json(msg, t, "unexpected TLV in response"))

    def on_unidirectional(self, msg):
        prim = msg.primary()
        if prim is None:
            raise fatal("unidirectional DSO message without TLV")
        if prim.type == TLV_PUSH:
            self.on_push(msg, prim)
        elif prim.type == TLV_KEEPALIVE:
            inact, ka = parse_keepalive(prim)
            self.set_interval(ka)
            emit({"op": "keepalive", "inactivity_ms": inact, "interval_ms": ka})
        elif prim.type == TLV_RETRY_DELAY:
            delay = struct.unpack("!I", prim.data)[0] if len(prim.data) == 4 else None
            raise WatchEnded("retry-delay from server: rcode %s, %s ms"
                             % (rcode_name(msg.rcode), delay), 0)
        else:
            emit(tlv_json(msg, prim, "unexpected unidirectional primary TLV"))
            raise fatal("unexpected unidirectional DSO message (RFC 8490 s5.4.3, RFC 8765 s6)")

    def on_push(self, msg, prim):
        if len(msg.raw) > MAX_PUSH_MESSAGE:
            raise fatal("PUSH larger than 16382 bytes (fatal, RFC 8765 s6.3.1)")
        changes = parse_push_changes(msg, prim)
        if not changes:
            raise fatal("PUSH without change notifications (fatal, RFC 8765 s6.3.1)")
        problems = [v for rr in changes for v in change_violations(rr)
                    if "MUST be 0 on transmission" not in v]
        if problems:
            raise fatal(problems[0])
        for rr in changes:
            op = change_op(rr)
            if op is None:
                continue          # unknown TTL encoding: "SHOULD silently ignore"
            if self.subscribed and subscription_matches(self.sub, rr):
                emit(change_json(rr, op))
            else:
                emit(dict(change_json(rr, op), op="unmatched", change=op))
        for t in msg.tlvs[1:]:
            if t.type != TLV_PADDING:
                emit(tlv_json(msg, t, "unexpected additional TLV in PUSH"))


def run_watch(args):
    end = time.monotonic() + args.seconds
    try:
        conn = Conn(args.host, args.port, make_tls_context(args), args.tls_name or args.host,
                    min(10.0, args.seconds))
    except (OSError, ssl.SSLError, ValueError) as e:
        emit({"op": "closed", "reason": "connect failed: %s: %s" % (type(e).__name__, e)})
        return 1
    w = Watcher(conn, fqdn(args.name), args.type, args.seconds)
    try:
        w.start()
        w.run(end)
    except WatchEnded as e:
        emit({"op": "closed", "reason": e.reason})
        conn.close_gracefully() if e.graceful else conn.abort()
        return e.code
    except Closed as c:
        emit({"op": "closed", "reason": "eof" if c.kind == "close_notify" else c.kind,
              "detail": str(c)})
        conn.close_gracefully()
        return 0 if c.kind in ("close_notify", "eof") else 1
    except ParseError as e:
        emit({"op": "closed", "reason": "malformed data from server: %s" % e})
        conn.abort()
        return 1


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_common(p, need_zone):
    p.add_argument("--host", required=True, help="server address or host name")
    p.add_argument("--port", required=True, type=int, help="DNS-over-TLS port of the server")
    p.add_argument("--ca", required=True, help="CA bundle (PEM) to verify the server certificate")
    p.add_argument("--cert", help="client certificate (PEM)")
    p.add_argument("--key", help="client private key (PEM)")
    p.add_argument("--tls-name", help="name to verify in the server certificate (default: --host)")
    if need_zone:
        p.add_argument("--zone", required=True, help="zone the server is authoritative for")
    p.add_argument("--name", required=True, help="name in the zone that has TXT records")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Independent DNS Push (RFC 8765) / DSO (RFC 8490) test client.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pc = sub.add_parser("conformance", help="run the conformance checks")
    add_common(pc, True)
    pc.add_argument("--json", action="store_true", help="one JSON object per check")
    pc.add_argument("--timeout", type=float, default=3.0,
                    help="per-wait timeout in seconds (default 3)")
    pc.add_argument("--only", help="comma-separated check ids to run")
    pw = sub.add_parser("watch", help="subscribe and print PUSH changes as JSON lines")
    add_common(pw, False)
    pw.add_argument("--type", type=parse_type, default=T_TXT, help="RR type (default TXT)")
    pw.add_argument("--seconds", type=float, default=30.0, help="run time (default 30)")
    pl = sub.add_parser("list", help="list the conformance checks")
    pl.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for cid, section, desc, _ in CHECKS:
            print(json.dumps({"id": cid, "section": section, "description": desc})
                  if args.json else "%-34s %-32s %s" % (cid, section, desc))
        return 0
    if bool(args.cert) != bool(args.key):
        ap.error("--cert and --key go together")
    try:
        if args.cmd == "conformance":
            try:
                make_tls_context(args)
            except (OSError, ssl.SSLError, ValueError) as e:
                print("FAIL setup - cannot load TLS files: %s: %s" % (type(e).__name__, e),
                      flush=True)
                return 1
            return run_conformance(args)
        return run_watch(args)
    except BrokenPipeError:      # stdout closed (e.g. piped into head)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
