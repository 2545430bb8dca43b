//! Decoder for v2 inference requests: the JSON body, and the binary tensor extension (a JSON
//! header of `Inference-Header-Content-Length` bytes followed by raw tensor bytes).
//! Every size is checked against the body before anything is allocated.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use half::f16;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json_data::{self, Leaf, Scan};
use crate::tensor::{DataType, Tensor, TensorData, element_count};

/// A decoded `POST …/infer` request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The request's `id`, echoed in the response.
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, in order; `None` means all of the model's outputs.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// `parameters.binary_data_output`: the default for outputs that do not say.
    pub binary_data_output: bool,
    /// Request-level parameters, kept for features that read them (e.g. `timeout`).
    pub parameters: Map<String, Value>,
}

/// One entry of the request's `outputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// `parameters.binary_data` when given.
    pub binary_data: Option<bool>,
}

/// Why a request could not be decoded. Every variant is the client's fault (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("malformed request JSON: {0}")]
    Json(String),
    #[error("Inference-Header-Content-Length must be a non-negative integer, got {0:?}")]
    BadHeaderLength(String),
    #[error("Inference-Header-Content-Length is {header} but the body has only {body} bytes")]
    /// `header` as the client wrote it: a number of digits too long for `usize` is still a length.
    HeaderLengthTooLarge { header: String, body: usize },
    #[error(
        "input '{input}': unknown datatype '{datatype}' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)"
    )]
    UnknownDatatype { input: String, datatype: String },
    #[error(
        "input '{input}': shape {shape:?} is invalid: dimensions must be non-negative and their product must fit in memory"
    )]
    BadShape { input: String, shape: Vec<i64> },
    #[error("input '{input}': shape {shape:?} needs {expected} elements but {actual} were given")]
    ElementCount { input: String, shape: Vec<i64>, expected: usize, actual: usize },
    #[error("input '{input}': element {index}: {reason}")]
    BadElement { input: String, index: usize, reason: String },
    #[error("input '{input}' has no 'data' and no 'binary_data_size' parameter")]
    NoData { input: String },
    #[error("input '{input}' has both 'data' and a 'binary_data_size' parameter")]
    BothData { input: String },
    #[error("input '{input}': binary_data_size must be a non-negative integer")]
    BadBinarySize { input: String },
    #[error("input '{input}': binary_data_size is {size} but shape {shape:?} of {datatype} needs {expected} bytes")]
    BinarySizeMismatch { input: String, size: usize, shape: Vec<i64>, datatype: DataType, expected: usize },
    #[error("input '{input}': binary_data_size {size} runs past the end of the body ({available} bytes left)")]
    BinaryTooShort { input: String, size: usize, available: usize },
    #[error("input '{input}': BYTES element {index}: {reason}")]
    BadBytesElement { input: String, index: usize, reason: String },
    #[error(
        "input '{input}': shape {shape:?} needs {expected} BYTES elements (at least {min_bytes} bytes with their 4-byte length prefixes) but binary_data_size is {size}"
    )]
    BytesTooShort { input: String, shape: Vec<i64>, expected: usize, min_bytes: u128, size: usize },
    #[error("the body has {0} bytes of binary data that no input claims")]
    TrailingBinary(usize),
    #[error("input '{0}' appears more than once")]
    DuplicateInput(String),
    #[error("output '{0}' is requested more than once")]
    DuplicateOutput(String),
    #[error("output '{output}': parameter '{parameter}' is not supported")]
    UnsupportedOutputParameter { output: String, parameter: String },
    #[error("parameter '{name}' must be a {expected}")]
    BadParameter { name: String, expected: &'static str },
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(borrow)]
    inputs: Vec<Object<RawInput<'a>>>,
    #[serde(default)]
    outputs: Option<Vec<Object<RawOutput>>>,
}

