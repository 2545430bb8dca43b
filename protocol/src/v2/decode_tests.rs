//! Unit tests of the v2 request decoder.

use super::*;

fn json(body: &str) -> Result<InferRequest, DecodeError> {
    decode_request(body.as_bytes(), None)
}

fn binary(header: &serde_json::Value, data: &[u8]) -> Result<InferRequest, DecodeError> {
    let mut body = serde_json::to_vec(header).expect("json");
    let len = body.len().to_string();
    body.extend_from_slice(data);
    decode_request(&body, Some(len.as_bytes()))
}

#[test]
fn flat_and_nested_json_decode_alike() {
    let flat = json(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4.5]}]}"#).expect("flat");
    let nested =
        json(r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]}]}"#).expect("nested");
    assert_eq!(flat.inputs, nested.inputs);
    assert_eq!(flat.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.5]));
    assert!(flat.outputs.is_none());
}

#[test]
fn every_datatype_decodes_from_json() {
    let cases = [
        ("BOOL", "[true,false]", TensorData::Bool(vec![true, false])),
        ("UINT8", "[0,255]", TensorData::Uint8(vec![0, 255])),
        ("INT8", "[-128,127]", TensorData::Int8(vec![-128, 127])),
        ("UINT64", "[0,18446744073709551615]", TensorData::Uint64(vec![0, u64::MAX])),
        ("INT64", "[-9223372036854775808,1]", TensorData::Int64(vec![i64::MIN, 1])),
        ("FP16", "[0.5,2]", TensorData::Fp16(vec![f16::from_f32(0.5), f16::from_f32(2.0)])),
        ("FP64", "[0.1,2]", TensorData::Fp64(vec![0.1, 2.0])),
        ("BYTES", r#"["a","é"]"#, TensorData::Bytes(vec![b"a".to_vec(), "é".as_bytes().to_vec()])),
    ];
    for (dt, data, want) in cases {
        let body = format!(r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{dt}","data":{data}}}]}}"#);
        assert_eq!(json(&body).expect(dt).inputs[0].data, want, "{dt}");
    }
}

#[test]
fn out_of_range_and_wrong_kind_elements_are_named() {
    let err = json(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"UINT8","data":[1,256]}]}"#).unwrap_err();
    assert_eq!(err.to_string(), "input 'x': element 1: 256 does not fit in UINT8");
    let err = json(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}"#).unwrap_err();
    assert!(err.to_string().contains("expected an integer for INT32"), "{err}");
    let err = json(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}"#).unwrap_err();
    assert!(err.to_string().contains("expected true or false"), "{err}");
}

