//! Tensors as the gateway carries them between the v2 codec and the engine: a name, a shape and
//! typed, row-major data. One variant per KServe v2 datatype; no conversion happens in between.

use std::fmt;

use half::f16;

/// A KServe v2 datatype. `BYTES` maps to ONNX `string` (UTF-8 only, as ONNX Runtime requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

/// Every datatype, in the order the v2 protocol lists them.
pub const ALL_DATATYPES: [DataType; 13] = [
    DataType::Bool,
    DataType::Uint8,
    DataType::Uint16,
    DataType::Uint32,
    DataType::Uint64,
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::Fp16,
    DataType::Fp32,
    DataType::Fp64,
    DataType::Bytes,
];

impl DataType {
    /// The protocol's name: `"FP32"`, `"INT64"`, `"BYTES"`, …
    pub fn as_v2(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp16 => "FP16",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name (exact, upper case as the protocol spells it).
    pub fn from_v2(name: &str) -> Option<Self> {
        ALL_DATATYPES.into_iter().find(|d| d.as_v2() == name)
    }

    /// Bytes per element in the binary tensor extension; `None` for `BYTES` (length-prefixed).
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            Self::Bool | Self::Uint8 | Self::Int8 => 1,
            Self::Uint16 | Self::Int16 | Self::Fp16 => 2,
            Self::Uint32 | Self::Int32 | Self::Fp32 => 4,
            Self::Uint64 | Self::Int64 | Self::Fp64 => 8,
            Self::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_v2())
    }
}

/// Typed, flat, row-major tensor contents.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    /// Each element is one byte string (UTF-8 when it goes to or comes from ONNX Runtime).
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the vector inside any variant, binding it as `$v`.
macro_rules! with_vec {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Applies `$body` to the vectors of two values of the same variant; `$else` when they differ.
macro_rules! with_vec_pair {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr, else $else:expr) => {
        match ($a, $b) {
            (TensorData::Bool($x), TensorData::Bool($y)) => $body,
            (TensorData::Uint8($x), TensorData::Uint8($y)) => $body,
            (TensorData::Uint16($x), TensorData::Uint16($y)) => $body,
            (TensorData::Uint32($x), TensorData::Uint32($y)) => $body,
            (TensorData::Uint64($x), TensorData::Uint64($y)) => $body,
            (TensorData::Int8($x), TensorData::Int8($y)) => $body,
            (TensorData::Int16($x), TensorData::Int16($y)) => $body,
            (TensorData::Int32($x), TensorData::Int32($y)) => $body,
            (TensorData::Int64($x), TensorData::Int64($y)) => $body,
            (TensorData::Fp16($x), TensorData::Fp16($y)) => $body,
            (TensorData::Fp32($x), TensorData::Fp32($y)) => $body,
            (TensorData::Fp64($x), TensorData::Fp64($y)) => $body,
            (TensorData::Bytes($x), TensorData::Bytes($y)) => $body,
            _ => $else,
        }
    };
}

/// Index of the largest value (the first of equals); 0 for an empty row.
pub fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &x)| if x > row[best] { i } else { best })
}

