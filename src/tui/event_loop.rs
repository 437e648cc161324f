//! The UI loop: terminal events and worker reports arrive on one tokio channel; keys become intents
//! through the keymap; the app turns intents and reports into commands, which are carried out here
//! (their outcomes come back as reports); frames are
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

use super::app::{App, AppConfig};
use super::clipboard::Clipboard;
use super::command::Command;
use super::experiments::ExperimentUpdate;
use super::intent::Intent;
use super::report::Report;
use super::theme::Theme;
use super::worker::{Loader, Sink, Worker};
use super::{config, draw, keymap, session, terminal, TuiError};
use crate::lab;
use crate::lab::settings::ModelSettings;

/// Shortest time between two frames while tokens stream.
pub const FRAME: Duration = Duration::from_millis(30);

/// What the TUI starts from.
pub struct Options {
    pub templates_dir: PathBuf,
    pub sessions_dir: PathBuf,
    /// Opens the model; runs on the worker thread while the UI shows "loading model…".
    pub loader: Loader,
    /// Where settings are remembered between launches (None: not remembered).
    pub settings_file: Option<PathBuf>,
    /// The model as experiments record it (as `eval` would with the same flags).
    pub model_settings: ModelSettings,
}

enum Event {
    Term(TermEvent),
    Report(Report),
    InputFailed(String),
}

