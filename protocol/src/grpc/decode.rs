//! `ModelInferRequest` → `InferRequest`: typed contents or `raw_input_contents`, every size
//! checked against what the message carries before anything is allocated.

use std::collections::HashSet;

use serde_json::{Map, Number, Value};

use super::inference::infer_parameter::ParameterChoice;
use super::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::inference::{InferParameter, InferTensorContents, ModelInferRequest};
use crate::tensor::{DataType, Tensor, TensorData, element_count};
use crate::v2::decode::{self as v2, InferRequest, RequestedOutput, decode_binary_data};

/// A decoded request, and how its answer goes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub request: InferRequest,
    /// The inputs came in `raw_input_contents`: the outputs go back in `raw_output_contents`
    /// (what Triton does, and what tritonclient reads first).
    pub raw_output: bool,
}

/// Why a `ModelInferRequest` could not be decoded. Every variant is the client's fault
/// (INVALID_ARGUMENT).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error(
        "input '{input}': unknown datatype '{datatype}' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)"
    )]
    UnknownDatatype { input: String, datatype: String },
    #[error(
        "input '{input}': shape {shape:?} is invalid: dimensions must be non-negative and their product must fit in memory"
    )]
    BadShape { input: String, shape: Vec<i64> },
    #[error("input '{0}' appears more than once")]
    DuplicateInput(String),
    #[error("output '{0}' is requested more than once")]
    DuplicateOutput(String),
    #[error("raw_input_contents has {raw} entries but the request has {inputs} inputs: give one per input, in order")]
    RawCount { inputs: usize, raw: usize },
    #[error("input '{input}' has both contents and raw_input_contents")]
    BothContents { input: String },
    #[error("input '{input}': raw contents are {size} bytes but shape {shape:?} of {datatype} needs {expected}")]
    RawSize { input: String, size: usize, shape: Vec<i64>, datatype: DataType, expected: usize },
    #[error(
        "input '{input}': shape {shape:?} needs {expected} BYTES elements (at least {min_bytes} bytes with their 4-byte length prefixes) but the raw contents are {size} bytes"
    )]
    RawBytesTooShort { input: String, shape: Vec<i64>, expected: usize, min_bytes: u128, size: usize },
    #[error("input '{input}': {datatype} data goes in {expected}, not {found}")]
    WrongContents { input: String, datatype: DataType, expected: &'static str, found: &'static str },
    #[error("input '{input}': {datatype} has no typed contents field; send it in raw_input_contents")]
    NoTypedContents { input: String, datatype: DataType },
    #[error("input '{input}': shape {shape:?} needs {expected} elements but {field} has {actual}")]
    ElementCount { input: String, shape: Vec<i64>, field: &'static str, expected: usize, actual: usize },
    #[error("input '{input}': element {index} ({value}) is out of range for {datatype}")]
    OutOfRange { input: String, index: usize, value: i64, datatype: DataType },
    #[error("input '{input}': parameter '{parameter}' is not supported (no shared memory here)")]
    UnsupportedInputParameter { input: String, parameter: String },
    #[error("output '{output}': parameter '{parameter}' is not supported")]
    UnsupportedOutputParameter { output: String, parameter: String },
    #[error("parameter '{name}' must be a {expected}")]
    BadParameter { name: String, expected: &'static str },
    /// The raw contents of an input failed the binary tensor decoder (a BOOL byte, a BYTES
    /// element's length prefix).
    #[error(transparent)]
    Tensor(v2::DecodeError),
}

/// The version a request names: `""` means none (routing decides); otherwise a number ≥ 1.
/// `Err` carries the text for the NOT_FOUND message.
pub fn parse_version(text: &str) -> Result<Option<u32>, &str> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u32>().ok().filter(|v| *v >= 1).map(Some).ok_or(text)
}