#[derive(Deserialize)]
struct RawInput<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// The data as it stands in the body (checked to be JSON, not yet parsed): `datatype` may
    /// come after it, and knowing the type first lets the elements go straight into a typed
    /// vector (`typed_json_data`) instead of through a `Value` per element.
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct RawOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// A `T` read from a JSON object only. serde's derived structs also accept an array of their
/// fields in declaration order, so `[null, null, [...]]` would be a request and
/// `["x", [1], "FP32", null, [1]]` an input; no v2 client means that, and the error for an array
/// should say that an object was expected.
pub(super) struct Object<T>(T);

/// What an [`Object`] is, for the error when something else is sent.
trait Expected {
    const EXPECTED: &'static str;
}

impl Expected for RawRequest<'_> {
    const EXPECTED: &'static str = "an inference request (a JSON object)";
}

impl Expected for RawInput<'_> {
    const EXPECTED: &'static str = "an input tensor (a JSON object with name, shape, datatype and data)";
}

impl Expected for RawOutput {
    const EXPECTED: &'static str = "a requested output (a JSON object with a name)";
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Expected> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTED)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// Decodes a request body. `header_length` is the raw `Inference-Header-Content-Length` value
/// when the client sent one (binary extension); without it the whole body is JSON.
pub fn decode_request(body: &[u8], header_length: Option<&[u8]>) -> Result<InferRequest, DecodeError> {
    if header_length.is_none()
        && let Some(request) = super::request_scan::scan_request(body)
    {
        return Ok(request);
    }
    decode_general(body, header_length)
}

/// Every request, by serde_json: what [`super::request_scan`] leaves to it, and the reference
/// that reader must agree with.
pub(super) fn decode_general(body: &[u8], header_length: Option<&[u8]>) -> Result<InferRequest, DecodeError> {
    let (json, mut binary) = split_body(body, header_length)?;
    let Object(raw) =
        serde_json::from_slice::<Object<RawRequest>>(json).map_err(|e| DecodeError::Json(e.to_string()))?;
    let (parameters, binary_data_output) = request_parameters(raw.parameters)?;

    // Names seen so far in a set, not by scanning: a body can hold many thousands of entries.
    let mut seen: HashSet<String> = HashSet::with_capacity(raw.inputs.len());
    let mut inputs: Vec<Tensor> = Vec::with_capacity(raw.inputs.len());
    for Object(input) in raw.inputs {
        if !seen.insert(input.name.clone()) {
            return Err(DecodeError::DuplicateInput(input.name));
        }
        let tensor = decode_input(input, &mut binary)?;
        inputs.push(tensor);
    }
    if !binary.is_empty() {
        return Err(DecodeError::TrailingBinary(binary.len()));
    }

    let outputs = raw.outputs.map(requested_outputs).transpose()?;

    let id = match raw.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    Ok(InferRequest { id, inputs, outputs, binary_data_output, parameters })
}

/// The JSON header and the binary data after it (none without `header_length`).
fn split_body<'b>(body: &'b [u8], header_length: Option<&[u8]>) -> Result<(&'b [u8], &'b [u8]), DecodeError> {
    let Some(raw) = header_length else { return Ok((body, &body[body.len()..])) };
    let text = std::str::from_utf8(raw).unwrap_or("").trim();
    let too_large = || DecodeError::HeaderLengthTooLarge { header: text.to_owned(), body: body.len() };
    let len: usize = match text.parse() {
        Ok(len) => len,
        // All digits but past usize: a length, and larger than any body.
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => return Err(too_large()),
        Err(_) => return Err(DecodeError::BadHeaderLength(String::from_utf8_lossy(raw).into_owned())),
    };
    if len > body.len() {
        return Err(too_large());
    }
    Ok(body.split_at(len))
}

/// A decoded v2 inference *response*: what a remote version's upstream answered.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResponse {
    pub model_name: String,
    /// The version the server says answered (v2 writes it as a string; a number is taken too).
    pub model_version: Option<String>,
    pub id: Option<String>,
    pub outputs: Vec<Tensor>,
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    model_name: String,
    #[serde(default)]
    model_version: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(borrow)]
    outputs: Vec<Object<RawInput<'a>>>,
}

impl Expected for RawResponse<'_> {
    const EXPECTED: &'static str = "an inference response (a JSON object)";
}