/// Starts the workbench and runs it until the user quits.
pub fn start(opts: Options) -> Result<(), TuiError> {
    let set = lab::template::load_dir(&opts.templates_dir);
    let mut template_errors: Vec<String> = set.errors.iter().map(|e| e.to_string()).collect();
    let settings = match opts.settings_file.as_deref().map(config::load) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            template_errors.push(format!("settings not restored: {e}"));
            None
        }
        None => None,
    };
    let mut app = App::new(AppConfig {
        problems: lab::gsm8k::test_set(),
        templates: set.templates,
        template_errors,
        templates_dir: opts.templates_dir.clone(),
        sessions_dir: opts.sessions_dir.clone(),
        theme: Theme::from_env(),
        settings,
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(TuiError::Terminal)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let worker_tx = tx.clone();
    let sink: Sink = Arc::new(move |r| {
        let _ = worker_tx.send(Event::Report(r));
    });
    let worker = Worker::spawn(opts.loader, sink);

    let (mut term, guard) = terminal::enter().map_err(TuiError::Terminal)?;
    if let Ok(size) = term.size() {
        app.on_report(Report::Resized { width: size.width, height: size.height });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx, Arc::clone(&stop));

    let mut exec = Executor {
        worker,
        cancels: HashMap::new(),
        clipboard: None,
        sessions_dir: opts.sessions_dir,
        settings_file: opts.settings_file,
        model_settings: opts.model_settings,
    };
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
            match ev {
                Event::Term(TermEvent::Key(k)) => {
                    urgent = true;
                    dirty = true;
                    if let Some(intent) = keymap::intent_for(&app, k) {
                        exec.intent(&mut app, intent);
                    }
                }
                // The next frame fits the new size; the app only notes it (the token cursor's lines).
                Event::Term(TermEvent::Resize(width, height)) => {
                    urgent = true;
                    dirty = true;
                    app.on_report(Report::Resized { width, height });
                }
                Event::Term(_) => {}
                Event::Report(r) => {
                    dirty = true;
                    exec.report(&mut app, r);
                }
                Event::InputFailed(e) => failed = Some(e),
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

/// Carries out commands; what they learn comes back as reports, applied at once.
struct Executor {
    worker: Worker,
    cancels: HashMap<u64, CancelFlag>,
    clipboard: Option<Clipboard>,
    sessions_dir: PathBuf,
    settings_file: Option<PathBuf>,
    model_settings: ModelSettings,
}

impl Executor {
    fn intent(&mut self, app: &mut App, intent: Intent) {
        let cmds = app.update(intent);
        self.run_all(app, cmds);
    }

    fn report(&mut self, app: &mut App, report: Report) {
        self.forget_cancel(&report);
        let cmds = app.on_report(report);
        self.run_all(app, cmds);
    }

    /// Carries out `cmds` and the commands their reports lead to.
    fn run_all(&mut self, app: &mut App, cmds: Vec<Command>) {
        let mut queue = VecDeque::from(cmds);
        while let Some(cmd) = queue.pop_front() {
            if let Some(back) = self.execute(cmd) {
                self.forget_cancel(&back);
                queue.extend(app.on_report(back));
            }
        }
    }

    /// A job that ended needs its cancel flag no more.
    fn forget_cancel(&mut self, report: &Report) {
        match report {
            Report::GenerationFinished { id } | Report::GenerationFailed { id, .. } => {
                self.cancels.remove(id);
            }
            Report::Experiment { id, update, .. }
                if matches!(**update, ExperimentUpdate::Finished { .. } | ExperimentUpdate::Failed(_)) =>
            {
                self.cancels.remove(id);
            }
            _ => {}
        }
    }

    fn execute(&mut self, cmd: Command) -> Option<Report> {
        match cmd {
            Command::StartGeneration { id, requests } => {
                let cancel = CancelFlag::new();
                self.cancels.insert(id, cancel.clone());
                self.worker.generate(id, requests, cancel).err().map(|message| Report::GenerationFailed { id, message })
            }
            Command::Judge { id, templates_dir, question, candidates } => self
                .worker
                .judge(id, templates_dir, question, candidates)
                .err()
                .map(|e| Report::Judged { id, prompt: 0, result: Err(e) }),
            Command::StartExperiment { id, mut plan } => {
                plan.model = self.model_settings.clone();
                let cancel = CancelFlag::new();
                self.cancels.insert(id, cancel.clone());
                self.worker.experiment(id, plan, cancel).err().map(|e| Report::Experiment {
                    id,
                    update: Box::new(ExperimentUpdate::Failed(e)),
                    at_ms: 0.0,
                })
            }
            Command::CancelGeneration { id } | Command::CancelExperiment { id } => {
                if let Some(c) = self.cancels.get(&id) {
                    c.cancel();
                }
                None
            }
            Command::CountTokens { prompt_sha256, text } => self
                .worker
                .count_tokens(prompt_sha256.clone(), text)
                .err()
                .map(|e| Report::TokenCount { prompt_sha256, result: Err(e) }),
            Command::SaveSession { mut session, path } => {
                Some(match session::save(&self.sessions_dir, &mut session, path.as_deref(), chrono::Local::now()) {
                    Ok(p) => Report::SessionSaved(p),
                    Err(e) => Report::Failed(format!("saving the session failed: {e}")),
                })
            }
            Command::ListSessions => Some(match session::list(&self.sessions_dir) {
                Ok(list) => Report::SessionsListed(list),
                Err(e) => Report::Failed(e.to_string()),
            }),
            Command::OpenSession(path) => Some(match session::load(&path) {
                Ok(s) => Report::SessionOpened { path, session: Box::new(s) },
                Err(e) => Report::Failed(e.to_string()),
            }),
            Command::Copy(text) => {
                let cb = self.clipboard.get_or_insert_with(Clipboard::new);
                let mut out = std::io::stdout();
                Some(match cb.copy(&text, &mut out) {
                    Ok(o) => Report::Copied(o),
                    Err(e) => Report::Failed(format!("copy failed: {e}")),
                })
            }
            Command::WriteExemplar { path, text } => {
                Some(match crate::fsutil::write_atomic(&path, format!("{text}\n").as_bytes()) {
                    Ok(()) => Report::ExemplarWritten(path),
                    Err(e) => Report::Failed(format!("writing {}: {e}", path.display())),
                })
            }
            Command::SaveSettings(settings) => {
                let file = self.settings_file.as_ref()?;
                config::save(file, &settings).err().map(Report::Failed)
            }
            Command::WriteTemplate { path, template, new } => {
                Some(match if new { template.save_new(&path) } else { template.save(&path) } {
                    Ok(()) => Report::TemplateWritten { path, template },
                    Err(e) => Report::Failed(e.to_string()),
                })
            }
            Command::Quit => {
                let _ = std::io::stdout().flush();
                None
            }
        }
    }
}
