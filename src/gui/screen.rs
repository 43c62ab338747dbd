//! What a screen gets while it draws, and how answers find their way back to it.
//!
//! A screen is a view struct that owns its state and draws with `ui(&mut self, ui, ctx)`. It
//! reads the workspace and the runs through [`ScreenCtx`], asks the app for changes
//! ([`AppRequest`], applied once the frame is drawn) and asks the side worker for slow work
//! ([`ScreenCtx::ask_side`]); the side worker's answer comes back by request id to the screen
//! that asked (`on_side_event`), never to another one.
use std::collections::HashMap;

use adapter_studio::side_worker::SideCommand;
use adapter_studio::workspace::Workspace;

use super::runs_ui::RunEntry;
use super::AppRequest;

/// Who asked the side worker for something: its answer goes back there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    Models,
    /// The shared model summaries (`ModelDetails`), not a screen.
    ModelDetails,
    Datasets,
    Runs,
    Adapters,
    Train,
    Inspect,
    Playground,
    Export,
    Studies,
}

/// Side-worker questions of one frame, and who asked each one still unanswered.
#[derive(Default)]
pub struct SideAsks {
    next_id: u64,
    /// Asked this frame, sent once it is drawn.
    outbox: Vec<SideCommand>,
    /// Request id → the screen waiting for its answer.
    owners: HashMap<u64, Asker>,
}

impl SideAsks {
    /// A fresh request id, its answer routed to `asker`.
    pub fn ask(&mut self, asker: Asker, make: impl FnOnce(u64) -> SideCommand) -> u64 {
        let id = self.reserve(asker);
        self.outbox.push(make(id));
        id
    }

    /// A fresh request id whose answer goes to `asker`, for a command the caller sends.
    pub fn reserve(&mut self, asker: Asker) -> u64 {
        self.next_id += 1;
        self.owners.insert(self.next_id, asker);
        self.next_id
    }

    /// What was asked this frame, to send.
    pub fn take_outbox(&mut self) -> Vec<SideCommand> {
        std::mem::take(&mut self.outbox)
    }

    /// Who waits for the answer `id`; `last` forgets it (progress reports are not last).
    pub fn owner(&mut self, id: u64, last: bool) -> Option<Asker> {
        match last {
            true => self.owners.remove(&id),
            false => self.owners.get(&id).copied(),
        }
    }
}

/// The [`ScreenCtx`] of screen `asker` from the app's fields (a macro: the screen's own
/// field stays free to borrow beside it).
macro_rules! screen_ctx {
    ($app:ident, $asker:expr) => {
        $crate::gui::screen::ScreenCtx {
            ws: &$app.ws,
            runs: &$app.runs.runs,
            models: &mut $app.model_details,
            asker: $asker,
            requests: &mut $app.requests,
            side: &mut $app.asks,
        }
    };
}
pub(super) use screen_ctx;

/// A screen's window on the app while it draws or handles an answer: the workspace and the
/// runs to read, and the two ways to ask for anything else.
pub struct ScreenCtx<'a> {
    pub ws: &'a Workspace,
    pub runs: &'a [RunEntry],
    /// Base models' summaries (read on the side worker when first asked for).
    pub models: &'a mut super::model_details::ModelDetails,
    pub(super) asker: Asker,
    pub(super) requests: &'a mut Vec<AppRequest>,
    pub(super) side: &'a mut SideAsks,
}

impl ScreenCtx<'_> {
    /// Asks for `request` to be applied once this frame is drawn.
    pub fn request(&mut self, request: AppRequest) {
        self.requests.push(request);
    }

    /// Asks the side worker for `make(id)`; the answer comes back to this screen with `id`.
    pub fn ask_side(&mut self, make: impl FnOnce(u64) -> SideCommand) -> u64 {
        self.side.ask(self.asker, make)
    }
}
