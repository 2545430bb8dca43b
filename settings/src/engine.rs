//! `[model.engine]`, validated: how one version runs (device, sessions, which threads, batching).
//! Plain data: the engine (in the gateway) is what acts on it.

use std::time::Duration;

/// Where a version's sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA device ordinal; needs the `cuda` cargo feature.
    Cuda(i32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Which threads run a version's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// Chosen by the version itself when it loads: `Inline` when it runs on the CPU, a warm run
    /// of its model takes less than [`INLINE_BELOW`] and it does not batch (`max_batch = 1`),
    /// `Workers` otherwise (on a GPU a model's speed says nothing of its size, and inline
    /// means one copy of it per server thread).
    /// The default: a model's cost is only known once it runs, on the machine that serves it.
    #[default]
    Auto,
    /// One worker thread per session takes requests from the version's queue (and can batch
    /// them). The request's thread only enqueues and awaits the answer.
    Workers,
    /// The request's own thread runs the model on a session it borrows: no hand-off between
    /// threads, but that thread serves nothing else meanwhile. For small, fast models; no
    /// dynamic batching.
    Inline,
}

impl crate::Choice for Execution {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("auto", Execution::Auto), ("workers", Execution::Workers), ("inline", Execution::Inline)];
}

impl Execution {
    /// The word for this value in the config file.
    pub fn as_str(self) -> &'static str {
        crate::Choice::as_str(self)
    }
}

/// `Execution::Auto` runs a version inline when the median of its warm runs is below this: a
/// request thread held this long serves nothing else meanwhile, about what decoding a large
/// JSON body costs it anyway, while the hand-off to a worker thread costs a model of tens of
/// microseconds a third of its throughput (`benches/results/side_by_side_16core.md`).
pub const INLINE_BELOW: Duration = Duration::from_micros(100);

/// How one version is run; validated from the `[model.engine]` config table.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    pub device: Device,
    /// Sessions (and, with `Execution::Workers`, worker threads) for the version; each serves
    /// one call at a time.
    pub instances: usize,
    /// Sessions when `Execution::Auto` chooses inline: `instances` when the config sets it, else
    /// one per server thread (fewer, and requests on different threads wait for each other).
    pub inline_instances: usize,
    /// Which threads run the sessions (`Auto`: decided when the version loads).
    pub execution: Execution,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
    /// Most rows stacked into one ORT call by the dynamic batcher; 1 turns batching off.
    pub max_batch: usize,
    /// How long the batcher waits for more requests after the first one of a batch.
    pub batch_delay: Duration,
    /// Requests waiting for a session; when full, new requests are refused at once (503).
    pub queue_capacity: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            device: Device::Cpu,
            instances: 1,
            inline_instances: 1,
            execution: Execution::Auto,
            intra_op_threads: 1,
            max_batch: 1,
            batch_delay: Duration::ZERO,
            queue_capacity: 1024,
        }
    }
}
