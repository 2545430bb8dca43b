//! What every request a decoder accepts must hold, whichever front end decoded it (REST's
//! `v2_decode`, gRPC's `grpc_decode`): each input's data has exactly the number of elements its
//! shape says, and no input or requested output is named twice.

use protocol::tensor::element_count;
use protocol::v2::decode::InferRequest;

pub fn check(request: &InferRequest) {
    for (i, tensor) in request.inputs.iter().enumerate() {
        assert_eq!(
            element_count(&tensor.shape),
            Some(tensor.data.len()),
            "accepted input '{}' with shape {:?} but {} elements",
            tensor.name,
            tensor.shape,
            tensor.data.len()
        );
        assert!(request.inputs[..i].iter().all(|t| t.name != tensor.name), "accepted input '{}' twice", tensor.name);
    }
    if let Some(outputs) = &request.outputs {
        for (i, out) in outputs.iter().enumerate() {
            assert!(outputs[..i].iter().all(|o| o.name != out.name), "accepted output '{}' twice", out.name);
        }
    }
}
