//! The common JSON request, read in one pass: `{"id": …, "inputs": [{"name", "shape",
//! "datatype", "data"}, …], "outputs": […], "parameters": {…}}`, with the tensor data read
//! straight into typed vectors where it stands in the body (`outputs` and `parameters`, small,
//! are read by serde_json where they stand).
//!
//! The general decoder (`decode::decode_request`, serde_json) first finds each `data` value's
//! extent as a `RawValue`, because `datatype` may come after it, and only then reads its
//! numbers: two passes over what is most of the body. Clients write `datatype` first (the v2
//! examples, tritonclient, KServe's clients), so here the numbers are read once, as they are
//! met. Where `data` comes first (a client serialising a sorted map: serde_json's `Value`, Go's
//! `map`), its leaves are kept as they are read and typed once `datatype` is known, still one
//! pass over the text. Anything else — another key (an input's `parameters`, which only binary
//! and shared-memory inputs carry), a duplicate, an escape in a string, a value of the wrong
//! kind, data the fast reader leaves to serde_json, a request the general decoder would refuse
//! — makes [`scan_request`] return `None`, and the general decoder reads the body from the
//! start. So this reader decides nothing: whatever it returns, the general decoder returns too
//! ([`check_agreement`], held by unit tests and the `v2_decode` fuzz target).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::decode::{
    DataText, InferRequest, Object, RawOutput, decode_general, request_parameters, requested_outputs, typed_json_data,
};
use super::json_data::{self, Leaf, Scan, number, skip_space};
use crate::tensor::{DataType, Tensor, element_count};

/// The request in `json` (a whole body, JSON only) when it has the common shape and is valid;
/// `None` leaves it to the general decoder.
pub fn scan_request(json: &[u8]) -> Option<InferRequest> {
    let mut id = None;
    let mut inputs = None;
    let mut outputs: Option<Vec<Object<RawOutput>>> = None;
    let mut parameters: Option<Map<String, Value>> = None;
    let end = object(json, skip_space(json, 0), |key, at| match key {
        "id" => once(&mut id, || string(json, at).map(|(value, after)| (value.to_owned(), after))),
        "inputs" => once(&mut inputs, || input_list(json, at)),
        "outputs" => once(&mut outputs, || serde_value(json, at)),
        "parameters" => once(&mut parameters, || serde_value(json, at)),
        _ => None,
    })?;
    if end != json.len() {
        return None;
    }
    let (parameters, binary_data_output) = request_parameters(parameters).ok()?;
    let outputs = match outputs {
        None => None,
        Some(list) => Some(requested_outputs(list).ok()?),
    };
    Some(InferRequest { id, inputs: inputs?, outputs, binary_data_output, parameters })
}

/// The JSON value at `at` (an object or an array), read by serde_json, and the index past it and
/// its whitespace.
fn serde_value<'de, T: Deserialize<'de>>(json: &'de [u8], at: usize) -> Option<(T, usize)> {
    if !matches!(json.get(at), Some(b'{' | b'[')) {
        return None;
    }
    let mut values = serde_json::Deserializer::from_slice(&json[at..]).into_iter::<T>();
    let value = values.next()?.ok()?;
    let end = at + values.byte_offset();
    // serde_json refuses nesting past 128 levels. Read here, the value starts at the first level;
    // in the general decoder, inside the request object, at the second. Nothing near that deep is
    // a request, so leave deep ones to the general decoder rather than count exactly.
    if nesting(&json[at..end]) > MAX_NESTING {
        return None;
    }
    Some((value, skip_space(json, end)))
}

/// Deeper `parameters` or `outputs` go to the general decoder (see [`serde_value`]).
const MAX_NESTING: usize = 64;

/// How deep arrays and objects nest in `text`, valid JSON.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The most leaves kept for a `data` met before its datatype (16 bytes each); a larger one is
/// left to the general decoder, which holds none.
const MAX_EARLY_LEAVES: usize = 1 << 20;

/// `[input, …]` at `at`: the tensors and the index past the list and its whitespace.
fn input_list(json: &[u8], at: usize) -> Option<(Vec<Tensor>, usize)> {
    let mut inputs: Vec<Tensor> = Vec::new();
    let mut names: HashSet<&str> = HashSet::new();
    let end = list(json, at, |at| {
        let (tensor, name, after) = input(json, at)?;
        if !names.insert(name) {
            return None;
        }
        inputs.push(tensor);
        Some(after)
    })?;
    Some((inputs, end))
}

