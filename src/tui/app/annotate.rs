//! Annotation: label keys, notes, their undo, and whether they are saved.

use crate::lab::labels::{Label, LabelState};

use super::{App, Overlay};

/// One path's human decisions (label keys 1–9) and note.
pub type Annotation = ([Option<bool>; 9], String);

#[derive(Clone, Debug, PartialEq)]
pub(super) enum UndoEntry {
    Label { generation: u64, pane: usize, label: Label, prev: LabelState },
    Note { generation: u64, pane: usize, prev: String },
}

impl App {
    /// Whether some label or note differs from the last save (or from how the run began); undoing back
    /// to the saved state is saved again.
    pub fn unsaved(&self) -> bool {
        self.annotations() != self.saved_annotations
    }

    /// The human's part of the current run: per path, its decisions and its note.
    pub(super) fn annotations(&self) -> Vec<Annotation> {
        self.generation
            .as_ref()
            .map_or_else(Vec::new, |r| r.panes.iter().map(|p| (p.labels.human(), p.note.clone())).collect())
    }

    /// Takes the current annotations as saved (a new or opened run).
    pub(super) fn mark_saved(&mut self) {
        self.saved_annotations = self.annotations();
        self.saving_annotations = None;
        self.undo.clear();
    }

    /// A label key on the focused path: a detected label is confirmed, then overruled, then back to
    /// not reviewed; an undetected one is added, then removed.
    pub(super) fn toggle_label(&mut self, key: u8) {
        let Some(label) = Label::from_key(key) else { return };
        let pane = self.pane;
        let Some(generation) = self.generation.as_mut() else {
            return self.set_error("no path to label yet: Enter generates");
        };
        let id = generation.id;
        let Some(p) = generation.panes.get_mut(pane) else { return };
        let prev = p.labels.cycle(label);
        let now = p.labels.get(label);
        let what = match (now.detected, now.human) {
            (true, Some(true)) => "confirmed",
            (true, Some(false)) => "overruled",
            (true, None) => "not reviewed (as detected)",
            (false, Some(true)) => "added",
            (false, _) => "removed",
        };
        self.undo.push(UndoEntry::Label { generation: id, pane, label, prev });
        self.set_status(format!("path {}: {} {what}", pane + 1, label.name()));
    }

    pub(super) fn edit_note(&mut self) {
        match self.focused_pane() {
            Some(p) => self.overlay = Some(Overlay::Note { pane: self.pane, text: p.note.clone() }),
            None => self.set_error("no path to annotate yet: Enter generates"),
        }
    }

    /// The note typed in the note dialog, kept (with undo) if it changed.
    pub(super) fn keep_note(&mut self, pane: usize, text: String) {
        let Some(generation) = self.generation.as_mut() else { return };
        let id = generation.id;
        if let Some(p) = generation.panes.get_mut(pane) {
            if p.note != text {
                let prev = std::mem::replace(&mut p.note, text);
                self.undo.push(UndoEntry::Note { generation: id, pane, prev });
                self.set_status(format!("note on path {} (u undoes)", pane + 1));
            }
        }
    }

    pub(super) fn undo(&mut self) {
        let Some(entry) = self.undo.pop() else {
            return self.set_status("nothing to undo");
        };
        let current = self.generation.as_ref().map(|r| r.id);
        let (generation, pane) = match &entry {
            UndoEntry::Label { generation, pane, .. } | UndoEntry::Note { generation, pane, .. } => {
                (*generation, *pane)
            }
        };
        if current != Some(generation) {
            return;
        }
        let Some(p) = self.generation.as_mut().and_then(|r| r.panes.get_mut(pane)) else { return };
        let msg = match entry {
            UndoEntry::Label { label, prev, .. } => {
                p.labels.set(label, prev);
                format!("undid {} on path {}", label.name(), pane + 1)
            }
            UndoEntry::Note { prev, .. } => {
                p.note = prev;
                format!("undid the note on path {}", pane + 1)
            }
        };
        self.pane = pane;
        self.set_status(msg);
    }
}