/// Decodes a v2 inference response body, JSON or binary tensors, with the checks a request gets
/// (sizes against the body, names unique, element counts against shapes). Errors name the
/// tensor as an `input`: the wording is the request's, the caller says whose body it was.
pub fn decode_response(body: &[u8], header_length: Option<&[u8]>) -> Result<InferResponse, DecodeError> {
    let (json, mut binary) = split_body(body, header_length)?;
    let Object(raw) =
        serde_json::from_slice::<Object<RawResponse>>(json).map_err(|e| DecodeError::Json(e.to_string()))?;
    let mut seen: HashSet<String> = HashSet::with_capacity(raw.outputs.len());
    let mut outputs = Vec::with_capacity(raw.outputs.len());
    for Object(output) in raw.outputs {
        if !seen.insert(output.name.clone()) {
            return Err(DecodeError::DuplicateInput(output.name));
        }
        outputs.push(decode_input(output, &mut binary)?);
    }
    if !binary.is_empty() {
        return Err(DecodeError::TrailingBinary(binary.len()));
    }
    let text = |v: Option<Value>| match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    Ok(InferResponse { model_name: raw.model_name, model_version: text(raw.model_version), id: text(raw.id), outputs })
}

/// A request's `parameters` (none: empty) and the `binary_data_output` they set.
pub(super) fn request_parameters(
    parameters: Option<Map<String, Value>>,
) -> Result<(Map<String, Value>, bool), DecodeError> {
    let parameters = parameters.unwrap_or_default();
    let binary_data_output = bool_param(&parameters, "binary_data_output")?.unwrap_or(false);
    Ok((parameters, binary_data_output))
}

/// A request's `outputs`, checked: names unique, `binary_data` a boolean, no classification.
pub(super) fn requested_outputs(list: Vec<Object<RawOutput>>) -> Result<Vec<RequestedOutput>, DecodeError> {
    let mut seen: HashSet<String> = HashSet::with_capacity(list.len());
    let mut outputs: Vec<RequestedOutput> = Vec::with_capacity(list.len());
    for Object(out) in list {
        if !seen.insert(out.name.clone()) {
            return Err(DecodeError::DuplicateOutput(out.name));
        }
        let params = out.parameters.unwrap_or_default();
        if let Some(unsupported) = params.keys().find(|k| k.as_str() == "classification") {
            return Err(DecodeError::UnsupportedOutputParameter { output: out.name, parameter: unsupported.clone() });
        }
        outputs.push(RequestedOutput { binary_data: bool_param(&params, "binary_data")?, name: out.name });
    }
    Ok(outputs)
}

fn bool_param(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, DecodeError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(DecodeError::BadParameter { name: name.to_owned(), expected: "boolean" }),
    }
}

fn decode_input(input: RawInput<'_>, binary: &mut &[u8]) -> Result<Tensor, DecodeError> {
    let Some(datatype) = DataType::from_v2(&input.datatype) else {
        return Err(DecodeError::UnknownDatatype { input: input.name, datatype: input.datatype });
    };
    let Some(count) = element_count(&input.shape) else {
        return Err(DecodeError::BadShape { input: input.name, shape: input.shape });
    };
    let binary_size = match input.parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| DecodeError::BadBinarySize { input: input.name.clone() })?,
        ),
    };
    let data = match (input.data, binary_size) {
        (Some(_), Some(_)) => return Err(DecodeError::BothData { input: input.name }),
        (None, None) => return Err(DecodeError::NoData { input: input.name }),
        (Some(json), None) => match typed_json_data(datatype, count, &mut DataText::Raw(json.get())) {
            Some(data) => data,
            // Not as the type wants it: the general path says exactly what is wrong.
            None => {
                let json: Value = serde_json::from_str(json.get()).map_err(|e| DecodeError::Json(e.to_string()))?;
                decode_json_data(&input.name, &input.shape, datatype, count, &json)?
            }
        },
        (None, Some(size)) => {
            if size > binary.len() {
                return Err(DecodeError::BinaryTooShort { input: input.name, size, available: binary.len() });
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            decode_binary_data(&input.name, &input.shape, datatype, count, bytes)?
        }
    };
    Ok(Tensor { name: input.name, shape: input.shape, data })
}