impl TensorData {
    /// The elements as `f64` when the datatype is floating point (FP16, FP32, FP64).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            TensorData::Fp16(v) => v.iter().map(|x| f64::from(x.to_f32())).collect(),
            TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::Fp64(v) => v.clone(),
            _ => return None,
        })
    }

    /// The datatype of this data.
    pub fn datatype(&self) -> DataType {
        match self {
            Self::Bool(_) => DataType::Bool,
            Self::Uint8(_) => DataType::Uint8,
            Self::Uint16(_) => DataType::Uint16,
            Self::Uint32(_) => DataType::Uint32,
            Self::Uint64(_) => DataType::Uint64,
            Self::Int8(_) => DataType::Int8,
            Self::Int16(_) => DataType::Int16,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::Fp16(_) => DataType::Fp16,
            Self::Fp32(_) => DataType::Fp32,
            Self::Fp64(_) => DataType::Fp64,
            Self::Bytes(_) => DataType::Bytes,
        }
    }

    /// An empty vector of `datatype` with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> Self {
        match datatype {
            DataType::Bool => Self::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => Self::Uint8(Vec::with_capacity(capacity)),
            DataType::Uint16 => Self::Uint16(Vec::with_capacity(capacity)),
            DataType::Uint32 => Self::Uint32(Vec::with_capacity(capacity)),
            DataType::Uint64 => Self::Uint64(Vec::with_capacity(capacity)),
            DataType::Int8 => Self::Int8(Vec::with_capacity(capacity)),
            DataType::Int16 => Self::Int16(Vec::with_capacity(capacity)),
            DataType::Int32 => Self::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Vec::with_capacity(capacity)),
            DataType::Fp16 => Self::Fp16(Vec::with_capacity(capacity)),
            DataType::Fp32 => Self::Fp32(Vec::with_capacity(capacity)),
            DataType::Fp64 => Self::Fp64(Vec::with_capacity(capacity)),
            DataType::Bytes => Self::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// A zero (false, empty string) filled vector, used for warm-up runs.
    pub fn zeros(datatype: DataType, len: usize) -> Self {
        match datatype {
            DataType::Bool => Self::Bool(vec![false; len]),
            DataType::Uint8 => Self::Uint8(vec![0; len]),
            DataType::Uint16 => Self::Uint16(vec![0; len]),
            DataType::Uint32 => Self::Uint32(vec![0; len]),
            DataType::Uint64 => Self::Uint64(vec![0; len]),
            DataType::Int8 => Self::Int8(vec![0; len]),
            DataType::Int16 => Self::Int16(vec![0; len]),
            DataType::Int32 => Self::Int32(vec![0; len]),
            DataType::Int64 => Self::Int64(vec![0; len]),
            DataType::Fp16 => Self::Fp16(vec![f16::ZERO; len]),
            DataType::Fp32 => Self::Fp32(vec![0.0; len]),
            DataType::Fp64 => Self::Fp64(vec![0.0; len]),
            DataType::Bytes => Self::Bytes(vec![Vec::new(); len]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s elements. Returns false (and appends nothing) when the datatypes differ.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        with_vec_pair!(self, other, a, b => { a.extend_from_slice(b); true }, else false)
    }

    /// A copy of the elements in `start..end`. The caller keeps the range in bounds.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            Self::Bool(v) => Self::Bool(v[start..end].to_vec()),
            Self::Uint8(v) => Self::Uint8(v[start..end].to_vec()),
            Self::Uint16(v) => Self::Uint16(v[start..end].to_vec()),
            Self::Uint32(v) => Self::Uint32(v[start..end].to_vec()),
            Self::Uint64(v) => Self::Uint64(v[start..end].to_vec()),
            Self::Int8(v) => Self::Int8(v[start..end].to_vec()),
            Self::Int16(v) => Self::Int16(v[start..end].to_vec()),
            Self::Int32(v) => Self::Int32(v[start..end].to_vec()),
            Self::Int64(v) => Self::Int64(v[start..end].to_vec()),
            Self::Fp16(v) => Self::Fp16(v[start..end].to_vec()),
            Self::Fp32(v) => Self::Fp32(v[start..end].to_vec()),
            Self::Fp64(v) => Self::Fp64(v[start..end].to_vec()),
            Self::Bytes(v) => Self::Bytes(v[start..end].to_vec()),
        }
    }
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Concrete dimensions; every one is ≥ 0 and their product equals `data.len()`.
    pub shape: Vec<i64>,
    pub data: TensorData,
}

impl Tensor {
    /// The datatype of the tensor's data.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }
}

/// The number of elements a shape holds: `None` when a dimension is negative or the product
/// overflows `usize`. Callers compare this with a limit before allocating anything.
pub fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).ok()?;
        acc.checked_mul(d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip() {
        for dt in ALL_DATATYPES {
            assert_eq!(DataType::from_v2(dt.as_v2()), Some(dt));
        }
        assert_eq!(DataType::from_v2("fp32"), None);
        assert_eq!(DataType::from_v2("FLOAT"), None);
    }

    #[test]
    fn element_count_refuses_negative_and_overflow() {
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[0, 5]), Some(0));
        assert_eq!(element_count(&[-1, 5]), None);
        assert_eq!(element_count(&[i64::MAX, i64::MAX]), None);
        assert_eq!(element_count(&[1 << 40, 1 << 40]), None);
    }

    #[test]
    fn extend_and_slice() {
        let mut a = TensorData::Fp32(vec![1.0, 2.0]);
        assert!(a.extend_from(&TensorData::Fp32(vec![3.0])));
        assert!(!a.extend_from(&TensorData::Int32(vec![4])));
        assert_eq!(a.len(), 3);
        assert_eq!(a.slice(1, 3), TensorData::Fp32(vec![2.0, 3.0]));
    }
}
