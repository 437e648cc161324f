//! The UI loop: terminal events and worker reports arrive on one tokio channel; keys become actions
//! through the keymap; `App::update` turns actions into commands, which are carried out here; frames are
//! drawn when something changed, at most every [`FRAME`] while tokens stream (keys draw at once). The
//! loop awaits the channel (with a tokio timer while a frame is pending) on a current-thread runtime, so
//! an idle UI takes no CPU; the model and the key reader stay on their own threads.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event as TermEvent};
use tokio::sync::mpsc;

use crate::engine::CancelFlag;

use super::action::Action;
use super::app::{App, AppConfig};
use super::clipboard::Clipboard;
use super::command::Command;
use super::theme::Theme;
use super::worker::{Loader, Sink, Worker};
use super::{draw, keymap, session, terminal, TuiError};
use crate::lab;

/// Shortest time between two frames while tokens stream.
pub const FRAME: Duration = Duration::from_millis(30);

/// What the TUI starts from.
pub struct Options {
    pub templates_dir: PathBuf,
    pub sessions_dir: PathBuf,
    /// Opens the model; runs on the worker thread while the UI shows "loading model…".
    pub loader: Loader,
}

enum Event {
    Term(TermEvent),
    Action(Action),
    InputFailed(String),
}

/// Runs the TUI until the user quits.
pub fn run(opts: Options) -> Result<(), TuiError> {
    let set = lab::template::load_dir(&opts.templates_dir);
    let template_errors = set.errors.iter().map(|e| e.to_string()).collect();
    let mut app = App::new(AppConfig {
        problems: lab::gsm8k::test_set(),
        templates: set.templates,
        template_errors,
        templates_dir: opts.templates_dir.clone(),
        sessions_dir: opts.sessions_dir.clone(),
        theme: Theme::from_env(),
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(TuiError::Terminal)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let worker_tx = tx.clone();
    let sink: Sink = Arc::new(move |a| {
        let _ = worker_tx.send(Event::Action(a));
    });
    let worker = Worker::spawn(opts.loader, sink);

    let (mut term, guard) = terminal::enter().map_err(TuiError::Terminal)?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx, Arc::clone(&stop));

    let mut exec = Executor { worker, cancels: HashMap::new(), clipboard: None, sessions_dir: opts.sessions_dir };
    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - FRAME;
    let result = loop {
        if dirty && (urgent || last_draw.elapsed() >= FRAME) {
            if let Err(e) = term.draw(|f| draw::draw(&app, f)) {
                break Err(TuiError::Terminal(e));
            }
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
        }
        let first = if dirty {
            let wait = FRAME.saturating_sub(last_draw.elapsed());
            // The timer must be made inside the runtime, hence the async block.
            match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                Ok(Some(e)) => Some(e),
                Ok(None) => break Ok(()),
                Err(_frame_due) => None,
            }
        } else {
            match rt.block_on(rx.recv()) {
                Some(e) => Some(e),
                None => break Ok(()),
            }
        };
        // Handle everything already queued before drawing again; keys keep their order among tokens.
        let mut events: Vec<Event> = first.into_iter().collect();
        while events.len() < 4096 {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let mut failed = None;
        for ev in events {
            let action = match ev {
                Event::Term(TermEvent::Key(k)) => {
                    urgent = true;
                    keymap::action_for(&app, k)
                }
                Event::Term(TermEvent::Resize(_, _)) => {
                    urgent = true;
                    Some(Action::Resize)
                }
                Event::Term(_) => None,
                Event::Action(a) => Some(a),
                Event::InputFailed(e) => {
                    failed = Some(e);
                    None
                }
            };
            if let Some(a) = action {
                dirty = true;
                exec.apply(&mut app, a);
            }
        }
        if let Some(e) = failed {
            break Err(TuiError::Input(e));
        }
        if app.quit {
            break Ok(());
        }
    };
    stop.store(true, Ordering::SeqCst);
    for c in exec.cancels.values() {
        c.cancel();
    }
    drop(term);
    drop(guard);
    let _ = input.join();
    result
}

fn spawn_input(tx: mpsc::UnboundedSender<Event>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            // poll blocks up to the timeout; the timeout only lets the thread notice `stop`.
            match event::poll(Duration::from_millis(200)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.send(Event::Term(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Event::InputFailed(e.to_string()));
                        return;
                    }
                },
                Ok(false) => {}
                Err(e) => {
                    let _ = tx.send(Event::InputFailed(e.to_string()));
                    return;
                }
            }
        }
    })
}

/// Carries out commands; results come back as actions and are applied at once.
struct Executor {
    worker: Worker,
    cancels: HashMap<u64, CancelFlag>,
    clipboard: Option<Clipboard>,
    sessions_dir: PathBuf,
}

impl Executor {
    fn apply(&mut self, app: &mut App, action: Action) {
        let mut queue = VecDeque::from([action]);
        while let Some(a) = queue.pop_front() {
            if let Action::GenerationFinished { run } | Action::GenerationFailed { run, .. } = &a {
                self.cancels.remove(run);
            }
            for cmd in app.update(a) {
                if let Some(back) = self.execute(cmd) {
                    queue.push_back(back);
                }
            }
        }
    }

    fn execute(&mut self, cmd: Command) -> Option<Action> {
        match cmd {
            Command::StartGeneration { run, requests } => {
                let cancel = CancelFlag::new();
                self.cancels.insert(run, cancel.clone());
                self.worker
                    .generate(run, requests, cancel)
                    .err()
                    .map(|message| Action::GenerationFailed { run, message })
            }
            Command::CancelGeneration { run } => {
                if let Some(c) = self.cancels.get(&run) {
                    c.cancel();
                }
                None
            }
            Command::CountTokens { prompt_sha256, text } => self
                .worker
                .count_tokens(prompt_sha256.clone(), text)
                .err()
                .map(|e| Action::TokenCount { prompt_sha256, result: Err(e) }),
            Command::SaveSession { mut session, path } => {
                Some(match session::save(&self.sessions_dir, &mut session, path.as_deref(), chrono::Local::now()) {
                    Ok(p) => Action::SessionSaved(p),
                    Err(e) => Action::Failed(format!("saving the session failed: {e}")),
                })
            }
            Command::ListSessions => Some(match session::list(&self.sessions_dir) {
                Ok(list) => Action::SessionsListed(list),
                Err(e) => Action::Failed(e.to_string()),
            }),
            Command::OpenSession(path) => Some(match session::load(&path) {
                Ok(s) => Action::SessionOpened { path, session: Box::new(s) },
                Err(e) => Action::Failed(e.to_string()),
            }),
            Command::Copy(text) => {
                let cb = self.clipboard.get_or_insert_with(Clipboard::new);
                let mut out = std::io::stdout();
                Some(match cb.copy(&text, &mut out) {
                    Ok(o) => Action::Copied(o),
                    Err(e) => Action::Failed(format!("copy failed: {e}")),
                })
            }
            Command::WriteTemplate { path, template } => Some(match template.save(&path) {
                Ok(()) => Action::TemplateWritten { path, template },
                Err(e) => Action::Failed(e.to_string()),
            }),
            Command::Quit => {
                let _ = std::io::stdout().flush();
                None
            }
        }
    }
}
