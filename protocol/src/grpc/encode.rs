//! Outputs → `ModelInferResponse`: `raw_output_contents` (the binary tensor encoding, one entry
//! per output) or typed contents, with the response parameters every Switchyard answer carries.

use std::collections::HashMap;

use super::inference::infer_parameter::ParameterChoice;
use super::inference::model_infer_response::InferOutputTensor;
use super::inference::{InferParameter, InferTensorContents, ModelInferResponse};
use crate::tensor::{DataType, Tensor, TensorData};
use crate::v2::encode::append_binary;

/// Which version, artifact and route answered: the response's `parameters` (the same keys and
/// values as the REST answer's, the version as text).
#[derive(Debug, Clone, Copy)]
pub struct Parameters<'a> {
    pub model_sha256: &'a str,
    pub model_version: u32,
    pub route: &'a str,
}

fn text(s: impl Into<String>) -> InferParameter {
    InferParameter { parameter_choice: Some(ParameterChoice::StringParam(s.into())) }
}

/// The answer to a `ModelInferRequest`: `outputs` in the order given, raw when `raw` (or when an
/// output is FP16, which has no typed field: a response is raw for all its outputs or none).
pub fn encode_response(
    model_name: &str,
    id: Option<String>,
    parameters: Parameters<'_>,
    outputs: Vec<Tensor>,
    raw: bool,
) -> ModelInferResponse {
    let raw = raw || outputs.iter().any(|t| t.datatype() == DataType::Fp16);
    let version = parameters.model_version.to_string();
    let params = HashMap::from([
        ("model_sha256".to_owned(), text(parameters.model_sha256)),
        ("model_version".to_owned(), text(version.clone())),
        ("route".to_owned(), text(parameters.route)),
    ]);
    let mut raw_output_contents = Vec::new();
    let mut tensors = Vec::with_capacity(outputs.len());
    for t in outputs {
        let datatype = t.datatype().as_v2().to_owned();
        let contents = if raw {
            let mut bytes = Vec::new();
            append_binary(&t.data, &mut bytes);
            raw_output_contents.push(bytes);
            None
        } else {
            Some(typed(t.data))
        };
        tensors.push(InferOutputTensor {
            name: t.name,
            datatype,
            shape: t.shape,
            parameters: HashMap::new(),
            contents,
        });
    }
    ModelInferResponse {
        model_name: model_name.to_owned(),
        model_version: version,
        id: id.unwrap_or_default(),
        parameters: params,
        outputs: tensors,
        raw_output_contents,
    }
}

/// Typed contents, in the field Triton reads for the datatype (narrow integers widened).
fn typed(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
        // `encode_response` sends FP16 raw; kept total rather than panicking.
        TensorData::Fp16(v) => c.fp32_contents = v.into_iter().map(|x| x.to_f32()).collect(),
    }
    c
}
