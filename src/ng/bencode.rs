//! Bencode (the ng protocol's dictionary format): a bounded decoder and an encoder.
//!
//! Written here rather than taken from a crate: the format is four productions, and the ng
//! listener needs what the general-purpose crates do not promise together: a hard nesting
//! cap (no stack exhaustion from `llllll…`), typed errors with offsets, byte-string keys in
//! wire order (rtpengine does not sort them), and no panics on hostile input.
//!
//! Strictness: integers have no leading zeros, no `-0`, and fit `i64`; string lengths have no
//! leading zeros and fit the input; dictionary keys are strings and unique; nothing may follow
//! the top-level value. Key order is not checked (the ng documentation says rtpengine does not
//! honour bencode's sorted-keys rule, so peers may send any order).

use std::fmt;

/// Deepest list/dictionary nesting accepted. ng requests nest three levels at most
/// (`codec` → `strip` → names; `sdp-attr` → media → command → values).
pub const MAX_DEPTH: usize = 32;

/// Largest input accepted: one UDP datagram.
pub const MAX_INPUT: usize = 65_535;

/// A bencoded value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Value>),
    Dict(Dict),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Self::Int(i) => write!(f, "{i}"),
            Self::List(l) => f.debug_list().entries(l).finish(),
            Self::Dict(d) => d.fmt(f),
        }
    }
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value as text, when it is a UTF-8 byte string.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The encoded form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode(self, &mut out);
        out
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Bytes(s.into_bytes())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Self::Dict(d)
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Self::List(l)
    }
}

/// A dictionary with byte-string keys, in wire order. Keys are unique.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dict(Vec<(Vec<u8>, Value)>);

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

