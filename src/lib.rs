//! cotscope: a terminal workbench for designing chain-of-thought prompts on local BLOOM models.
//!
//! Data flows one way: the `model` module runs BLOOM on candle; the `engine` module turns a prompt and
//! sampling parameters into token events (the one seam every front end uses); the `lab` module reads
//! what came out (answers, failures, votes); `tui` and `cli` are the front ends.

pub mod bench;
pub mod cli;
pub mod engine;
pub mod fsutil;
pub mod hash;
pub mod lab;
pub mod model;
pub mod tui;

/// The unit tests run on the binary's allocator, so they exercise what the binary runs (the
/// quantized weights' huge-page arena included).
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: model::alloc::HugePageAlloc = model::alloc::HugePageAlloc;
