//! `CodecConverter`: a codec of a few lines makes a converter that copes
//! with any chunking, bounds what it holds, and hands back what it cannot
//! encode.

mod util;

use std::task::Waker;

use proptest::prelude::*;

use pike::converter::{Converter, Decoded, Deserializer, Serializer, WriteBuf};
use pike::converters::codec::{Codec, CodecConverter};
use pike::error::{ProtocolError, RejectReason, SerializeError};
use pike::{Delivery, Event, ShutdownMode};
use util::*;

/// A kind byte, a big-endian `u16` length, the body.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    kind: u8,
    body: Vec<u8>,
}

struct Frames;

impl Codec for Frames {
    type Message = Frame;

    fn encode(&self, f: &Frame, out: &mut Vec<u8>) -> Result<(), SerializeError> {
        let len = u16::try_from(f.body.len())
            .map_err(|_| SerializeError::Other("body over 64 KiB".into()))?;
        out.push(f.kind);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&f.body);
        Ok(())
    }

    fn decode(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        let [kind, hi, lo, rest @ ..] = buf else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        Ok(rest.get(..len).map(|body| {
            let frame = Frame {
                kind: *kind,
                body: body.to_vec(),
            };
            (frame, 3 + len)
        }))
    }

    fn max_message_size(&self) -> usize {
        1000 + 3
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..1000))
        .prop_map(|(kind, body)| Frame { kind, body })
}

proptest! {
    #[test]
    fn frames_round_trip_under_any_chunking(
        frames in proptest::collection::vec(frame(), 1..10),
        cut in 1usize..200,
        room in 1usize..200,
    ) {
        let c = CodecConverter::new(Frames);
        let wire: Vec<u8> = frames.iter().flat_map(|f| encode_with_room(&c, f, room)).collect();
        let mut got = Vec::new();
        let mut d = c.deserializer();
        for piece in wire.chunks(cut) {
            let mut at = 0;
            while at < piece.len() {
                let (used, outcome) = d.put_bytes(&piece[at..], Waker::noop()).unwrap();
                prop_assert!(used <= piece.len() - at);
                at += used;
                match outcome {
                    Decoded::Done(f) => {
                        got.push(f);
                        d = c.deserializer();
                    }
                    Decoded::NeedMore => prop_assert_eq!(at, piece.len()),
                    Decoded::Pending => panic!("never waits"),
                }
            }
        }
        prop_assert_eq!(got, frames);
    }
}

#[test]
fn input_past_the_limit_is_a_protocol_error() {
    let c = CodecConverter::new(Frames);
    // Announces 2000 bytes (over the 1003 allowed), sent in pieces.
    let mut d = c.deserializer();
    let mut wire = vec![1, 0x07, 0xd0];
    wire.extend(std::iter::repeat_n(0u8, 1500));
    let mut result = Ok((0, Decoded::NeedMore));
    for piece in wire.chunks(100) {
        result = d.put_bytes(piece, Waker::noop());
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(ProtocolError::TooLarge { limit: 1003, .. })),
        "{result:?}"
    );
}

over_transports! {
    fn a_frame_that_cannot_be_encoded_comes_back_and_the_connection_goes_on(net: Net) {
        let server = listening_on(net, CodecConverter::new(Frames));
        let client = client_on(net, CodecConverter::new(Frames));
        let conn = client
            .connect(server.local_address().unwrap(), Delivery::Merged)
            .unwrap();
        let remote = accept(&server, Delivery::Merged);
        connected(&client);
        let big = Frame {
            kind: 2,
            body: vec![0; 70_000],
        };
        for f in [
            Frame {
                kind: 1,
                body: b"one".to_vec(),
            },
            big.clone(),
            Frame {
                kind: 3,
                body: b"three".to_vec(),
            },
        ] {
            client.send(&conn, f).unwrap();
        }
        match next(&client) {
            Event::RejectedMessage(r) => {
                assert_eq!(r.message, big);
                assert!(
                    matches!(&r.reason, RejectReason::Serialize(e) if e.to_string().contains("64 KiB")),
                    "{}",
                    r.reason
                );
            }
            other => panic!("{other:?}"),
        }
        for kind in [1, 3] {
            match next(&server) {
                Event::MessageReceived(m) => assert_eq!((m.connection, m.message.kind), (remote, kind)),
                other => panic!("{other:?}"),
            }
        }
        server.shutdown(ShutdownMode::Now);
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_before_a_byte_is_written() {
    // 1001 bytes of body: 1004 on the wire, over the codec's 1003, which
    // the peer's deserializer would cut the connection for.
    let c = CodecConverter::new(Frames);
    let over = Frame {
        kind: 1,
        body: vec![0; 1001],
    };
    let mut s = c.serializer(&over);
    let mut buf = Vec::new();
    let r = s.get_bytes(&over, &mut WriteBuf::new(&mut buf, 4096), Waker::noop());
    assert!(
        matches!(
            r,
            Err(SerializeError::TooLarge {
                length: 1004,
                limit: 1003
            })
        ),
        "{r:?}"
    );
    assert!(buf.is_empty());
    // At the limit it goes.
    let at = Frame {
        kind: 1,
        body: vec![0; 1000],
    };
    assert_eq!(encode_with_room(&c, &at, 4096).len(), 1003);
}
