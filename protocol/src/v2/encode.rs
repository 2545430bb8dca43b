//! Encoder for v2 inference responses: JSON tensors, or the binary tensor extension (JSON header,
//! then raw output bytes, with `Inference-Header-Content-Length` naming the header's size).

use bytes::Bytes;
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::tensor::{Tensor, TensorData};

/// What the response says about itself, beside its outputs.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    pub model_name: &'a str,
    pub model_version: u32,
    pub id: Option<&'a str>,
    /// Response-level `parameters`; `None` leaves them out.
    pub parameters: Option<ResponseParameters<'a>>,
}

/// The response's `parameters`: which version, artifact and route answered. Typed rather than a
/// `Map` of `Value`s so that writing them allocates nothing; the same JSON (keys in `Map`'s
/// sorted order, the version as a string like the top-level `model_version`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResponseParameters<'a> {
    pub model_sha256: &'a str,
    #[serde(serialize_with = "as_text")]
    pub model_version: u32,
    pub route: &'a str,
}

/// A number written as a JSON string, as v2 writes versions.
fn as_text<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

/// One output and whether it goes as binary.
#[derive(Debug)]
pub struct EncodedOutput<'a> {
    pub tensor: &'a Tensor,
    pub binary: bool,
}

/// An encoded body. `json_len` is `Some` when binary data follows the JSON header; the caller
/// then sends `Inference-Header-Content-Length: json_len`.
#[derive(Debug)]
pub struct EncodedResponse {
    pub body: Bytes,
    pub json_len: Option<usize>,
}

#[derive(Serialize)]
struct Head<'a> {
    model_name: &'a str,
    #[serde(serialize_with = "as_text")]
    model_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<ResponseParameters<'a>>,
    outputs: Vec<OutputJson<'a>>,
}

#[derive(Serialize)]
struct OutputJson<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct BinaryParams {
    binary_data_size: usize,
}

/// Serializes tensor data as a flat JSON array without building a `Value` tree.
struct JsonData<'a>(&'a TensorData);

fn serialize_all<S: SerializeSeq, T: Serialize>(seq: &mut S, items: &[T]) -> Result<(), S::Error> {
    items.iter().try_for_each(|x| seq.serialize_element(x))
}

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        match self.0 {
            TensorData::Fp16(v) => {
                for x in v {
                    seq.serialize_element(&x.to_f32())?;
                }
            }
            TensorData::Bytes(v) => {
                for x in v {
                    seq.serialize_element(&String::from_utf8_lossy(x))?;
                }
            }
            TensorData::Bool(v) => serialize_all(&mut seq, v)?,
            TensorData::Uint8(v) => serialize_all(&mut seq, v)?,
            TensorData::Uint16(v) => serialize_all(&mut seq, v)?,
            TensorData::Uint32(v) => serialize_all(&mut seq, v)?,
            TensorData::Uint64(v) => serialize_all(&mut seq, v)?,
            TensorData::Int8(v) => serialize_all(&mut seq, v)?,
            TensorData::Int16(v) => serialize_all(&mut seq, v)?,
            TensorData::Int32(v) => serialize_all(&mut seq, v)?,
            TensorData::Int64(v) => serialize_all(&mut seq, v)?,
            TensorData::Fp32(v) => serialize_all(&mut seq, v)?,
            TensorData::Fp64(v) => serialize_all(&mut seq, v)?,
        }
        seq.end()
    }
}

/// Encodes a response. Binary outputs are appended in the order given.
pub fn encode_response(head: &ResponseHead<'_>, outputs: &[EncodedOutput<'_>]) -> EncodedResponse {
    let mut binary = Vec::new();
    let mut json_outputs = Vec::with_capacity(outputs.len());
    for out in outputs {
        let t = out.tensor;
        if out.binary {
            let before = binary.len();
            append_binary(&t.data, &mut binary);
            json_outputs.push(OutputJson {
                name: &t.name,
                datatype: t.datatype().as_v2(),
                shape: &t.shape,
                parameters: Some(BinaryParams { binary_data_size: binary.len() - before }),
                data: None,
            });
        } else {
            json_outputs.push(OutputJson {
                name: &t.name,
                datatype: t.datatype().as_v2(),
                shape: &t.shape,
                parameters: None,
                data: Some(JsonData(&t.data)),
            });
        }
    }
    let json = Head {
        model_name: head.model_name,
        model_version: head.model_version,
        id: head.id,
        parameters: head.parameters,
        outputs: json_outputs,
    };
    let mut body = serde_json::to_vec(&json).expect("response JSON has only string keys and finite-or-null numbers");
    if outputs.iter().any(|o| o.binary) {
        let json_len = body.len();
        body.extend_from_slice(&binary);
        EncodedResponse { body: Bytes::from(body), json_len: Some(json_len) }
    } else {
        EncodedResponse { body: Bytes::from(body), json_len: None }
    }
}

#[derive(Serialize)]
struct RequestJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    parameters: &'a serde_json::Map<String, serde_json::Value>,
    inputs: Vec<OutputJson<'a>>,
}