impl Dict {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`: replaces an existing entry in place, or appends.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// The first of `keys` present (ng accepts spellings with spaces or hyphens).
    pub fn get_any(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.get(k))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|(k, _)| k.as_slice())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why bytes are not one bencoded value. Offsets count from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input ends inside a value")]
    UnexpectedEnd,
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("malformed integer at offset {offset}")]
    InvalidInteger { offset: usize },
    #[error("malformed string length at offset {offset}")]
    InvalidLength { offset: usize },
    #[error("dictionary key at offset {offset} is not a string")]
    KeyNotString { offset: usize },
    #[error("duplicate dictionary key at offset {offset}")]
    DuplicateKey { offset: usize },
    #[error("nesting deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("input larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("data after the value at offset {offset}")]
    TrailingData { offset: usize },
}

/// Decodes exactly one value from `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    if input.len() > MAX_INPUT {
        return Err(DecodeError::TooLarge { limit: MAX_INPUT });
    }
    let mut decoder = Decoder { input, pos: 0 };
    let value = decoder.value(0)?;
    if decoder.pos != input.len() {
        return Err(DecodeError::TrailingData {
            offset: decoder.pos,
        });
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                let depth = self.enter(depth)?;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth)?);
                }
                self.pos += 1;
                Ok(Value::List(list))
            }
            b'd' => {
                let depth = self.enter(depth)?;
                let mut dict = Vec::<(Vec<u8>, Value)>::new();
                while self.peek()? != b'e' {
                    let offset = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(DecodeError::KeyNotString { offset });
                    }
                    let key = self.bytes()?;
                    if dict.iter().any(|(k, _)| *k == key) {
                        return Err(DecodeError::DuplicateKey { offset });
                    }
                    let value = self.value(depth)?;
                    dict.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict(dict)))
            }
            byte => Err(DecodeError::UnexpectedByte {
                offset: self.pos,
                byte,
            }),
        }
    }

    /// Consumes a container's opening byte and returns the depth of its contents.
    fn enter(&mut self, depth: usize) -> Result<usize, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { limit: MAX_DEPTH });
        }
        self.pos += 1;
        Ok(depth + 1)
    }

    /// Reads ASCII digits up to `end`; returns them (no sign handling) and skips `end`.
    fn digits_until(&mut self, end: u8) -> Result<&[u8], DecodeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let Some(len) = rest.iter().position(|b| *b == end) else {
            return Err(DecodeError::UnexpectedEnd);
        };
        self.pos = start + len + 1;
        Ok(&rest[..len])
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        let offset = self.pos;
        self.pos += 1; // 'i'
        let text = self.digits_until(b'e')?;
        let invalid = DecodeError::InvalidInteger { offset };
        let (negative, digits) = match text.split_first() {
            Some((b'-', digits)) => (true, digits),
            _ => (false, text),
        };
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits == b"0" || digits[0] != b'0')
            && !(negative && digits == b"0");
        if !canonical {
            return Err(invalid);
        }
        // Digits only, so this is ASCII; parse with the sign to reach i64::MIN.
        let text = std::str::from_utf8(text).map_err(|_| invalid.clone())?;
        text.parse().map_err(|_| invalid)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let offset = self.pos;
        let digits = self.digits_until(b':')?;
        let invalid = DecodeError::InvalidLength { offset };
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
            || digits.len() > 6
        {
            return Err(invalid);
        }
        let len = digits
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        let end = self.pos.checked_add(len).ok_or(invalid)?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd)?;
        self.pos = end;
        Ok(bytes.to_vec())
    }
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bytes(b) => encode_bytes(b, out),
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::List(list) => {
            out.push(b'l');
            for item in list {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(dict) => {
            out.push(b'd');
            for (key, value) in dict.iter() {
                encode_bytes(key, out);
                encode(value, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_ping() {
        let value = decode(b"d7:command4:pinge").expect("valid");
        let dict = value.as_dict().expect("dict");
        assert_eq!(dict.get("command").and_then(Value::as_str), Some("ping"));
        assert_eq!(value.to_bytes(), b"d7:command4:pinge");
    }

    #[test]
    fn round_trips_nested_values_in_wire_order() {
        let input = b"d4:zetai-42e5:alphal0:i0ed1:ki9223372036854775807eee3:sdp3:v=0e";
        let value = decode(input).expect("valid");
        assert_eq!(value.to_bytes(), input);
        let dict = value.as_dict().expect("dict");
        assert_eq!(
            dict.keys().collect::<Vec<_>>(),
            [&b"zeta"[..], b"alpha", b"sdp"]
        );
    }

    #[test]
    fn rejects_malformed_input_with_typed_errors() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", DecodeError::UnexpectedEnd),
            (b"d7:command", DecodeError::UnexpectedEnd),
            (b"d7:command4:ping", DecodeError::UnexpectedEnd),
            (b"i01e", DecodeError::InvalidInteger { offset: 0 }),
            (b"i-0e", DecodeError::InvalidInteger { offset: 0 }),
            (b"ie", DecodeError::InvalidInteger { offset: 0 }),
            (
                b"i9223372036854775808e",
                DecodeError::InvalidInteger { offset: 0 },
            ),
            (b"i1x2e", DecodeError::InvalidInteger { offset: 0 }),
            (b"01:a", DecodeError::InvalidLength { offset: 0 }),
            (b"5:ab", DecodeError::UnexpectedEnd),
            (b"9999999:a", DecodeError::InvalidLength { offset: 0 }),
            (b"di1ei2ee", DecodeError::KeyNotString { offset: 1 }),
            (b"d1:ai1e1:ai2ee", DecodeError::DuplicateKey { offset: 7 }),
            (b"i1ei2e", DecodeError::TrailingData { offset: 3 }),
            (
                b"x",
                DecodeError::UnexpectedByte {
                    offset: 0,
                    byte: b'x',
                },
            ),
        ];
        for (input, error) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    }

    #[test]
    fn caps_nesting_and_size() {
        let deep: Vec<u8> = std::iter::repeat_n(b'l', MAX_DEPTH + 1)
            .chain(std::iter::repeat_n(b'e', MAX_DEPTH + 1))
            .collect();
        assert_eq!(
            decode(&deep),
            Err(DecodeError::TooDeep { limit: MAX_DEPTH })
        );
        let ok: Vec<u8> = std::iter::repeat_n(b'l', MAX_DEPTH)
            .chain(std::iter::repeat_n(b'e', MAX_DEPTH))
            .collect();
        assert!(decode(&ok).is_ok());
        // A datagram full of opening brackets cannot exhaust the stack either.
        assert!(decode(&vec![b'l'; MAX_INPUT]).is_err());
        assert_eq!(
            decode(&vec![b'l'; MAX_INPUT + 1]),
            Err(DecodeError::TooLarge { limit: MAX_INPUT })
        );
    }

    #[test]
    fn dict_insert_replaces_in_place() {
        let mut dict = Dict::new();
        dict.insert("a", 1i64);
        dict.insert("b", "x");
        dict.insert("a", 2i64);
        assert_eq!(Value::Dict(dict).to_bytes(), b"d1:ai2e1:b1:xe");
    }
}
