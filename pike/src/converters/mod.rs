//! Ready-made converters.
//!
//! The primitives are wire-compatible with the Python original: see
//! [`primitives`] for the exact formats. [`file`](mod@file) streams files.
//! `serde` (with the `postcard`, `json` or `msgpack` feature) carries any
//! serde type, framed like the primitives' strings. [`codec`] makes a
//! converter of your own wire format from an encode and a decode function.

pub mod codec;
pub mod file;
pub mod primitives;
#[cfg(any(feature = "postcard", feature = "json", feature = "msgpack"))]
pub mod serde;

pub use file::FileConverter;
pub use primitives::{
    BoolConverter, BytesConverter, DEFAULT_MAX_MESSAGE_SIZE, FloatConverter, IntConverter,
    LengthPrefixed, Payload, StringConverter, VecConverter,
};

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz targets in `fuzz/`; not a stable API.

    use std::fmt::Debug;
    use std::task::Waker;

    use bytes::Bytes;

    use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};

    /// Feeds `data[1..]` to deserializers in chunks of `data[0] % 16 + 1`
    /// bytes, as shared chunks through `put_shared` if the converter
    /// [shares its input](Converter::shares_input). Checks the contract (never consume more than given; the
    /// primitives consume everything when they ask for more) and that every
    /// message decoded re-encodes to something that decodes to it again.
    pub fn deserialize_chunked<C: Converter>(converter: &C, data: &[u8])
    where
        C::Message: Debug,
    {
        let Some((&first, data)) = data.split_first() else {
            return;
        };
        let chunk = usize::from(first % 16) + 1;
        let mut d = converter.deserializer();
        for piece in data.chunks(chunk) {
            let shared = converter
                .shares_input()
                .then(|| Bytes::copy_from_slice(piece));
            let mut start = 0;
            while start < piece.len() {
                let result = match &shared {
                    Some(chunk) => d.put_shared(chunk, start, Waker::noop()),
                    None => d.put_bytes(&piece[start..], Waker::noop()),
                };
                let Ok((used, status)) = result else {
                    return;
                };
                assert!(used <= piece.len() - start);
                start += used;
                match status {
                    Decoded::Done(m) => {
                        check_roundtrip(converter, &m);
                        d = converter.deserializer();
                    }
                    Decoded::NeedMore => assert_eq!(start, piece.len()),
                    Decoded::Pending => panic!("primitives never wait"),
                }
            }
        }
    }

    fn check_roundtrip<C: Converter>(converter: &C, message: &C::Message)
    where
        C::Message: Debug,
    {
        let mut s = converter.serializer(message);
        let mut wire = Vec::new();
        let mut out = WriteBuf::new(&mut wire, usize::MAX);
        match s.get_bytes(message, &mut out, Waker::noop()) {
            Ok(Encoded::Done) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut d = converter.deserializer();
        match d.put_bytes(&wire, Waker::noop()) {
            Ok((used, Decoded::Done(again))) => {
                assert_eq!(used, wire.len());
                assert_eq!(format!("{again:?}"), format!("{message:?}"));
            }
            other => panic!("re-encoded {message:?} does not decode: {other:?}"),
        }
    }
}