/// One input object at `at`: its tensor, its name as it stands in the body, and the index past
/// the object and its whitespace.
fn input(json: &[u8], at: usize) -> Option<(Tensor, &str, usize)> {
    let mut name = None;
    let mut shape: Option<Vec<i64>> = None;
    let mut datatype = None;
    let mut data = None;
    // `data` read before `datatype` or `shape`: its leaves, typed at the end.
    let mut early: Option<Vec<Leaf>> = None;
    let end = object(json, at, |key, at| match key {
        "name" => once(&mut name, || string(json, at)),
        "shape" => once(&mut shape, || dims(json, at)),
        "datatype" => once(&mut datatype, || {
            let (value, after) = string(json, at)?;
            Some((DataType::from_v2(value)?, after))
        }),
        "data" if data.is_none() && early.is_none() => match (datatype, shape.as_deref()) {
            (Some(datatype), Some(shape)) => {
                let mut text = DataText::At { body: json, start: at, end: at };
                data = Some(typed_json_data(datatype, element_count(shape)?, &mut text)?);
                let DataText::At { end, .. } = text else { return None };
                Some(end)
            }
            _ => {
                let mut leaves = Vec::new();
                let mut keep = |leaf| {
                    leaves.push(leaf);
                    leaves.len() <= MAX_EARLY_LEAVES
                };
                let (Scan::Done, end) = json_data::scan_value(json, at, &mut keep) else { return None };
                early = Some(leaves);
                Some(end)
            }
        },
        _ => None,
    })?;
    let (name, shape, datatype) = (name?, shape?, datatype?);
    if let Some(leaves) = early {
        data = Some(typed_json_data(datatype, element_count(&shape)?, &mut DataText::Leaves(&leaves))?);
    }
    let tensor = Tensor { name: name.to_owned(), shape, data: data? };
    Some((tensor, name, end))
}

/// `[d, …]` at `at`: a shape's dimensions (integers that fit `i64`) and the index past it and
/// its whitespace.
fn dims(json: &[u8], at: usize) -> Option<(Vec<i64>, usize)> {
    let mut dims = Vec::new();
    let end = list(json, at, |at| {
        if !matches!(json.get(at), Some(b'-' | b'0'..=b'9')) {
            return None;
        }
        let (leaf, after) = number(json, at)?;
        dims.push(match leaf {
            Leaf::Uint(n) => i64::try_from(n).ok()?,
            Leaf::Int(n) => n,
            Leaf::Float(_) | Leaf::Bool(_) => return None,
        });
        Some(skip_space(json, after))
    })?;
    Some((dims, end))
}

/// Fills `slot` with what `read` reads, and returns the index past it; `None` if `read` fails or
/// `slot` is already filled (a key given twice is left to the general decoder, which refuses it).
fn once<T>(slot: &mut Option<T>, read: impl FnOnce() -> Option<(T, usize)>) -> Option<usize> {
    if slot.is_some() {
        return None;
    }
    let (value, after) = read()?;
    *slot = Some(value);
    Some(after)
}

/// The object at `at`: hands each member's key and the index of its value to `member`, which
/// reads the value and returns the index past it and its whitespace. The index past the object
/// and its whitespace; `None` when `member` refuses one or the text is not an object (`{}`
/// included: no request or input is empty).
fn object<'a>(json: &'a [u8], at: usize, mut member: impl FnMut(&'a str, usize) -> Option<usize>) -> Option<usize> {
    let mut at = expect(json, at, b'{')?;
    loop {
        let (key, after) = string(json, at)?;
        at = member(key, expect(json, after, b':')?)?;
        match json.get(at) {
            Some(b',') => at = skip_space(json, at + 1),
            Some(b'}') => return Some(skip_space(json, at + 1)),
            _ => return None,
        }
    }
}

/// The array at `at`: hands the index of each element to `element`, which reads it and returns
/// the index past it and its whitespace. The index past the array and its whitespace; `None`
/// when `element` refuses one or the text is not an array.
fn list(json: &[u8], at: usize, mut element: impl FnMut(usize) -> Option<usize>) -> Option<usize> {
    let mut at = expect(json, at, b'[')?;
    if json.get(at) == Some(&b']') {
        return Some(skip_space(json, at + 1));
    }
    loop {
        at = element(at)?;
        match json.get(at) {
            Some(b',') => at = skip_space(json, at + 1),
            Some(b']') => return Some(skip_space(json, at + 1)),
            _ => return None,
        }
    }
}

