//! Conversions between the gateway's tensors and ONNX Runtime values and type information.

use model_store::{Signature, TensorSpec};
use ort::session::Session;
use ort::value::{DynValue, Outlet, Tensor as OrtTensor, TensorElementType, ValueType};

use protocol::tensor::{DataType, Tensor, TensorData};

/// Maps an ONNX element type to its v2 datatype; `None` for types v2 cannot carry (bf16, complex, …).
pub fn datatype_of(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

fn spec_of(outlet: &Outlet, role: &str) -> Result<TensorSpec, String> {
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            let datatype = datatype_of(*ty).ok_or_else(|| {
                format!("{role} '{}' has element type {ty:?}, which the v2 protocol cannot carry", outlet.name())
            })?;
            Ok(TensorSpec {
                name: outlet.name().to_owned(),
                datatype: datatype.as_v2().to_owned(),
                shape: shape.to_vec(),
            })
        }
        other => Err(format!(
            "{role} '{}' is a {other:?}, not a tensor; only tensor inputs and outputs are served",
            outlet.name()
        )),
    }
}

/// Reads a session's input and output signature. Errors name the first unsupported tensor.
pub fn signature_of(session: &Session) -> Result<Signature, String> {
    let inputs = session.inputs().iter().map(|o| spec_of(o, "input")).collect::<Result<_, _>>()?;
    let outputs = session.outputs().iter().map(|o| spec_of(o, "output")).collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

/// Turns a tensor into an ORT value, moving its buffer where ORT allows (all but strings).
pub fn to_ort(tensor: Tensor) -> ort::Result<DynValue> {
    let shape = tensor.shape;
    Ok(match tensor.data {
        TensorData::Bool(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Uint64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int8(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Int64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Fp16(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Fp32(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Fp64(v) => OrtTensor::from_array((shape, v))?.into_dyn(),
        TensorData::Bytes(v) => {
            // The HTTP layer has already refused non-UTF-8 BYTES for this model.
            let strings: Vec<String> = v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
            OrtTensor::from_string_array((shape, strings.as_slice()))?.into_dyn()
        }
    })
}

/// Copies an ORT output value into a gateway tensor.
pub fn from_ort(name: &str, value: &DynValue) -> ort::Result<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(ort::Error::new(format!("output '{name}' is not a tensor")));
    };
    macro_rules! extract {
        ($variant:ident, $ty:ty) => {{
            let (shape, data) = value.try_extract_tensor::<$ty>()?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Bool => extract!(Bool, bool),
        TensorElementType::Uint8 => extract!(Uint8, u8),
        TensorElementType::Uint16 => extract!(Uint16, u16),
        TensorElementType::Uint32 => extract!(Uint32, u32),
        TensorElementType::Uint64 => extract!(Uint64, u64),
        TensorElementType::Int8 => extract!(Int8, i8),
        TensorElementType::Int16 => extract!(Int16, i16),
        TensorElementType::Int32 => extract!(Int32, i32),
        TensorElementType::Int64 => extract!(Int64, i64),
        TensorElementType::Float16 => extract!(Fp16, half::f16),
        TensorElementType::Float32 => extract!(Fp32, f32),
        TensorElementType::Float64 => extract!(Fp64, f64),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings()?;
            (shape.to_vec(), TensorData::Bytes(strings.into_iter().map(String::into_bytes).collect()))
        }
        other => return Err(ort::Error::new(format!("output '{name}' has unsupported element type {other:?}"))),
    };
    Ok(Tensor { name: name.to_owned(), shape, data })
}
