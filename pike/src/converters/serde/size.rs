//! How much memory a serde value holds: a walk over it with a
//! [`Serializer`] that counts instead of writing.
//!
//! The count is an estimate from what serde shows of a value: its strings
//! and byte buffers by their length, and every value inside a sequence or
//! map (which live on the heap) by its size. What serde does not show
//! (a `Box`, spare capacity, the allocator's own overhead) is not counted.
//! It is close for the messages people send (structs of numbers, strings
//! and vectors of them), and what the connector counts of a received
//! message is never less than the bytes read for it.

use std::fmt;

use serde::ser::{self, Serialize};

/// The heap bytes `value` owns, by serde's view of it (see the module
/// documentation).
pub(crate) fn heap_size<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter::default();
    // Counting never fails; a value whose `Serialize` fails (a map with
    // non-string keys in some formats, say) is counted as far as it got.
    let _ = value.serialize(&mut counter);
    counter.heap
}

/// What a value inside a heap container takes there besides its contents:
/// a `String` or `Vec` is a pointer, a length and a capacity.
const VEC_SLOT: usize = 3 * std::mem::size_of::<usize>();

#[derive(Debug, Default)]
struct Counter {
    heap: usize,
    /// How many sequences or maps enclose the value being counted: inside
    /// one, a value's own size is on the heap.
    depth: usize,
}

impl Counter {
    fn inline(&mut self, size: usize) {
        if self.depth > 0 {
            self.heap += size;
        }
    }

    fn buffer(&mut self, len: usize) {
        self.inline(VEC_SLOT);
        self.heap += len;
    }

    fn open(&mut self) {
        self.inline(VEC_SLOT);
        self.depth += 1;
    }
}

/// Counting cannot fail; serde asks for an error type all the same.
#[derive(Debug)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("counting failed")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Never
    }
}

type Done = Result<(), Never>;

impl<'a> ser::Serializer for &'a mut Counter {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Nested<'a>;
    type SerializeTuple = Inline<'a>;
    type SerializeTupleStruct = Inline<'a>;
    type SerializeTupleVariant = Inline<'a>;
    type SerializeMap = Nested<'a>;
    type SerializeStruct = Inline<'a>;
    type SerializeStructVariant = Inline<'a>;

    fn serialize_bool(self, _: bool) -> Done {
        self.inline(1);
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Done {
        self.inline(1);
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Done {
        self.inline(2);
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Done {
        self.inline(4);
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Done {
        self.inline(8);
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Done {
        self.inline(16);
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Done {
        self.inline(1);
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Done {
        self.inline(2);
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Done {
        self.inline(4);
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Done {
        self.inline(8);
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Done {
        self.inline(16);
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Done {
        self.inline(4);
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Done {
        self.inline(8);
        Ok(())
    }
    fn serialize_char(self, _: char) -> Done {
        self.inline(4);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Done {
        self.buffer(v.len());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Done {
        self.buffer(v.len());
        Ok(())
    }
    fn serialize_none(self) -> Done {
        self.inline(1);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        self.inline(1);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Done {
        self.inline(1);
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Nested<'a>, Never> {
        self.open();
        Ok(Nested(self))
    }
    fn serialize_tuple(self, _: usize) -> Result<Inline<'a>, Never> {
        Ok(Inline(self))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Inline<'a>, Never> {
        Ok(Inline(self))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Inline<'a>, Never> {
        self.inline(1);
        Ok(Inline(self))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Nested<'a>, Never> {
        self.open();
        Ok(Nested(self))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Inline<'a>, Never> {
        Ok(Inline(self))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Inline<'a>, Never> {
        self.inline(1);
        Ok(Inline(self))
    }
}

/// The fields of a struct or tuple: where the value itself is.
struct Inline<'a>(&'a mut Counter);

/// The elements of a sequence or the entries of a map: on the heap.
struct Nested<'a>(&'a mut Counter);

impl ser::SerializeSeq for Nested<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut *self.0)
    }
    fn end(self) -> Done {
        self.0.depth -= 1;
        Ok(())
    }
}

impl ser::SerializeMap for Nested<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(&mut *self.0)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut *self.0)
    }
    fn end(self) -> Done {
        self.0.depth -= 1;
        Ok(())
    }
}

macro_rules! inline_fields {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Inline<'_> {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
                value.serialize(&mut *self.0)
            }
            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

inline_fields!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

macro_rules! named_fields {
    ($($trait:ident),* $(,)?) => {$(
        impl ser::$trait for Inline<'_> {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Done {
                value.serialize(&mut *self.0)
            }
            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

named_fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Job {
        id: u64,
        name: String,
        payload: Vec<f64>,
        tags: Vec<String>,
    }

    #[test]
    fn strings_and_vectors_count_what_they_own() {
        assert_eq!(heap_size(&7u64), 0);
        assert_eq!(heap_size(&"abc".to_owned()), 3);
        assert_eq!(heap_size(&vec![0u64; 1000]), 8000);
        // A vector of strings: each string's slot and its bytes.
        assert_eq!(heap_size(&vec!["ab".to_owned(); 10]), 10 * (VEC_SLOT + 2));
        let job = Job {
            id: 1,
            name: "x".repeat(1 << 20),
            payload: vec![1.0; 100],
            tags: vec![],
        };
        assert_eq!(heap_size(&job), (1 << 20) + 800);
    }
}