/// A string with no escapes at `at`: its text and the index past it and its whitespace. JSON
/// forbids raw control characters in strings; an escape or one of them is left to serde_json.
fn string(json: &[u8], at: usize) -> Option<(&str, usize)> {
    let start = expect_byte(json, at, b'"')?;
    let len = json.get(start..)?.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let end = start + len;
    if json[end] != b'"' {
        return None;
    }
    let text = std::str::from_utf8(&json[start..end]).ok()?;
    Some((text, skip_space(json, end + 1)))
}

/// The index past `byte` at `at` and the whitespace after it.
fn expect(json: &[u8], at: usize, byte: u8) -> Option<usize> {
    expect_byte(json, at, byte).map(|after| skip_space(json, after))
}

fn expect_byte(json: &[u8], at: usize, byte: u8) -> Option<usize> {
    (json.get(at) == Some(&byte)).then_some(at + 1)
}

/// Panics unless the general decoder returns what [`scan_request`] returns, whenever it returns
/// something. For the unit tests and the `v2_decode` fuzz target.
pub fn check_agreement(json: &[u8]) {
    if let Some(fast) = scan_request(json) {
        match decode_general(json, None) {
            Ok(general) => assert_eq!(fast, general, "the two readers differ on {:?}", String::from_utf8_lossy(json)),
            Err(e) => {
                panic!("scan_request took {:?}, which the general decoder refuses: {e}", String::from_utf8_lossy(json))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    #[test]
    fn the_common_request_is_read_in_one_pass() {
        let body = br#" { "id" : "r1", "inputs" : [ {"name":"a","shape":[1,3],"datatype":"FP32","data":[1,2.5,-3e-1]} ,
            {"name": "b", "shape": [2], "datatype": "INT64", "data": [[7], [-8]] } ] } "#;
        let request = scan_request(body).expect("the common shape");
        assert_eq!(request.id.as_deref(), Some("r1"));
        assert_eq!(request.inputs.len(), 2);
        assert_eq!(request.inputs[0].shape, [1, 3]);
        assert_eq!(request.inputs[0].data, TensorData::Fp32(vec![1.0, 2.5, -0.3]));
        assert_eq!(request.inputs[1].data, TensorData::Int64(vec![7, -8]));
        check_agreement(body);
        // As tritonclient sends it: outputs or parameters after the inputs.
        let body = br#"{"id":"7","inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[0.5]}],"parameters":{"binary_data_output":true,"timeout":500}}"#;
        let request = scan_request(body).expect("tritonclient's request");
        assert!(request.binary_data_output);
        assert_eq!(request.parameters.get("timeout"), Some(&serde_json::json!(500)));
        check_agreement(body);
        let body = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[0.5]}],"outputs":[{"name":"y","parameters":{"binary_data":false}},{"name":"z"}]}"#;
        let request = scan_request(body).expect("tritonclient's request");
        let outputs = request.outputs.as_deref().expect("outputs");
        assert_eq!((outputs[0].name.as_str(), outputs[0].binary_data), ("y", Some(false)));
        assert_eq!((outputs[1].name.as_str(), outputs[1].binary_data), ("z", None));
        check_agreement(body);
        // No id, no inputs.
        assert!(scan_request(br#"{"inputs":[]}"#).is_some_and(|r| r.id.is_none() && r.inputs.is_empty()));
    }

    #[test]
    fn data_before_its_type_is_typed_once_the_type_is_known() {
        for body in [
            &br#"{"inputs":[{"data":[[1,2]],"datatype":"INT32","name":"a","shape":[1,2]}]}"#[..],
            br#"{"inputs":[{"name":"a","datatype":"INT32","data":[1,2],"shape":[1,2]}]}"#,
        ] {
            let request = scan_request(body).expect("one pass");
            assert_eq!(request.inputs[0].data, TensorData::Int32(vec![1, 2]));
            check_agreement(body);
        }
        // Not valid for the type, the wrong count, no type at all, twice: the general decoder says why.
        for body in [
            &br#"{"inputs":[{"data":[1,2.5],"datatype":"INT32","name":"a","shape":[2]}]}"#[..],
            br#"{"inputs":[{"data":[1,2,3],"datatype":"INT32","name":"a","shape":[2]}]}"#,
            br#"{"inputs":[{"data":[1,2],"name":"a","shape":[2]}]}"#,
            br#"{"inputs":[{"data":[1,2],"data":[1,2],"datatype":"INT32","name":"a","shape":[2]}]}"#,
        ] {
            assert!(scan_request(body).is_none(), "{}", String::from_utf8_lossy(body));
            check_agreement(body);
        }
    }

    #[test]
    fn everything_else_is_left_to_the_general_decoder() {
        let data = r#""name":"a","shape":[2],"datatype":"FP32","data":[1,2]"#;
        let left = [
            // Other keys; outputs and parameters the general decoder refuses, or that are null.
            format!(r#"{{"inputs":[{{{data}}}],"model":"m"}}"#),
            format!(r#"{{"inputs":[{{{data}}}],"outputs":[{{"name":"y"}},{{"name":"y"}}]}}"#),
            format!(r#"{{"inputs":[{{{data}}}],"outputs":[{{"name":"y","parameters":{{"classification":2}}}}]}}"#),
            format!(r#"{{"inputs":[{{{data}}}],"outputs":[{{"name":"y","parameters":{{"binary_data":1}}}}]}}"#),
            format!(r#"{{"parameters":{{"binary_data_output":"yes"}},"inputs":[{{{data}}}]}}"#),
            format!(r#"{{"parameters":null,"inputs":[{{{data}}}]}}"#),
            format!(r#"{{"outputs":null,"inputs":[{{{data}}}]}}"#),
            format!(r#"{{"inputs":[{{{data}}}],"parameters":{{"deep":{}1{}}}}}"#, "[".repeat(64), "]".repeat(64)),
            format!(r#"{{"inputs":[{{{data},"parameters":{{"binary_data_size":8}}}}]}}"#),
            // Duplicates: keys and input names.
            format!(r#"{{"inputs":[{{{data}}}],"inputs":[]}}"#),
            format!(r#"{{"inputs":[{{{data},"name":"b"}}]}}"#),
            format!(r#"{{"inputs":[{{{data}}},{{{data}}}]}}"#),
            // Strings with escapes, ids that are not strings.
            r#"{"inputs":[{"name":"\u0061","shape":[2],"datatype":"FP32","data":[1,2]}]}"#.to_owned(),
            format!(r#"{{"id":7,"inputs":[{{{data}}}]}}"#),
            // Data the fast reader leaves to serde_json, or that does not fit.
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,1e400]}]}"#.to_owned(),
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"BYTES","data":["x","y"]}]}"#.to_owned(),
            r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","data":[1,2]}]}"#.to_owned(),
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"UINT8","data":[1,256]}]}"#.to_owned(),
            // Shapes and types the general decoder refuses with a message.
            r#"{"inputs":[{"name":"a","shape":[-2],"datatype":"FP32","data":[1,2]}]}"#.to_owned(),
            r#"{"inputs":[{"name":"a","shape":[2.0],"datatype":"FP32","data":[1,2]}]}"#.to_owned(),
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP33","data":[1,2]}]}"#.to_owned(),
            // Missing fields, trailing text, not JSON.
            r#"{"inputs":[{"name":"a","shape":[2],"data":[1,2]}]}"#.to_owned(),
            r#"{"id":"r"}"#.to_owned(),
            format!(r#"{{"inputs":[{{{data}}}]}} x"#),
            format!(r#"{{"inputs":[{{{data}}},]}}"#),
            format!(r#"{{"inputs":[{{{data}}}]"#),
            String::new(),
        ];
        for body in &left {
            assert!(scan_request(body.as_bytes()).is_none(), "took {body}");
            check_agreement(body.as_bytes());
        }
    }

    #[test]
    fn nesting_counts_brackets_outside_strings() {
        assert_eq!(nesting(br#"{}"#), 1);
        assert_eq!(nesting(br#"{"a":[1,{"b":[]}],"c":{}}"#), 4);
        assert_eq!(nesting(br#"{"a":"[[[{{\"[","b":["]"]}"#), 2);
        // Around serde_json's limit: the general decoder refuses what sits one level deeper.
        for depth in [62, 63, 64, 125, 126, 127, 128] {
            let body = format!(r#"{{"inputs":[],"parameters":{{"p":{}0{}}}}}"#, "[".repeat(depth), "]".repeat(depth));
            check_agreement(body.as_bytes());
        }
    }

    #[test]
    fn it_agrees_with_the_general_decoder_on_every_prefix() {
        let body = br#"{"id":"x","inputs":[{"name":"in","shape":[2,2],"datatype":"FP64","data":[[0.5,1e3],[true,2]]},{"name":"m","shape":[0],"datatype":"BOOL","data":[]}]}"#;
        for end in 0..=body.len() {
            check_agreement(&body[..end]);
        }
        check_agreement(br#"{"id":"x","inputs":[{"name":"in","shape":[1,2],"datatype":"BOOL","data":[true,false]}]}"#);
    }
}