/// Encodes an inference *request* (what the gateway sends the upstream of a remote version),
/// with the request-level `parameters` given: every input's data inline as JSON, or with
/// `binary`, every input as binary tensor data after the JSON header (the returned `json_len`
/// then goes in `Inference-Header-Content-Length`; ask for binary outputs in `parameters` with
/// `binary_data_output`).
pub fn encode_request(
    id: Option<&str>,
    inputs: &[Tensor],
    parameters: &serde_json::Map<String, serde_json::Value>,
    binary: bool,
) -> EncodedResponse {
    let mut data = Vec::new();
    let inputs = inputs
        .iter()
        .map(|t| {
            let (parameters, json) = if binary {
                let before = data.len();
                append_binary(&t.data, &mut data);
                (Some(BinaryParams { binary_data_size: data.len() - before }), None)
            } else {
                (None, Some(JsonData(&t.data)))
            };
            OutputJson { name: &t.name, datatype: t.datatype().as_v2(), shape: &t.shape, parameters, data: json }
        })
        .collect();
    let json = RequestJson { id, parameters, inputs };
    let mut body = serde_json::to_vec(&json).expect("request JSON has only string keys and finite-or-null numbers");
    if !binary {
        return EncodedResponse { body: Bytes::from(body), json_len: None };
    }
    let json_len = body.len();
    body.extend_from_slice(&data);
    EncodedResponse { body: Bytes::from(body), json_len: Some(json_len) }
}

/// Appends the binary-extension encoding of `data`: little-endian elements, BOOL as one byte,
/// BYTES as 4-byte little-endian length then the bytes.
pub fn append_binary(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! le {
        ($v:expr) => {{
            out.reserve(std::mem::size_of_val($v.as_slice()));
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => le!(v),
        TensorData::Uint16(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Uint32(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Uint64(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::Fp16(v) => le!(v),
        TensorData::Fp32(v) => le!(v),
        TensorData::Fp64(v) => le!(v),
        TensorData::Bytes(v) => {
            for s in v {
                // A single BYTES element over 4 GiB cannot come out of a bounded request.
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::v2::decode::decode_request;

    fn head() -> ResponseHead<'static> {
        ResponseHead { model_name: "m", model_version: 2, id: Some("r1"), parameters: None }
    }

    #[test]
    fn parameters_read_as_the_map_they_replace() {
        let t = Tensor { name: "y".into(), shape: vec![1], data: TensorData::Fp32(vec![0.5]) };
        let sha = "01db76cec961d32c56b7c4fcc42ab1eae1d7f1e96691adcdef99c8d8ac2d5895";
        let head = ResponseHead {
            parameters: Some(ResponseParameters { model_sha256: sha, model_version: 12, route: "challenger" }),
            ..head()
        };
        let enc = encode_response(&head, &[EncodedOutput { tensor: &t, binary: false }]);
        let text = std::str::from_utf8(&enc.body).expect("utf-8");
        let want = format!(r#""parameters":{{"model_sha256":"{sha}","model_version":"12","route":"challenger"}}"#);
        assert!(text.contains(&want), "{text}");
        assert!(text.starts_with(r#"{"model_name":"m","model_version":"2","id":"r1","#), "{text}");
        let without = encode_response(&self::head(), &[EncodedOutput { tensor: &t, binary: false }]);
        assert!(!std::str::from_utf8(&without.body).expect("utf-8").contains("parameters\":{\"model"));
    }

    #[test]
    fn json_outputs() {
        let t = Tensor { name: "y".into(), shape: vec![1, 2], data: TensorData::Fp32(vec![0.5, -1.0]) };
        let enc = encode_response(&head(), &[EncodedOutput { tensor: &t, binary: false }]);
        assert_eq!(enc.json_len, None);
        let v: Value = serde_json::from_slice(&enc.body).expect("json");
        assert_eq!(v["model_version"], "2");
        assert_eq!(v["id"], "r1");
        assert_eq!(v["outputs"][0]["datatype"], "FP32");
        assert_eq!(v["outputs"][0]["data"], serde_json::json!([0.5, -1.0]));
    }

    #[test]
    fn binary_outputs_round_trip_through_the_decoder() {
        // Encoding as binary and decoding the same bytes as a request must give the tensor back.
        let tensors = vec![
            Tensor { name: "a".into(), shape: vec![2], data: TensorData::Int64(vec![-3, 7]) },
            Tensor { name: "b".into(), shape: vec![2], data: TensorData::Bytes(vec![b"hi".to_vec(), vec![]]) },
            Tensor { name: "c".into(), shape: vec![3], data: TensorData::Bool(vec![true, false, true]) },
        ];
        let outs: Vec<_> = tensors.iter().map(|t| EncodedOutput { tensor: t, binary: true }).collect();
        let enc = encode_response(&head(), &outs);
        let json_len = enc.json_len.expect("binary");
        let header: Value = serde_json::from_slice(&enc.body[..json_len]).expect("json");
        let inputs: Vec<Value> = header["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| {
                serde_json::json!({"name": o["name"], "shape": o["shape"], "datatype": o["datatype"],
                    "parameters": {"binary_data_size": o["parameters"]["binary_data_size"]}})
            })
            .collect();
        let req_json = serde_json::to_vec(&serde_json::json!({ "inputs": inputs })).expect("json");
        let mut body = req_json.clone();
        body.extend_from_slice(&enc.body[json_len..]);
        let len = req_json.len().to_string();
        let decoded = decode_request(&body, Some(len.as_bytes())).expect("decodes");
        assert_eq!(decoded.inputs, tensors);
    }
}