#[test]
fn shape_problems_are_refused_before_allocation() {
    let err =
        json(r#"{"inputs":[{"name":"x","shape":[1000000000,1000000000,1000000000],"datatype":"FP32","data":[1]}]}"#)
            .unwrap_err();
    assert!(matches!(err, DecodeError::BadShape { .. }), "{err}");
    let err = json(r#"{"inputs":[{"name":"x","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}"#).unwrap_err();
    assert!(matches!(err, DecodeError::BadShape { .. }), "{err}");
    let err =
        json(r#"{"inputs":[{"name":"x","shape":[1000000000,1000000000],"datatype":"FP32","data":[1]}]}"#).unwrap_err();
    assert!(matches!(err, DecodeError::ElementCount { expected: 1_000_000_000_000_000_000, actual: 1, .. }));
    let err = json(r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#).unwrap_err();
    assert_eq!(err.to_string(), "input 'x': shape [3] needs 3 elements but 2 were given");
}

#[test]
fn malformed_requests() {
    assert!(matches!(json("{"), Err(DecodeError::Json(_))));
    assert!(matches!(json(r#"{"inputs":5}"#), Err(DecodeError::Json(_))));
    assert!(matches!(json(r#"{"outputs":[]}"#), Err(DecodeError::Json(_))));
    let err = json(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT32","data":[1]}]}"#).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownDatatype { .. }));
    let err = json(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#).unwrap_err();
    assert_eq!(err, DecodeError::NoData { input: "x".into() });
    let dup = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},
                             {"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
    assert_eq!(json(dup).unwrap_err(), DecodeError::DuplicateInput("x".into()));
    let deep = format!(
        r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(matches!(json(&deep), Err(DecodeError::Json(_))));
}

#[test]
fn binary_inputs_decode() {
    let header = serde_json::json!({"inputs":[
        {"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},
        {"name":"b","shape":[1],"datatype":"INT64","data":[7]},
        {"name":"c","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],
        "outputs":[{"name":"y","parameters":{"binary_data":true}}]});
    let mut data = Vec::new();
    data.extend_from_slice(&1.5f32.to_le_bytes());
    data.extend_from_slice(&(-2.0f32).to_le_bytes());
    data.extend_from_slice(&3u32.to_le_bytes());
    data.extend_from_slice(b"abc");
    data.extend_from_slice(&0u32.to_le_bytes());
    let req = binary(&header, &data).expect("decodes");
    assert_eq!(req.inputs[0].data, TensorData::Fp32(vec![1.5, -2.0]));
    assert_eq!(req.inputs[1].data, TensorData::Int64(vec![7]));
    assert_eq!(req.inputs[2].data, TensorData::Bytes(vec![b"abc".to_vec(), vec![]]));
    assert_eq!(req.outputs.expect("outputs")[0].binary_data, Some(true));
}

#[test]
fn binary_size_problems() {
    let h = |size: u64| serde_json::json!({"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":size}}]});
    assert!(matches!(binary(&h(8), &[0; 4]), Err(DecodeError::BinaryTooShort { size: 8, available: 4, .. })));
    assert!(matches!(binary(&h(4), &[0; 4]), Err(DecodeError::BinarySizeMismatch { expected: 8, .. })));
    assert!(matches!(binary(&h(8), &[0; 12]), Err(DecodeError::TrailingBinary(4))));
    // Header length larger than the body, or not a number.
    let body = br#"{"inputs":[]}"#;
    assert!(matches!(decode_request(body, Some(b"100")), Err(DecodeError::HeaderLengthTooLarge { .. })));
    assert!(matches!(decode_request(body, Some(b"abc")), Err(DecodeError::BadHeaderLength(_))));
    assert!(matches!(decode_request(body, Some(b"-1")), Err(DecodeError::BadHeaderLength(_))));
    // A length too long for usize is still a length (and larger than the body), not "not a number".
    let err = decode_request(body, Some(b"99999999999999999999999")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Inference-Header-Content-Length is 99999999999999999999999 but the body has only 13 bytes"
    );
    assert!(matches!(decode_request(body, Some(b"0x10")), Err(DecodeError::BadHeaderLength(_))));
}

#[test]
fn lying_bytes_prefixes_are_refused() {
    let header =
        serde_json::json!({"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]});
    let mut data = 1000u32.to_le_bytes().to_vec();
    data.extend_from_slice(b"abcd");
    let err = binary(&header, &data).unwrap_err();
    assert!(err.to_string().contains("length prefix says 1000 bytes but only 4 remain"), "{err}");
    // A huge declared count with a tiny body fails before allocating, and says why.
    let header = serde_json::json!({"inputs":[{"name":"s","shape":[4000000000u64],"datatype":"BYTES","parameters":{"binary_data_size":8}}]});
    let err = binary(&header, &data).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input 's': shape [4000000000] needs 4000000000 BYTES elements (at least 16000000000 bytes with their \
         4-byte length prefixes) but binary_data_size is 8"
    );
    // Too few bytes for even one length prefix.
    let header =
        serde_json::json!({"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":2}}]});
    assert!(matches!(binary(&header, &[5, 0]), Err(DecodeError::BytesTooShort { expected: 1, size: 2, .. })));
}

#[test]
fn requests_inputs_and_outputs_must_be_objects() {
    // serde's derived structs would take their fields positionally from an array.
    let x = r#"{"name":"x","shape":[1],"datatype":"FP32","data":[1]}"#;
    let err = json(&format!("[null, null, [{x}]]")).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "malformed request JSON: invalid type: sequence, expected an inference request (a JSON object)"
        ),
        "{err}"
    );
    let err = json("[1, 2, 3]").unwrap_err();
    assert!(err.to_string().contains("expected an inference request (a JSON object)"), "{err}");
    let err = json("null").unwrap_err();
    assert!(err.to_string().contains("invalid type: null, expected an inference request"), "{err}");
    let err = json(r#"{"inputs":[["x",[1],"FP32",null,[1]]]}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type: sequence, expected an input tensor (a JSON object"), "{err}");
    let err = json(&format!(r#"{{"inputs":[{x}],"outputs":[["y",null]]}}"#)).unwrap_err();
    assert!(err.to_string().contains("invalid type: sequence, expected a requested output (a JSON object"), "{err}");
    // Objects still decode as before, unknown fields ignored, duplicate fields refused.
    let req = json(&format!(r#"{{"inputs":[{x}],"outputs":[{{"name":"y"}}],"extra":[1,{{}}]}}"#)).expect("decodes");
    assert_eq!(req.inputs[0].data, TensorData::Fp32(vec![1.0]));
    assert_eq!(req.outputs.expect("outputs")[0].name, "y");
    let err = json(r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#).unwrap_err();
    assert!(err.to_string().contains("duplicate field `name`"), "{err}");
}

#[test]
fn floats_out_of_range_are_refused() {
    let one = |dt: &str, v: &str| {
        json(&format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"{dt}","data":[{v}]}}]}}"#))
    };
    assert_eq!(one("FP32", "3.5e38").unwrap_err().to_string(), "input 'x': element 0: 3.5e+38 does not fit in FP32");
    assert_eq!(one("FP32", "-1e39").unwrap_err().to_string(), "input 'x': element 0: -1e+39 does not fit in FP32");
    assert_eq!(one("FP16", "70000").unwrap_err().to_string(), "input 'x': element 0: 70000 does not fit in FP16");
    // -65520 is halfway between the largest FP16 (65504) and 65536, and rounds to -inf.
    assert!(one("FP16", "-65520").is_err());
    // The largest finite values, and values that round to them, still decode.
    assert_eq!(one("FP32", "3.4028235e38").expect("max").inputs[0].data, TensorData::Fp32(vec![f32::MAX]));
    assert_eq!(one("FP16", "65504").expect("max").inputs[0].data, TensorData::Fp16(vec![f16::MAX]));
    assert_eq!(one("FP16", "65519").expect("rounds down").inputs[0].data, TensorData::Fp16(vec![f16::MAX]));
    assert_eq!(one("FP64", "1.7e308").expect("fp64").inputs[0].data, TensorData::Fp64(vec![1.7e308]));
    // Underflow to zero is not an error.
    assert_eq!(one("FP32", "1e-50").expect("tiny").inputs[0].data, TensorData::Fp32(vec![0.0]));
}

#[test]
fn many_inputs_and_outputs_are_checked_for_duplicates_in_linear_time() {
    // 50 000 distinct names, then a duplicate of the first: a pairwise scan would take
    // ~1.25e9 comparisons (tens of seconds in a debug build); a set takes milliseconds.
    let n = 50_000;
    let mut inputs: Vec<String> =
        (0..n).map(|i| format!(r#"{{"name":"n{i}","shape":[],"datatype":"BOOL","data":true}}"#)).collect();
    inputs.push(r#"{"name":"n0","shape":[],"datatype":"BOOL","data":true}"#.to_owned());
    let started = std::time::Instant::now();
    let err = json(&format!(r#"{{"inputs":[{}]}}"#, inputs.join(","))).unwrap_err();
    assert_eq!(err, DecodeError::DuplicateInput("n0".into()));
    let mut outputs: Vec<String> = (0..n).map(|i| format!(r#"{{"name":"o{i}"}}"#)).collect();
    outputs.push(r#"{"name":"o0"}"#.to_owned());
    let err = json(&format!(r#"{{"inputs":[],"outputs":[{}]}}"#, outputs.join(","))).unwrap_err();
    assert_eq!(err, DecodeError::DuplicateOutput("o0".into()));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// The typed fast path and the general path agree: same tensor where the general path accepts,
/// and the fast path declines (so the general path reports) everywhere else.
#[test]
fn the_typed_fast_path_accepts_exactly_what_the_general_path_accepts() {
    let data = [
        "[]",
        "[1]",
        "[1,2,3]",
        "[[1,2],[3]]",
        "[[[1]],[[2]],[[3]]]",
        "[0,255,256]",
        "[-1,0,1]",
        "[-129,127,128]",
        "[1.0,2,3]",
        "[1.5,-2.25,3e2]",
        "[65504,65520,1]",
        "[3.4e38,3.5e38,1]",
        "[1e308,-1e308,0]",
        "[18446744073709551615,9223372036854775807,-9223372036854775808]",
        "[true,false,true]",
        "[true,1,false]",
        "[null,1,2]",
        "[\"a\",\"b\",\"c\"]",
        "[{\"x\":1},2,3]",
        "[1,2,3,4]",
        "[[1,2,3]]",
        "[[],[1,2,3]]",
        "7",
        "true",
        "{\"a\":1}",
        "[-0,0,-0.0]",
    ];
    for datatype in crate::tensor::ALL_DATATYPES {
        for text in data {
            let general: Value = serde_json::from_str(text).expect("test data is JSON");
            for expected in [0, 1, 3, 4] {
                let slow = decode_json_data("x", &[expected as i64], datatype, expected, &general);
                let fast = typed_json_data(datatype, expected, &mut DataText::Raw(text));
                match (&slow, &fast) {
                    (Ok(a), Some(b)) => assert_eq!(a, b, "{datatype} {text} expecting {expected}"),
                    (Err(_), None) => {}
                    // BYTES always goes the general way.
                    (Ok(_), None) if datatype == DataType::Bytes => {}
                    _ => panic!("{datatype} {text} expecting {expected}: general {slow:?}, fast {fast:?}"),
                }
                // Read in place, with more of a body after it: the same, or left to the caller.
                let body = format!("{text} ,1]");
                let mut in_place = DataText::At { body: body.as_bytes(), start: 0, end: 0 };
                if let Some(values) = typed_json_data(datatype, expected, &mut in_place) {
                    assert_eq!(Some(&values), fast.as_ref(), "{datatype} {text} in place");
                    if let DataText::At { end, .. } = in_place {
                        assert_eq!(&body[end..], ",1]", "{datatype} {text}: end of the data");
                    }
                }
                // From leaves read before the datatype was known: the same as the text gives.
                let mut leaves = Vec::new();
                let read = json_data::scan(text, &mut |leaf| {
                    leaves.push(leaf);
                    true
                });
                if read == Scan::Done {
                    let typed = typed_json_data(datatype, expected, &mut DataText::Leaves(&leaves));
                    assert_eq!(typed, fast, "{datatype} {text} from leaves");
                }
            }
        }
    }
}

#[test]
fn the_fast_path_never_reserves_more_than_the_text_can_hold() {
    // A shape of a billion elements with three in the body: declined, no huge allocation.
    assert_eq!(typed_json_data(DataType::Fp32, 1_000_000_000, &mut DataText::Raw("[1,2,3]")), None);
    let e = json(r#"{"inputs":[{"name":"x","shape":[1000000000],"datatype":"FP32","data":[1,2,3]}]}"#)
        .expect_err("three is not a billion");
    assert!(e.to_string().contains("1000000000"), "{e}");
}

#[test]
fn an_encoded_request_decodes_to_the_same_inputs() {
    let inputs = vec![
        Tensor { name: "x".into(), shape: vec![2, 2], data: TensorData::Fp32(vec![1.0, -2.5, 3.0, 4.25]) },
        Tensor { name: "k".into(), shape: vec![2], data: TensorData::Int64(vec![i64::MIN, 7]) },
    ];
    let mut parameters = Map::new();
    parameters.insert("timeout".into(), Value::from(1500));
    for binary in [false, true] {
        let encoded = super::super::encode::encode_request(Some("r-1"), &inputs, &parameters, binary);
        let len = encoded.json_len.map(|n| n.to_string());
        assert_eq!(len.is_some(), binary);
        let back = decode_request(&encoded.body, len.as_deref().map(str::as_bytes)).expect("decodes");
        assert_eq!(back.inputs, inputs);
        assert_eq!(back.id.as_deref(), Some("r-1"));
        assert_eq!(back.parameters.get("timeout"), Some(&Value::from(1500)));
    }
}

#[test]
fn responses_decode_from_json_and_binary_tensors() {
    use super::super::encode::{EncodedOutput, ResponseHead, encode_response};
    let y = Tensor { name: "y".into(), shape: vec![1, 3], data: TensorData::Fp32(vec![0.5, 1.5, -3.0]) };
    let label = Tensor { name: "label".into(), shape: vec![1], data: TensorData::Int64(vec![2]) };
    let head = ResponseHead { model_name: "iris", model_version: 4, id: Some("q"), parameters: None };
    for binary in [false, true] {
        let outputs = [EncodedOutput { tensor: &y, binary }, EncodedOutput { tensor: &label, binary: false }];
        let encoded = encode_response(&head, &outputs);
        let len = encoded.json_len.map(|n| n.to_string());
        let back = decode_response(&encoded.body, len.as_deref().map(str::as_bytes)).expect("decodes");
        assert_eq!(back.model_name, "iris");
        assert_eq!(back.model_version.as_deref(), Some("4"));
        assert_eq!(back.id.as_deref(), Some("q"));
        assert_eq!(back.outputs, vec![y.clone(), label.clone()]);
    }
    // What a server may leave out or add.
    let minimal = decode_response(br#"{"model_name":"m","outputs":[],"extra":1}"#, None).expect("minimal");
    assert_eq!((minimal.model_version, minimal.outputs.len()), (None, 0));
    let numeric = decode_response(br#"{"model_name":"m","model_version":3,"outputs":[]}"#, None).expect("number");
    assert_eq!(numeric.model_version.as_deref(), Some("3"));
}

#[test]
fn a_broken_response_is_refused_with_the_reason() {
    let refused = |body: &str| decode_response(body.as_bytes(), None).expect_err(body).to_string();
    assert!(refused("<html>502</html>").contains("malformed"));
    assert!(refused(r#"{"outputs":[]}"#).contains("model_name"));
    assert!(
        refused(r#"{"model_name":"m","outputs":[{"name":"y","shape":[3],"datatype":"FP32","data":[1]}]}"#)
            .contains("needs 3 elements")
    );
    assert!(
        refused(r#"{"model_name":"m","outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[1]},{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#)
            .contains("more than once")
    );
}