/// The fast path for JSON data: reads `raw` (a JSON array, nested or flat) straight into a
/// vector of `datatype`, with no `Value` per element. `None` when the data is not exactly
/// `expected` elements each valid for the type (or is BYTES, which stays on the general path):
/// the caller then decodes it again with `decode_json_data`, which finds and reports the
/// problem. It accepts exactly what `decode_json_data` accepts, and never holds more than
/// `expected` elements (nor reserves more than the text could hold).
pub(super) fn typed_json_data(datatype: DataType, expected: usize, raw: &mut DataText<'_>) -> Option<TensorData> {
    fn float(leaf: Leaf) -> Option<f64> {
        match leaf {
            Leaf::Int(n) => Some(n as f64),
            Leaf::Uint(n) => Some(n as f64),
            Leaf::Float(x) => Some(x),
            Leaf::Bool(_) => None,
        }
    }
    fn int<T: TryFrom<i64> + TryFrom<u64>>(leaf: Leaf) -> Option<T> {
        match leaf {
            Leaf::Int(n) => T::try_from(n).ok(),
            Leaf::Uint(n) => T::try_from(n).ok(),
            Leaf::Float(_) | Leaf::Bool(_) => None,
        }
    }
    Some(match datatype {
        DataType::Bool => TensorData::Bool(collect_leaves(raw, expected, |leaf| match leaf {
            Leaf::Bool(b) => Some(b),
            _ => None,
        })?),
        DataType::Uint8 => TensorData::Uint8(collect_leaves(raw, expected, int::<u8>)?),
        DataType::Uint16 => TensorData::Uint16(collect_leaves(raw, expected, int::<u16>)?),
        DataType::Uint32 => TensorData::Uint32(collect_leaves(raw, expected, int::<u32>)?),
        DataType::Uint64 => TensorData::Uint64(collect_leaves(raw, expected, int::<u64>)?),
        DataType::Int8 => TensorData::Int8(collect_leaves(raw, expected, int::<i8>)?),
        DataType::Int16 => TensorData::Int16(collect_leaves(raw, expected, int::<i16>)?),
        DataType::Int32 => TensorData::Int32(collect_leaves(raw, expected, int::<i32>)?),
        DataType::Int64 => TensorData::Int64(collect_leaves(raw, expected, int::<i64>)?),
        // JSON numbers are finite; one past the type's range would reach the model as ±inf.
        DataType::Fp16 => TensorData::Fp16(collect_leaves(raw, expected, |leaf| {
            float(leaf).map(f16::from_f64).filter(|y| !y.is_infinite())
        })?),
        DataType::Fp32 => TensorData::Fp32(collect_leaves(raw, expected, |leaf| {
            float(leaf).map(|x| x as f32).filter(|y| !y.is_infinite())
        })?),
        DataType::Fp64 => TensorData::Fp64(collect_leaves(raw, expected, float)?),
        DataType::Bytes => return None,
    })
}

