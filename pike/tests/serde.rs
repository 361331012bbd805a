//! The serde converters: round trips of structs under any chunking, each
//! format; oversized and malformed input; a message that cannot be
//! encoded comes back and its connection carries on.
#![cfg(all(feature = "postcard", feature = "json", feature = "msgpack"))]

mod util;

use std::collections::BTreeMap;
use std::task::Waker;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use pike::converter::{Converter, Decoded, Deserializer, Serializer, WriteBuf};
use pike::converters::serde::{JsonConverter, MsgpackConverter, PostcardConverter};
use pike::error::{DisconnectReason, ProtocolError, RejectReason, SerializeError};
use pike::{Delivery, Event, ShutdownMode};
use util::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u64,
    name: String,
    payload: Vec<f64>,
    tags: BTreeMap<String, i32>,
    parent: Option<Box<Job>>,
}

fn job() -> impl Strategy<Value = Job> {
    (
        any::<u64>(),
        "[a-zé ]{0,20}",
        proptest::collection::vec(-1e9f64..1e9, 0..20),
        proptest::collection::btree_map("[a-z]{1,5}", any::<i32>(), 0..4),
        proptest::option::of((any::<u64>(), "[a-z]{0,5}")),
    )
        .prop_map(|(id, name, payload, tags, parent)| Job {
            id,
            name,
            payload,
            tags,
            parent: parent.map(|(id, name)| {
                Box::new(Job {
                    id,
                    name,
                    payload: Vec::new(),
                    tags: BTreeMap::new(),
                    parent: None,
                })
            }),
        })
}

/// Encodes `jobs` back to back through serializers, `room` bytes of write
/// buffer at a time (and through the fast path when `whole`).
fn encode<C: Converter<Message = Job>>(c: &C, jobs: &[Job], room: usize, whole: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    for j in jobs {
        if !(whole && c.write_whole(j, &mut WriteBuf::new(&mut wire, usize::MAX))) {
            wire.extend(encode_with_room(c, j, room));
        }
    }
    wire
}

/// Decodes `wire` fed in pieces of `cut` bytes.
fn decode<C: Converter<Message = Job>>(c: &C, wire: &[u8], cut: usize) -> Vec<Job> {
    let mut got = Vec::new();
    let mut d = c.deserializer();
    for piece in wire.chunks(cut) {
        let mut at = 0;
        while at < piece.len() {
            let (used, outcome) = d.put_bytes(&piece[at..], Waker::noop()).unwrap();
            at += used;
            match outcome {
                Decoded::Done(j) => {
                    got.push(j);
                    d = c.deserializer();
                }
                Decoded::NeedMore => break,
                Decoded::Pending => panic!("never waits"),
            }
        }
    }
    got
}

fn round_trip<C: Converter<Message = Job>>(
    c: &C,
    jobs: &[Job],
    room: usize,
    cut: usize,
    whole: bool,
) -> Result<(), TestCaseError> {
    let wire = encode(c, jobs, room, whole);
    prop_assert_eq!(&decode(c, &wire, cut), jobs);
    // The fast path writes exactly what a serializer would.
    prop_assert_eq!(wire, encode(c, jobs, usize::MAX / 2, false));
    Ok(())
}

proptest! {
    #[test]
    fn structs_round_trip_in_every_format_under_any_chunking(
        jobs in proptest::collection::vec(job(), 1..6),
        room in 1usize..64,
        cut in 1usize..64,
        whole in any::<bool>(),
    ) {
        round_trip(&PostcardConverter::<Job>::new(), &jobs, room, cut, whole)?;
        round_trip(&JsonConverter::<Job>::new(), &jobs, room, cut, whole)?;
        round_trip(&MsgpackConverter::<Job>::new(), &jobs, room, cut, whole)?;
    }
}

#[test]
fn json_is_readable_and_msgpack_has_field_names() {
    let j = Job {
        id: 1,
        name: "a".into(),
        payload: vec![0.5],
        tags: BTreeMap::new(),
        parent: None,
    };
    let wire = encode(
        &JsonConverter::<Job>::new(),
        std::slice::from_ref(&j),
        1024,
        false,
    );
    let text = String::from_utf8(wire).unwrap();
    assert!(text.starts_with("59 {\"id\":1,\"name\":\"a\""), "{text}");
    let wire = encode(&MsgpackConverter::<Job>::new(), &[j], 1024, false);
    assert!(wire.windows(7).any(|w| w == b"payload"));
}

