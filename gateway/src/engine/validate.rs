//! Checks a request's inputs against a version's signature before anything reaches ONNX Runtime:
//! names, datatype, rank, fixed dimensions, UTF-8 for string tensors.

use model_store::Signature;

use protocol::tensor::{Tensor, TensorData};

/// An input that does not fit the version's signature (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("missing input '{name}' (the model expects {expected})")]
    Missing { name: String, expected: String },
    #[error("unknown input '{name}' (the model expects {expected})")]
    Unknown { name: String, expected: String },
    #[error("input '{name}': expected datatype {expected}, got {actual}")]
    Datatype { name: String, expected: String, actual: String },
    #[error("input '{name}': expected shape {expected:?} (-1 = any), got {actual:?}")]
    Shape { name: String, expected: Vec<i64>, actual: Vec<i64> },
    #[error("input '{name}': BYTES element {index} is not valid UTF-8, which ONNX string tensors require")]
    NotUtf8 { name: String, index: usize },
}

fn names(sig: &Signature) -> String {
    let list: Vec<String> = sig.inputs.iter().map(|s| format!("'{}' {} {:?}", s.name, s.datatype, s.shape)).collect();
    list.join(", ")
}

/// Validates `inputs` against `signature`. On success every declared input is present exactly once.
pub fn validate_inputs(signature: &Signature, inputs: &[Tensor]) -> Result<(), InputError> {
    for tensor in inputs {
        let Some(spec) = signature.inputs.iter().find(|s| s.name == tensor.name) else {
            return Err(InputError::Unknown { name: tensor.name.clone(), expected: names(signature) });
        };
        if spec.datatype != tensor.datatype().as_v2() {
            return Err(InputError::Datatype {
                name: tensor.name.clone(),
                expected: spec.datatype.clone(),
                actual: tensor.datatype().as_v2().to_owned(),
            });
        }
        let fits = spec.shape.len() == tensor.shape.len()
            && spec.shape.iter().zip(&tensor.shape).all(|(&want, &got)| want < 0 || want == got);
        if !fits {
            return Err(InputError::Shape {
                name: tensor.name.clone(),
                expected: spec.shape.clone(),
                actual: tensor.shape.clone(),
            });
        }
        if let TensorData::Bytes(items) = &tensor.data
            && let Some(index) = items.iter().position(|b| std::str::from_utf8(b).is_err())
        {
            return Err(InputError::NotUtf8 { name: tensor.name.clone(), index });
        }
    }
    // Names are unique (the decoder refuses duplicates), so a count match plus the loop above
    // means every declared input is present; find the first absent one for the message.
    if let Some(missing) = signature.inputs.iter().find(|s| !inputs.iter().any(|t| t.name == s.name)) {
        return Err(InputError::Missing { name: missing.name.clone(), expected: names(signature) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use model_store::TensorSpec;

    use super::*;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec { name: "x".into(), datatype: "FP32".into(), shape: vec![-1, 4] },
                TensorSpec { name: "s".into(), datatype: "BYTES".into(), shape: vec![-1] },
            ],
            outputs: vec![],
        }
    }

    fn x(shape: Vec<i64>) -> Tensor {
        let n = protocol::tensor::element_count(&shape).expect("valid");
        Tensor { name: "x".into(), shape, data: TensorData::Fp32(vec![0.0; n]) }
    }

    fn s(items: Vec<Vec<u8>>) -> Tensor {
        Tensor { name: "s".into(), shape: vec![items.len() as i64], data: TensorData::Bytes(items) }
    }

    #[test]
    fn accepts_dynamic_batch() {
        assert_eq!(validate_inputs(&sig(), &[x(vec![3, 4]), s(vec![b"a".to_vec()])]), Ok(()));
    }

    #[test]
    fn refuses_each_mismatch() {
        let sig = sig();
        assert!(
            matches!(validate_inputs(&sig, &[x(vec![1, 4])]), Err(InputError::Missing { name, .. }) if name == "s")
        );
        assert!(matches!(validate_inputs(&sig, &[x(vec![1, 5]), s(vec![])]), Err(InputError::Shape { .. })));
        assert!(matches!(validate_inputs(&sig, &[x(vec![4]), s(vec![])]), Err(InputError::Shape { .. })));
        let wrong = Tensor { name: "x".into(), shape: vec![1, 4], data: TensorData::Int32(vec![0; 4]) };
        let err = validate_inputs(&sig, &[wrong, s(vec![])]).unwrap_err();
        assert_eq!(err.to_string(), "input 'x': expected datatype FP32, got INT32");
        let extra = Tensor { name: "y".into(), shape: vec![1], data: TensorData::Fp32(vec![0.0]) };
        assert!(matches!(validate_inputs(&sig, &[extra]), Err(InputError::Unknown { .. })));
        assert!(matches!(
            validate_inputs(&sig, &[x(vec![1, 4]), s(vec![vec![0xff, 0xfe]])]),
            Err(InputError::NotUtf8 { index: 0, .. })
        ));
    }
}