/// The text [`typed_json_data`] reads a tensor's `data` from.
#[derive(Debug)]
pub(super) enum DataText<'a> {
    /// The whole value, found beforehand (a `RawValue`).
    Raw(&'a str),
    /// The value starting at `start` in `body`, followed by the rest of the body; once read,
    /// `end` is the index past it and the whitespace after it. Only `json_data::scan_value`
    /// reads it: what that leaves to serde_json is left to the caller.
    At { body: &'a [u8], start: usize, end: usize },
    /// Leaves read before the datatype was known.
    Leaves(&'a [Leaf]),
}

/// The leaves of `text`, each converted, when there are exactly `expected` and every one
/// converts: read by `json_data::scan`, or (for a whole value) by serde_json where the scan
/// leaves the text to it.
fn collect_leaves<T>(text: &mut DataText<'_>, expected: usize, convert: impl Fn(Leaf) -> Option<T>) -> Option<Vec<T>> {
    // An element takes at least two bytes of text ("1,"), so the text bounds the reservation.
    let most = match text {
        DataText::Raw(raw) => raw.len() / 2 + 1,
        DataText::At { body, start, .. } => body.len().saturating_sub(*start) / 2 + 1,
        DataText::Leaves(leaves) => leaves.len(),
    };
    let mut out = Vec::with_capacity(expected.min(most));
    let push = |out: &mut Vec<T>, leaf| match convert(leaf) {
        Some(x) if out.len() < expected => {
            out.push(x);
            true
        }
        _ => false,
    };
    match text {
        DataText::Raw(raw) => match json_data::scan(raw, &mut |leaf| push(&mut out, leaf)) {
            Scan::Done => {}
            Scan::Refused => return None,
            Scan::Unsupported => {
                out.clear();
                if !json_data::walk(raw, &mut |leaf| push(&mut out, leaf)) {
                    return None;
                }
            }
        },
        DataText::At { body, start, end } => {
            match json_data::scan_value(body, *start, &mut |leaf| push(&mut out, leaf)) {
                (Scan::Done, past) => *end = past,
                _ => return None,
            }
        }
        DataText::Leaves(leaves) => {
            if !leaves.iter().all(|&leaf| push(&mut out, leaf)) {
                return None;
            }
        }
    }
    (out.len() == expected).then_some(out)
}

/// Flattens nested JSON arrays (serde_json already bounds nesting depth) into leaf references.
fn flatten(value: &Value) -> Vec<&Value> {
    let mut leaves = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            leaf => leaves.push(leaf),
        }
    }
    leaves
}

fn decode_json_data(
    name: &str,
    shape: &[i64],
    datatype: DataType,
    expected: usize,
    json: &Value,
) -> Result<TensorData, DecodeError> {
    let leaves = flatten(json);
    if leaves.len() != expected {
        return Err(DecodeError::ElementCount {
            input: name.to_owned(),
            shape: shape.to_vec(),
            expected,
            actual: leaves.len(),
        });
    }
    let bad = |index: usize, reason: String| DecodeError::BadElement { input: name.to_owned(), index, reason };
    macro_rules! ints {
        ($variant:ident, $ty:ty) => {{
            let mut out: Vec<$ty> = Vec::with_capacity(expected);
            for (i, v) in leaves.iter().enumerate() {
                let n = if let Some(n) = v.as_i64() {
                    <$ty>::try_from(n).ok()
                } else if let Some(n) = v.as_u64() {
                    <$ty>::try_from(n).ok()
                } else {
                    return Err(bad(i, format!("expected an integer for {}, got {}", datatype, v)));
                };
                out.push(n.ok_or_else(|| bad(i, format!("{} does not fit in {}", v, datatype)))?);
            }
            TensorData::$variant(out)
        }};
    }
    macro_rules! floats {
        ($variant:ident, $conv:expr) => {{
            let mut out = Vec::with_capacity(expected);
            for (i, v) in leaves.iter().enumerate() {
                let x = v.as_f64().ok_or_else(|| bad(i, format!("expected a number for {}, got {}", datatype, v)))?;
                // JSON numbers are finite: one past the type's range would reach the model as ±inf.
                let y = $conv(x);
                if y.is_infinite() {
                    return Err(bad(i, format!("{} does not fit in {}", v, datatype)));
                }
                out.push(y);
            }
            TensorData::$variant(out)
        }};
    }
    Ok(match datatype {
        DataType::Bool => {
            let mut out = Vec::with_capacity(expected);
            for (i, v) in leaves.iter().enumerate() {
                out.push(v.as_bool().ok_or_else(|| bad(i, format!("expected true or false for BOOL, got {v}")))?);
            }
            TensorData::Bool(out)
        }
        DataType::Uint8 => ints!(Uint8, u8),
        DataType::Uint16 => ints!(Uint16, u16),
        DataType::Uint32 => ints!(Uint32, u32),
        DataType::Uint64 => ints!(Uint64, u64),
        DataType::Int8 => ints!(Int8, i8),
        DataType::Int16 => ints!(Int16, i16),
        DataType::Int32 => ints!(Int32, i32),
        DataType::Int64 => ints!(Int64, i64),
        DataType::Fp16 => floats!(Fp16, f16::from_f64),
        DataType::Fp32 => floats!(Fp32, |x: f64| x as f32),
        DataType::Fp64 => floats!(Fp64, |x: f64| x),
        DataType::Bytes => {
            let mut out = Vec::with_capacity(expected);
            for (i, v) in leaves.iter().enumerate() {
                let s = v.as_str().ok_or_else(|| bad(i, format!("expected a string for BYTES, got {v}")))?;
                out.push(s.as_bytes().to_vec());
            }
            TensorData::Bytes(out)
        }
    })
}

