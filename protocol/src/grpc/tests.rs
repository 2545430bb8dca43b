use std::collections::HashMap;

use super::inference::infer_parameter::ParameterChoice;
use super::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::inference::{InferParameter, InferTensorContents, ModelInferRequest};
use super::*;
use crate::tensor::{DataType, Tensor, TensorData};

fn input(name: &str, datatype: &str, shape: &[i64], contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape: shape.to_vec(),
        parameters: HashMap::new(),
        contents,
    }
}

fn request(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    let raw_input_contents = raw.into_iter().map(Into::into).collect();
    ModelInferRequest { model_name: "m".to_owned(), inputs, raw_input_contents, ..ModelInferRequest::default() }
}

fn fp32(values: &[f32]) -> InferTensorContents {
    InferTensorContents { fp32_contents: values.to_vec(), ..Default::default() }
}

#[test]
fn typed_contents_move_into_tensors() {
    let msg = request(vec![input("x", "FP32", &[1, 2], Some(fp32(&[1.0, 2.0])))], vec![]);
    let d = decode_request(msg).expect("decodes");
    assert!(!d.raw_output);
    assert_eq!(
        d.request.inputs,
        vec![Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::Fp32(vec![1.0, 2.0]) }]
    );
    assert_eq!(d.request.outputs, None);
    assert_eq!(d.request.id, None);
}

#[test]
fn raw_contents_are_little_endian_and_sized_exactly() {
    let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let msg = request(vec![input("x", "FP32", &[2], None)], vec![bytes.clone()]);
    let d = decode_request(msg).expect("decodes");
    assert!(d.raw_output);
    assert_eq!(d.request.inputs[0].data, TensorData::Fp32(vec![1.5, -2.0]));

    let short = request(vec![input("x", "FP32", &[3], None)], vec![bytes.clone()]);
    let e = decode_request(short).expect_err("too short");
    assert!(matches!(e, DecodeError::RawSize { size: 8, expected: 12, .. }), "{e}");
    assert!(e.to_string().contains("raw contents are 8 bytes"), "{e}");

    let long = request(vec![input("x", "FP32", &[1], None)], vec![bytes]);
    assert!(matches!(decode_request(long), Err(DecodeError::RawSize { size: 8, expected: 4, .. })));
}

#[test]
fn raw_contents_must_cover_every_input_and_not_mix_with_typed() {
    let two = request(vec![input("a", "INT32", &[1], None), input("b", "INT32", &[1], None)], vec![vec![0; 4]]);
    assert_eq!(decode_request(two), Err(DecodeError::RawCount { inputs: 2, raw: 1 }));
    let typed = InferTensorContents { int_contents: vec![7], ..Default::default() };
    let both = request(vec![input("a", "INT32", &[1], Some(typed))], vec![vec![0; 4]]);
    assert_eq!(decode_request(both), Err(DecodeError::BothContents { input: "a".into() }));
}

#[test]
fn typed_counts_fields_and_ranges_are_checked() {
    let few = request(vec![input("x", "FP32", &[2, 2], Some(fp32(&[1.0])))], vec![]);
    assert!(matches!(decode_request(few), Err(DecodeError::ElementCount { expected: 4, actual: 1, .. })));
    let missing = request(vec![input("x", "FP32", &[2], None)], vec![]);
    assert!(matches!(decode_request(missing), Err(DecodeError::ElementCount { expected: 2, actual: 0, .. })));
    let wrong = request(vec![input("x", "INT64", &[1], Some(fp32(&[1.0])))], vec![]);
    let e = decode_request(wrong).expect_err("wrong field");
    assert_eq!(e.to_string(), "input 'x': INT64 data goes in int64_contents, not fp32_contents");
    let big = InferTensorContents { int_contents: vec![1, 300], ..Default::default() };
    let e = decode_request(request(vec![input("x", "INT8", &[2], Some(big))], vec![])).expect_err("range");
    assert_eq!(e, DecodeError::OutOfRange { input: "x".into(), index: 1, value: 300, datatype: DataType::Int8 });
    let half = request(vec![input("x", "FP16", &[1], Some(fp32(&[1.0])))], vec![]);
    assert!(matches!(decode_request(half), Err(DecodeError::NoTypedContents { .. })));
    let narrow = InferTensorContents { uint_contents: vec![0, 255], ..Default::default() };
    let d = decode_request(request(vec![input("x", "UINT8", &[2], Some(narrow))], vec![])).expect("u8");
    assert_eq!(d.request.inputs[0].data, TensorData::Uint8(vec![0, 255]));
}

#[test]
fn datatypes_shapes_and_names_are_checked() {
    let unknown = request(vec![input("x", "FLOAT", &[1], Some(fp32(&[1.0])))], vec![]);
    assert!(matches!(decode_request(unknown), Err(DecodeError::UnknownDatatype { .. })));
    let negative = request(vec![input("x", "FP32", &[-1], None)], vec![vec![]]);
    assert!(matches!(decode_request(negative), Err(DecodeError::BadShape { .. })));
    // A shape whose byte size overflows is refused before anything is allocated.
    let huge = request(vec![input("x", "FP64", &[1 << 62, 4], None)], vec![vec![0; 8]]);
    assert!(matches!(decode_request(huge), Err(DecodeError::BadShape { .. })));
    let dup = request(
        vec![input("x", "FP32", &[1], Some(fp32(&[1.0]))), input("x", "FP32", &[1], Some(fp32(&[1.0])))],
        vec![],
    );
    assert_eq!(decode_request(dup), Err(DecodeError::DuplicateInput("x".into())));
}