/// Converts a decoded `ModelInferRequest` (its `model_name` and `model_version` are read by the
/// caller, who routes on them) into the pipeline's request. Moves the tensor data out of the
/// message; copies only when a typed field is wider than the datatype (INT8 in `int_contents`)
/// or the data came raw.
pub fn decode_request(msg: ModelInferRequest) -> Result<Decoded, DecodeError> {
    let raw_output = !msg.raw_input_contents.is_empty();
    if raw_output && msg.raw_input_contents.len() != msg.inputs.len() {
        return Err(DecodeError::RawCount { inputs: msg.inputs.len(), raw: msg.raw_input_contents.len() });
    }
    let mut seen = HashSet::with_capacity(msg.inputs.len());
    let mut raw = msg.raw_input_contents.into_iter();
    let mut inputs = Vec::with_capacity(msg.inputs.len());
    for input in msg.inputs {
        if !seen.insert(input.name.clone()) {
            return Err(DecodeError::DuplicateInput(input.name));
        }
        inputs.push(decode_input(input, raw.next())?);
    }
    let outputs = if msg.outputs.is_empty() { None } else { Some(requested_outputs(msg.outputs)?) };
    let parameters = parameters(msg.parameters)?;
    let id = if msg.id.is_empty() { None } else { Some(msg.id) };
    let request = InferRequest { id, inputs, outputs, binary_data_output: false, parameters };
    Ok(Decoded { request, raw_output })
}

fn decode_input(input: InferInputTensor, raw: Option<prost::bytes::Bytes>) -> Result<Tensor, DecodeError> {
    let InferInputTensor { name, datatype, shape, parameters, contents } = input;
    if let Some(parameter) = parameters.keys().find(|k| k.starts_with("shared_memory")) {
        return Err(DecodeError::UnsupportedInputParameter { input: name, parameter: parameter.clone() });
    }
    let Some(dt) = DataType::from_v2(&datatype) else {
        return Err(DecodeError::UnknownDatatype { input: name, datatype });
    };
    let Some(count) = element_count(&shape) else {
        return Err(DecodeError::BadShape { input: name, shape });
    };
    let data = match raw {
        Some(bytes) => {
            if contents.as_ref().is_some_and(|c| populated(c).is_some()) {
                return Err(DecodeError::BothContents { input: name });
            }
            decode_raw(&name, &shape, dt, count, &bytes)?
        }
        None => decode_typed(&name, &shape, dt, count, contents.unwrap_or_default())?,
    };
    Ok(Tensor { name, shape, data })
}

/// Raw contents: the binary tensor extension's encoding, its errors named for gRPC.
fn decode_raw(name: &str, shape: &[i64], dt: DataType, count: usize, bytes: &[u8]) -> Result<TensorData, DecodeError> {
    decode_binary_data(name, shape, dt, count, bytes).map_err(|e| match e {
        v2::DecodeError::BinarySizeMismatch { input, size, shape, datatype, expected } => {
            DecodeError::RawSize { input, size, shape, datatype, expected }
        }
        v2::DecodeError::BytesTooShort { input, shape, expected, min_bytes, size } => {
            DecodeError::RawBytesTooShort { input, shape, expected, min_bytes, size }
        }
        v2::DecodeError::BadShape { input, shape } => DecodeError::BadShape { input, shape },
        other => DecodeError::Tensor(other),
    })
}

/// The first non-empty field of `contents`, by its protobuf name.
fn populated(c: &InferTensorContents) -> Option<&'static str> {
    [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ]
    .into_iter()
    .find(|(_, n)| *n > 0)
    .map(|(field, _)| field)
}

/// The contents field that carries `dt`, as Triton reads it.
fn field_of(dt: DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        DataType::Fp16 => return None,
    })
}