/// Tensor data of `count` elements from the binary extension's encoding (also the gRPC
/// protocol's raw contents): every size checked against `bytes` before anything is allocated.
pub(crate) fn decode_binary_data(
    name: &str,
    shape: &[i64],
    datatype: DataType,
    count: usize,
    bytes: &[u8],
) -> Result<TensorData, DecodeError> {
    let Some(size) = datatype.element_size() else {
        return decode_binary_bytes(name, shape, count, bytes);
    };
    let expected = count
        .checked_mul(size)
        .ok_or_else(|| DecodeError::BadShape { input: name.to_owned(), shape: shape.to_vec() })?;
    if bytes.len() != expected {
        return Err(DecodeError::BinarySizeMismatch {
            input: name.to_owned(),
            size: bytes.len(),
            shape: shape.to_vec(),
            datatype,
            expected,
        });
    }
    macro_rules! le {
        ($variant:ident, $ty:ty) => {
            TensorData::$variant(
                bytes
                    .chunks_exact(std::mem::size_of::<$ty>())
                    .map(|c| <$ty>::from_le_bytes(c.try_into().expect("chunk has the element's size")))
                    .collect(),
            )
        };
    }
    Ok(match datatype {
        DataType::Bool => {
            let mut out = Vec::with_capacity(count);
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    0 => out.push(false),
                    1 => out.push(true),
                    other => {
                        return Err(DecodeError::BadElement {
                            input: name.to_owned(),
                            index: i,
                            reason: format!("BOOL bytes must be 0 or 1, got {other}"),
                        });
                    }
                }
            }
            TensorData::Bool(out)
        }
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Int8 => TensorData::Int8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint16 => le!(Uint16, u16),
        DataType::Int16 => le!(Int16, i16),
        DataType::Uint32 => le!(Uint32, u32),
        DataType::Int32 => le!(Int32, i32),
        DataType::Uint64 => le!(Uint64, u64),
        DataType::Int64 => le!(Int64, i64),
        DataType::Fp16 => TensorData::Fp16(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        DataType::Fp32 => le!(Fp32, f32),
        DataType::Fp64 => le!(Fp64, f64),
        DataType::Bytes => unreachable!("BYTES has no fixed element size and returned above"),
    })
}

/// BYTES in the binary extension: each element is a 4-byte little-endian length, then the bytes.
fn decode_binary_bytes(name: &str, shape: &[i64], count: usize, mut bytes: &[u8]) -> Result<TensorData, DecodeError> {
    let bad = |index: usize, reason: String| DecodeError::BadBytesElement { input: name.to_owned(), index, reason };
    // Each element needs at least its 4-byte prefix, so this bounds the allocation by the body.
    if count > bytes.len() / 4 {
        return Err(DecodeError::BytesTooShort {
            input: name.to_owned(),
            shape: shape.to_vec(),
            expected: count,
            min_bytes: count as u128 * 4,
            size: bytes.len(),
        });
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if bytes.len() < 4 {
            return Err(bad(i, format!("needs a 4-byte length prefix but only {} bytes remain", bytes.len())));
        }
        let (prefix, rest) = bytes.split_at(4);
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > rest.len() {
            return Err(bad(i, format!("length prefix says {len} bytes but only {} remain", rest.len())));
        }
        let (element, rest) = rest.split_at(len);
        out.push(element.to_vec());
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(bad(count, format!("{} bytes remain after the last of {count} elements", bytes.len())));
    }
    Ok(TensorData::Bytes(out))
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