#[test]
fn bytes_raw_contents_are_length_prefixed() {
    let mut raw = Vec::new();
    for s in [&b"ab"[..], b"", b"xyz"] {
        raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
        raw.extend_from_slice(s);
    }
    let d = decode_request(request(vec![input("s", "BYTES", &[3], None)], vec![raw.clone()])).expect("bytes");
    assert_eq!(d.request.inputs[0].data, TensorData::Bytes(vec![b"ab".to_vec(), vec![], b"xyz".to_vec()]));
    // More elements than the bytes can hold: refused before allocating room for them.
    let many = request(vec![input("s", "BYTES", &[1 << 40], None)], vec![raw.clone()]);
    assert!(matches!(decode_request(many), Err(DecodeError::RawBytesTooShort { .. })));
    let mut trailing = raw.clone();
    trailing.push(0);
    let e = decode_request(request(vec![input("s", "BYTES", &[3], None)], vec![trailing])).expect_err("trailing");
    assert!(matches!(e, DecodeError::Tensor(_)), "{e}");
    let mut lying = raw;
    lying[0] = 200;
    assert!(decode_request(request(vec![input("s", "BYTES", &[3], None)], vec![lying])).is_err());
    let typed = InferTensorContents { bytes_contents: vec![b"q".to_vec()], ..Default::default() };
    let d = decode_request(request(vec![input("s", "BYTES", &[1], Some(typed))], vec![])).expect("typed bytes");
    assert_eq!(d.request.inputs[0].data, TensorData::Bytes(vec![b"q".to_vec()]));
}

#[test]
fn outputs_ids_and_parameters() {
    let mut msg = request(vec![input("x", "FP32", &[1], Some(fp32(&[1.0])))], vec![]);
    msg.id = "req-1".into();
    msg.outputs = vec![InferRequestedOutputTensor { name: "y".into(), parameters: HashMap::new() }];
    msg.parameters = HashMap::from([
        ("timeout".to_owned(), InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(5000)) }),
        ("tag".to_owned(), InferParameter { parameter_choice: Some(ParameterChoice::StringParam("t".into())) }),
    ]);
    let d = decode_request(msg.clone()).expect("decodes");
    assert_eq!(d.request.id.as_deref(), Some("req-1"));
    assert_eq!(d.request.outputs.as_ref().map(|o| o[0].name.as_str()), Some("y"));
    assert_eq!(d.request.parameters["timeout"], serde_json::json!(5000));
    assert_eq!(d.request.parameters["tag"], serde_json::json!("t"));

    msg.outputs.push(InferRequestedOutputTensor { name: "y".into(), parameters: HashMap::new() });
    assert_eq!(decode_request(msg.clone()), Err(DecodeError::DuplicateOutput("y".into())));
    msg.outputs.truncate(1);
    msg.outputs[0].parameters.insert("classification".into(), InferParameter::default());
    assert!(matches!(decode_request(msg.clone()), Err(DecodeError::UnsupportedOutputParameter { .. })));
    msg.outputs.clear();
    msg.parameters
        .insert("nan".into(), InferParameter { parameter_choice: Some(ParameterChoice::DoubleParam(f64::NAN)) });
    assert!(matches!(decode_request(msg), Err(DecodeError::BadParameter { .. })));
}

#[test]
fn versions_parse_as_numbers_from_one() {
    assert_eq!(parse_version(""), Ok(None));
    assert_eq!(parse_version("3"), Ok(Some(3)));
    assert_eq!(parse_version("0"), Err("0"));
    assert_eq!(parse_version("v1"), Err("v1"));
}

#[test]
fn responses_carry_parameters_and_raw_or_typed_outputs() {
    let out = || vec![Tensor { name: "y".into(), shape: vec![2], data: TensorData::Fp32(vec![0.25, 4.0]) }];
    let p = Parameters { model_sha256: "ab12", model_version: 2, route: "canary" };
    let raw = encode_response("m", Some("id-1".into()), p, out(), true);
    assert_eq!((raw.model_name.as_str(), raw.model_version.as_str(), raw.id.as_str()), ("m", "2", "id-1"));
    let param = |k: &str| raw.parameters[k].parameter_choice.clone();
    assert_eq!(param("route"), Some(ParameterChoice::StringParam("canary".into())));
    assert_eq!(param("model_version"), Some(ParameterChoice::StringParam("2".into())));
    assert_eq!(param("model_sha256"), Some(ParameterChoice::StringParam("ab12".into())));
    assert_eq!(raw.outputs[0].contents, None);
    assert_eq!(raw.raw_output_contents, vec![[0.25f32.to_le_bytes(), 4.0f32.to_le_bytes()].concat()]);
    let typed = encode_response("m", None, p, out(), false);
    assert!(typed.raw_output_contents.is_empty());
    assert_eq!(typed.outputs[0].contents.as_ref().map(|c| c.fp32_contents.clone()), Some(vec![0.25, 4.0]));
    assert_eq!(typed.outputs[0].datatype, "FP32");
    // FP16 has no typed field: the whole response goes raw.
    let half = vec![Tensor { name: "h".into(), shape: vec![1], data: TensorData::Fp16(vec![half::f16::ONE]) }];
    assert_eq!(encode_response("m", None, p, half, false).raw_output_contents.len(), 1);
}

#[test]
fn raw_round_trip_through_the_decoder() {
    let t = Tensor { name: "s".into(), shape: vec![2], data: TensorData::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]) };
    let p = Parameters { model_sha256: "", model_version: 1, route: "pinned" };
    let resp = encode_response("m", None, p, vec![t.clone()], true);
    let msg = request(vec![input("s", "BYTES", &[2], None)], resp.raw_output_contents);
    assert_eq!(decode_request(msg).expect("decodes").request.inputs, vec![t]);
}