fn decode_typed(
    name: &str,
    shape: &[i64],
    dt: DataType,
    count: usize,
    mut c: InferTensorContents,
) -> Result<TensorData, DecodeError> {
    let found = populated(&c);
    let Some(field) = field_of(dt) else {
        // FP16: only raw contents can carry it (an empty tensor needs no field at all).
        return match (found, count) {
            (None, 0) => Ok(TensorData::Fp16(Vec::new())),
            _ => Err(DecodeError::NoTypedContents { input: name.to_owned(), datatype: dt }),
        };
    };
    if let Some(found) = found.filter(|f| *f != field) {
        return Err(DecodeError::WrongContents { input: name.to_owned(), datatype: dt, expected: field, found });
    }
    let actual = match dt {
        DataType::Bool => c.bool_contents.len(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => c.int_contents.len(),
        DataType::Int64 => c.int64_contents.len(),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => c.uint_contents.len(),
        DataType::Uint64 => c.uint64_contents.len(),
        DataType::Fp32 => c.fp32_contents.len(),
        DataType::Fp64 => c.fp64_contents.len(),
        DataType::Bytes | DataType::Fp16 => c.bytes_contents.len(),
    };
    if actual != count {
        return Err(DecodeError::ElementCount {
            input: name.to_owned(),
            shape: shape.to_vec(),
            field,
            expected: count,
            actual,
        });
    }
    // Narrowing copies check each element; the rest move the message's vector.
    macro_rules! narrow {
        ($variant:ident, $ty:ty, $from:expr) => {{
            let mut out = Vec::with_capacity(count);
            for (index, &x) in $from.iter().enumerate() {
                let v = <$ty>::try_from(x).map_err(|_| DecodeError::OutOfRange {
                    input: name.to_owned(),
                    index,
                    value: i64::from(x),
                    datatype: dt,
                })?;
                out.push(v);
            }
            TensorData::$variant(out)
        }};
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(std::mem::take(&mut c.bool_contents)),
        DataType::Int8 => narrow!(Int8, i8, c.int_contents),
        DataType::Int16 => narrow!(Int16, i16, c.int_contents),
        DataType::Int32 => TensorData::Int32(std::mem::take(&mut c.int_contents)),
        DataType::Int64 => TensorData::Int64(std::mem::take(&mut c.int64_contents)),
        DataType::Uint8 => narrow!(Uint8, u8, c.uint_contents),
        DataType::Uint16 => narrow!(Uint16, u16, c.uint_contents),
        DataType::Uint32 => TensorData::Uint32(std::mem::take(&mut c.uint_contents)),
        DataType::Uint64 => TensorData::Uint64(std::mem::take(&mut c.uint64_contents)),
        DataType::Fp32 => TensorData::Fp32(std::mem::take(&mut c.fp32_contents)),
        DataType::Fp64 => TensorData::Fp64(std::mem::take(&mut c.fp64_contents)),
        DataType::Bytes | DataType::Fp16 => TensorData::Bytes(std::mem::take(&mut c.bytes_contents)),
    })
}

fn requested_outputs(list: Vec<InferRequestedOutputTensor>) -> Result<Vec<RequestedOutput>, DecodeError> {
    let mut out: Vec<RequestedOutput> = Vec::with_capacity(list.len());
    for o in list {
        // `binary_data` is the REST extension's word; over gRPC every output is binary anyway.
        if let Some(parameter) = o.parameters.keys().find(|k| k.as_str() != "binary_data") {
            return Err(DecodeError::UnsupportedOutputParameter { output: o.name, parameter: parameter.clone() });
        }
        if out.iter().any(|r| r.name == o.name) {
            return Err(DecodeError::DuplicateOutput(o.name));
        }
        out.push(RequestedOutput { name: o.name, binary_data: None });
    }
    Ok(out)
}

/// The request's parameters as the JSON map the pipeline reads (`timeout`, …).
fn parameters(map: std::collections::HashMap<String, InferParameter>) -> Result<Map<String, Value>, DecodeError> {
    let mut out = Map::new();
    for (name, p) in map {
        let value = match p.parameter_choice {
            None => Value::Null,
            Some(ParameterChoice::BoolParam(b)) => Value::Bool(b),
            Some(ParameterChoice::Int64Param(i)) => Value::from(i),
            Some(ParameterChoice::Uint64Param(u)) => Value::from(u),
            Some(ParameterChoice::StringParam(s)) => Value::String(s),
            Some(ParameterChoice::DoubleParam(d)) => match Number::from_f64(d) {
                Some(n) => Value::Number(n),
                None => return Err(DecodeError::BadParameter { name, expected: "finite number" }),
            },
        };
        out.insert(name, value);
    }
    Ok(out)
}
