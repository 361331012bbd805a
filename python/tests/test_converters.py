"""The original's converter tests, written afresh for Python 3 and bytes,
and more: bad input, the int range, the bytes converter."""

import pytest

import pike
from pike import Deserializer
from pike.compat import converters

P = converters.Primitives


def check_conversion(values, to_bytes, from_bytes):
    remainder, value = from_bytes(b"")
    assert value is None
    assert remainder == b""
    for value in values:
        serialized = to_bytes(value)
        assert isinstance(serialized, bytes)
        assert from_bytes(serialized) == (b"", value)
        # Trailing bytes are the remainder.
        assert from_bytes(serialized + b"abc") == (b"abc", value)


def test_booleans():
    check_conversion((True, False), P.bool_to_bytes, P.bytes_to_bool)
    assert P.bool_to_bytes(True) == b"True"
    assert P.bool_to_bytes(False) == b"False"


def test_ints():
    check_conversion((-1, 0, 9999), P.int_to_bytes, P.bytes_to_int)
    assert P.int_to_bytes(-12) == b"-12 "


def test_floats():
    check_conversion((-1.5, 0.0, 22.0 / 7), P.float_to_bytes, P.bytes_to_float)
    # What Python's repr writes is read back, and what Pike writes parses
    # with float().
    for text in (b"0.1 ", b"1e+16 ", b"inf ", b"-inf ", b"-2.2250738585072014e-308 "):
        remainder, value = P.bytes_to_float(text)
        assert remainder == b""
        assert value == float(text.decode())
        assert float(P.float_to_bytes(value).decode()) == value


def test_single_string():
    for s, expected in (("", b"0 "), ("a", b"1 a"), ("abc", b"3 abc")):
        serialized = P.string_to_bytes(s)
        assert serialized == expected
        assert P.bytes_to_string(serialized) == (b"", s)


def test_string_lengths_count_utf8_bytes():
    assert P.string_to_bytes("é") == b"2 \xc3\xa9"
    assert P.bytes_to_string(b"2 \xc3\xa9") == (b"", "é")


def test_single_string_by_byte():
    serialized = P.string_to_bytes("abc")
    # Every prefix short of the whole is incomplete and comes back whole.
    for end in range(len(serialized)):
        data = serialized[:end]
        assert P.bytes_to_string(data) == (data, None)
    assert P.bytes_to_string(serialized) == (b"", "abc")


def test_multiple_strings():
    strings = ("", "a", "abc")
    serialized = [P.string_to_bytes(s) for s in strings]
    remainder = b"".join(serialized)
    remainder, value = P.bytes_to_string(remainder)
    assert (remainder, value) == (serialized[1] + serialized[2], "")
    remainder, value = P.bytes_to_string(remainder)
    assert (remainder, value) == (serialized[2], "a")
    assert P.bytes_to_string(remainder) == (b"", "abc")


def test_converters():
    values = (True, 5, 22.0 / 7, "mgp", b"\x00\xff")
    value_converters = (
        P.BOOL_CONVERTER,
        P.INT_CONVERTER,
        P.FLOAT_CONVERTER,
        P.STRING_CONVERTER,
        P.BYTES_CONVERTER,
    )
    for value, converter in zip(values, value_converters):
        serializer = converter.get_serializer(value)
        serialized = serializer.get_bytes()
        assert serializer.get_bytes() == b""
        deserializer = converter.get_deserializer()
        assert deserializer.put_bytes(serialized) == (b"", Deserializer.DONE, value)
        assert deserializer.put_bytes(serialized[:-1]) == (serialized[:-1], Deserializer.WAIT_FOR_MORE)


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError):
        P.bytes_to_bool(b"Maybe")
    with pytest.raises(ValueError):
        P.bytes_to_int(b"12a ")
    with pytest.raises(ValueError):
        P.bytes_to_float(b"one ")
    with pytest.raises(ValueError):
        P.bytes_to_string(b"x abc")
    with pytest.raises(ValueError):
        P.bytes_to_string(b"2 \xff\xfe")


def test_ints_beyond_64_bits_are_a_clear_error():
    assert P.bytes_to_int(P.int_to_bytes(2**63 - 1)) == (b"", 2**63 - 1)
    assert P.bytes_to_int(P.int_to_bytes(-(2**63))) == (b"", -(2**63))
    with pytest.raises(OverflowError, match="64-bit"):
        P.int_to_bytes(2**63)
    with pytest.raises(ValueError):
        P.bytes_to_int(b"9223372036854775808 ")


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError):
        P.string_to_bytes(b"bytes")
    with pytest.raises(TypeError):
        P.bytes_to_string("str")
    with pytest.raises(TypeError):
        P.BYTES_CONVERTER.get_serializer("str")


def test_module_names_of_the_original():
    from pike.compat import connector, tornado_connector

    assert tornado_connector.TornadoConnector is pike.Connector
    assert connector.Event.MESSAGE == 4
    assert (
        connector.Event.FINISH_CONNECT,
        connector.Event.FINISH_DISCONNECT,
        connector.Event.ENDPOINT_CONNECT,
        connector.Event.ENDPOINT_DISCONNECT,
        connector.Event.MESSAGE,
        connector.Event.REJECTED_MESSAGE,
    ) == (0, 1, 2, 3, 4, 5)
    assert connector.StreamSerializer.WAIT_FOR_CALLBACK == 0
    assert (connector.StreamDeserializer.WAIT_FOR_CALLBACK, connector.StreamDeserializer.WAIT_FOR_MORE,
            connector.StreamDeserializer.DONE) == (0, 1, 2)
    assert (connector.Deserializer.WRITE_TO_STREAM, connector.Deserializer.WAIT_FOR_MORE,
            connector.Deserializer.DONE) == (0, 1, 2)
    assert converters.FileConverter is pike.FileConverter
