//! Running a generation off the caller's thread, so a UI stays responsive while the model works.

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{CancelFlag, Engine, EngineError, EngineEvent, GenerateRequest};

/// What a running generation sends: its events in order, then, if it failed, the error (last).
pub type GenerationMessage = Result<EngineEvent, EngineError>;

/// A generation running on its own thread.
///
/// Read `events` (blocking `recv`, or `try_recv` between key presses); the channel closes when the
/// generation is over. `cancel()` stops it within one token step; dropping `events` cancels too.
pub struct Generation {
    pub events: Receiver<GenerationMessage>,
    cancel: CancelFlag,
    handle: Option<JoinHandle<()>>,
}

impl Generation {
    pub fn spawn(engine: Arc<dyn Engine>, req: GenerateRequest) -> Self {
        let (tx, events) = mpsc::channel();
        let cancel = CancelFlag::new();
        let flag = cancel.clone();
        let err_tx = tx.clone();
        let spawned = std::thread::Builder::new().name("cotscope-generate".into()).spawn(move || {
            let mut sink = |ev: EngineEvent| {
                // Nobody is listening any more: stop working for them.
                if tx.send(Ok(ev)).is_err() {
                    flag.cancel();
                }
            };
            if let Err(e) = engine.generate(&req, &flag, &mut sink) {
                let _ = tx.send(Err(e));
            }
        });
        let handle = match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                let _ = err_tx.send(Err(EngineError::Model(format!("cannot start the generation thread: {e}"))));
                None
            }
        };
        Self { events, cancel, handle }
    }

    /// Asks the generation to stop; remaining paths end with `StopReason::Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel()
    }

    /// The flag behind [`Generation::cancel`], to cancel from elsewhere.
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Whether the generation thread has ended (all its events are then in `events`).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the thread to end. Errors only if it panicked (generation errors come as events).
    pub fn join(mut self) -> Result<(), EngineError> {
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| EngineError::Model("the generation thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Waits for the end and returns every event, or the error the generation ended with.
    pub fn collect(self) -> Result<Vec<EngineEvent>, EngineError> {
        let mut out = Vec::new();
        for msg in self.events.iter() {
            out.push(msg?);
        }
        self.join()?;
        Ok(out)
    }
}
