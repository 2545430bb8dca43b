//! Switchyard's policy layer: the decisions, as pure functions of plain inputs. Which version a
//! request goes to (`router`), whether a version breaches its guard and where its traffic goes
//! (`guard`), whether a candidate passes its promotion gates (`promotion`). No clock is read and
//! nothing is stored here except the guard's sliding windows, which the serving layer owns; no
//! tokio, ONNX Runtime or registry (cargo enforces it), so every edge case is a unit test.

pub mod drift;
pub mod guard;
pub mod promotion;
pub mod router;
