//! Ready-made converters.
//!
//! The primitives are wire-compatible with the Python original: see
//! [`primitives`] for the exact formats.

pub mod primitives;

pub use primitives::{
    BoolConverter, BytesConverter, DEFAULT_MAX_MESSAGE_SIZE, FloatConverter, IntConverter,
    LengthPrefixed, Payload, StringConverter, VecConverter,
};
