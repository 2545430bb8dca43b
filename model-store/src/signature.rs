//! Model signature: the named, typed, shaped tensors a version takes and returns, recorded at
//! registration so requests can be validated without loading the model.

use serde::{Deserialize, Serialize};

/// Inputs and outputs of one model version, in the model's own order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Tensors the model takes.
    pub inputs: Vec<TensorSpec>,
    /// Tensors the model returns.
    pub outputs: Vec<TensorSpec>,
}

/// One named tensor of a signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Tensor name as the model declares it.
    pub name: String,
    /// KServe v2 datatype name: "BOOL", "UINT8"…"UINT64", "INT8"…"INT64", "FP16", "FP32",
    /// "FP64", "BYTES". Stored as given; the store does not interpret it.
    pub datatype: String,
    /// Dimensions; `-1` marks a dynamic dimension (such as the batch).
    pub shape: Vec<i64>,
}

impl Signature {
    /// The input named `name`, if any.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|spec| spec.name == name)
    }

    /// The output named `name`, if any.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|spec| spec.name == name)
    }
}

impl TensorSpec {
    /// Whether any dimension is dynamic (`-1`).
    pub fn is_dynamic(&self) -> bool {
        self.shape.iter().any(|&dim| dim < 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_json_round_trips_and_finds_tensors() {
        let signature = Signature {
            inputs: vec![TensorSpec { name: "x".into(), datatype: "FP32".into(), shape: vec![-1, 4] }],
            outputs: vec![TensorSpec { name: "y".into(), datatype: "INT64".into(), shape: vec![-1] }],
        };
        let json = serde_json::to_string(&signature).expect("serialize");
        let back: Signature = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, signature);
        assert!(back.input("x").is_some_and(TensorSpec::is_dynamic));
        assert!(back.output("x").is_none());
        assert_eq!(back.output("y").map(|spec| spec.datatype.as_str()), Some("INT64"));
    }
}