#[test]
fn oversized_and_malformed_bodies_are_protocol_errors() {
    let c = PostcardConverter::<Job>::new().with_max_message_size(100);
    let mut d = c.deserializer();
    assert!(matches!(
        d.put_bytes(b"101 ", Waker::noop()),
        Err(ProtocolError::TooLarge {
            length: 101,
            limit: 100
        })
    ));
    for (name, wire) in [
        ("postcard", &b"3 \xff\xff\xff"[..]),
        ("json", &b"5 {\"id\""[..]),
    ] {
        let result = match name {
            "postcard" => PostcardConverter::<Job>::new()
                .deserializer()
                .put_bytes(wire, Waker::noop())
                .map(drop),
            _ => JsonConverter::<Job>::new()
                .deserializer()
                .put_bytes(wire, Waker::noop())
                .map(drop),
        };
        assert!(
            matches!(result, Err(ProtocolError::Other(_))),
            "{name}: {result:?}"
        );
    }
    // A body with bytes after the message is not a message either.
    let r = PostcardConverter::<u8>::new()
        .deserializer()
        .put_bytes(b"2 \x07\x00", Waker::noop());
    assert!(matches!(r, Err(ProtocolError::Other(_))), "{r:?}");
}

/// A message whose encoding fails on demand.
#[derive(Debug, PartialEq, Deserialize)]
struct Picky(String);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == "unencodable" {
            return Err(serde::ser::Error::custom("refuses to be encoded"));
        }
        s.serialize_newtype_struct("Picky", &self.0)
    }
}

over_transports! {
    fn a_message_that_cannot_be_encoded_comes_back_and_the_connection_goes_on(net: Net) {
        let server = listening_on(net, PostcardConverter::<Picky>::new());
        let client = client_on(net, PostcardConverter::<Picky>::new());
        let conn = client
            .connect(server.local_address().unwrap(), Delivery::Merged)
            .unwrap();
        let remote = accept(&server, Delivery::Merged);
        connected(&client);
        for text in ["before", "unencodable", "after"] {
            client.send(&conn, Picky(text.into())).unwrap();
        }
        match next(&client) {
            Event::RejectedMessage(r) => {
                assert_eq!(r.message, Picky("unencodable".into()));
                // (postcard reports a custom error without its text)
                assert!(
                    matches!(&r.reason, RejectReason::Serialize(_)),
                    "{}",
                    r.reason
                );
            }
            other => panic!("{other:?}"),
        }
        for text in ["before", "after"] {
            match next(&server) {
                Event::MessageReceived(m) => {
                    assert_eq!((m.connection, m.message), (remote, Picky(text.into())))
                }
                other => panic!("{other:?}"),
            }
        }
        // A body that does not decode closes that connection, with its reason.
        let mut raw = raw_connect_to(&server);
        accept(&server, Delivery::Merged);
        write_all(&mut raw, b"1 \xff");
        match next(&server) {
            Event::RemoteDisconnect(r) => assert!(
                matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::Protocol(ProtocolError::Other(_)))
                ),
                "{:?}",
                r.reason
            ),
            other => panic!("{other:?}"),
        }
        server.shutdown(ShutdownMode::Now);
    }
}

#[test]
fn a_body_over_the_limit_is_refused_at_send_and_one_at_it_goes() {
    // postcard: a byte string of n < 128 bytes is n + 1 bytes of body.
    let c = PostcardConverter::<Vec<u8>>::new().with_max_message_size(100);
    let (at, over) = (vec![7u8; 99], vec![7u8; 100]);
    for whole in [true, false] {
        let mut wire = Vec::new();
        let mut out = WriteBuf::new(&mut wire, 4096);
        if whole {
            assert!(
                c.write_whole(&at, &mut out),
                "the fast path takes one at the limit"
            );
            assert!(!c.write_whole(&over, &mut out), "nor one past it");
            assert_eq!(wire.len(), "100 ".len() + 100);
        } else {
            let mut s = c.serializer(&over);
            let r = s.get_bytes(&over, &mut out, Waker::noop());
            assert!(
                matches!(
                    r,
                    Err(SerializeError::TooLarge {
                        length: 101,
                        limit: 100
                    })
                ),
                "{r:?}"
            );
            assert!(wire.is_empty());
        }
    }
}
