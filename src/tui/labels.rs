//! Human annotation of a path: nine labels on keys 1–9. The first six are the lab core's failure kinds
//! (pre-filled from the detectors, which the human confirms or overrules); the last three are human-only.

use serde::{Deserialize, Serialize};

use crate::lab::detect::FailureKind;

/// One annotation label. Serialized names are the failure kinds' names plus three human-only ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Repetition,
    QuestionEcho,
    MissingAnswerMarker,
    RunawayQuestion,
    NoAnswer,
    ArithmeticError,
    /// A reasoning step is wrong in a way no detector catches (wrong operation, misread quantity).
    WrongStep,
    /// Some other failure, described in the note.
    Other,
    /// A clean path worth keeping as an exemplar.
    Good,
}

impl Label {
    /// In key order: `ALL[0]` is key 1.
    pub const ALL: [Label; 9] = [
        Label::Repetition,
        Label::QuestionEcho,
        Label::MissingAnswerMarker,
        Label::RunawayQuestion,
        Label::NoAnswer,
        Label::ArithmeticError,
        Label::WrongStep,
        Label::Other,
        Label::Good,
    ];

    /// The label on key `1`..=`9`.
    pub fn from_key(key: u8) -> Option<Label> {
        Label::ALL.get(usize::from(key).checked_sub(1)?).copied()
    }

    pub fn key(self) -> u8 {
        Label::ALL.iter().position(|l| *l == self).map_or(0, |i| i as u8 + 1)
    }

    pub fn from_kind(kind: FailureKind) -> Label {
        match kind {
            FailureKind::Repetition => Label::Repetition,
            FailureKind::QuestionEcho => Label::QuestionEcho,
            FailureKind::MissingAnswerMarker => Label::MissingAnswerMarker,
            FailureKind::RunawayQuestion => Label::RunawayQuestion,
            FailureKind::NoAnswer => Label::NoAnswer,
            FailureKind::ArithmeticError => Label::ArithmeticError,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Label::Repetition => "repetition",
            Label::QuestionEcho => "question_echo",
            Label::MissingAnswerMarker => "missing_answer_marker",
            Label::RunawayQuestion => "runaway_question",
            Label::NoAnswer => "no_answer",
            Label::ArithmeticError => "arithmetic_error",
            Label::WrongStep => "wrong_step",
            Label::Other => "other",
            Label::Good => "good",
        }
    }

    /// A short tag for headers and NO_COLOR markers.
    pub fn tag(self) -> &'static str {
        match self {
            Label::Repetition => "rep",
            Label::QuestionEcho => "echo",
            Label::MissingAnswerMarker => "noA:",
            Label::RunawayQuestion => "runQ",
            Label::NoAnswer => "noans",
            Label::ArithmeticError => "arith",
            Label::WrongStep => "step",
            Label::Other => "other",
            Label::Good => "good",
        }
    }
}

/// One label on one path: what the detectors found and what the human said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelState {
    pub detected: bool,
    /// None until the human confirms (Some(true)) or overrules (Some(false)).
    pub human: Option<bool>,
}

impl LabelState {
    pub fn effective(self) -> bool {
        self.human.unwrap_or(self.detected)
    }
}

/// All nine labels of one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels([LabelState; 9]);

impl Labels {
    pub fn get(&self, label: Label) -> LabelState {
        self.0[label.key() as usize - 1]
    }

    pub fn set(&mut self, label: Label, state: LabelState) {
        self.0[label.key() as usize - 1] = state;
    }

    /// Flips the effective value by a human decision; returns the previous state (for undo).
    pub fn toggle(&mut self, label: Label) -> LabelState {
        let prev = self.get(label);
        self.set(label, LabelState { detected: prev.detected, human: Some(!prev.effective()) });
        prev
    }

    /// Marks exactly these failure kinds as detected (human decisions stay).
    pub fn set_detected(&mut self, kinds: impl IntoIterator<Item = FailureKind>) {
        for s in self.0.iter_mut() {
            s.detected = false;
        }
        for k in kinds {
            self.0[Label::from_kind(k).key() as usize - 1].detected = true;
        }
    }

    /// Labels that were detected or decided by the human, in key order.
    pub fn touched(&self) -> impl Iterator<Item = (Label, LabelState)> + '_ {
        Label::ALL.iter().map(|l| (*l, self.get(*l))).filter(|(_, s)| s.detected || s.human.is_some())
    }

    pub fn any_human(&self) -> bool {
        self.0.iter().any(|s| s.human.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_one_to_nine() {
        assert_eq!(Label::from_key(1), Some(Label::Repetition));
        assert_eq!(Label::from_key(6), Some(Label::ArithmeticError));
        assert_eq!(Label::from_key(9), Some(Label::Good));
        assert_eq!(Label::from_key(0), None);
        assert_eq!(Label::from_key(10), None);
        for l in Label::ALL {
            assert_eq!(Label::from_key(l.key()), Some(l));
        }
    }

    #[test]
    fn toggle_confirms_or_overrules_the_detector() {
        let mut ls = Labels::default();
        ls.set_detected([FailureKind::Repetition]);
        assert!(ls.get(Label::Repetition).effective());
        let prev = ls.toggle(Label::Repetition);
        assert_eq!(prev, LabelState { detected: true, human: None });
        assert_eq!(ls.get(Label::Repetition), LabelState { detected: true, human: Some(false) });
        ls.toggle(Label::Repetition);
        assert!(ls.get(Label::Repetition).effective());
        ls.toggle(Label::Good);
        assert_eq!(ls.get(Label::Good), LabelState { detected: false, human: Some(true) });
        // A detector update keeps the human's word.
        ls.set_detected([]);
        assert_eq!(ls.get(Label::Repetition), LabelState { detected: false, human: Some(true) });
    }
}
