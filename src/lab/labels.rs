//! Human annotation of a path: nine labels on keys 1–9. The first six are the failure kinds (pre-filled
//! from the detectors; the human confirms or overrules them); the last three are human-only.

use serde::{Deserialize, Serialize};

use super::detect::FailureKind;

/// One annotation label: a failure kind (keys 1–6, in [`FailureKind::ALL`] order) or one of three
/// human-only labels. Serialized as its name (`repetition`, …, `wrong_step`, `other`, `good`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// A failure the detectors know (and pre-fill).
    Failure(FailureKind),
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
        Label::Failure(FailureKind::Repetition),
        Label::Failure(FailureKind::QuestionEcho),
        Label::Failure(FailureKind::MissingAnswerMarker),
        Label::Failure(FailureKind::RunawayQuestion),
        Label::Failure(FailureKind::NoAnswer),
        Label::Failure(FailureKind::ArithmeticError),
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
        Label::Failure(kind)
    }

    pub fn name(self) -> &'static str {
        match self {
            Label::Failure(k) => k.name(),
            Label::WrongStep => "wrong_step",
            Label::Other => "other",
            Label::Good => "good",
        }
    }

    pub fn from_name(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == name)
    }

    /// A short tag for headers and NO_COLOR markers.
    pub fn tag(self) -> &'static str {
        match self {
            Label::Failure(FailureKind::Repetition) => "rep",
            Label::Failure(FailureKind::QuestionEcho) => "echo",
            Label::Failure(FailureKind::MissingAnswerMarker) => "noA:",
            Label::Failure(FailureKind::RunawayQuestion) => "runQ",
            Label::Failure(FailureKind::NoAnswer) => "noans",
            Label::Failure(FailureKind::ArithmeticError) => "arith",
            Label::WrongStep => "step",
            Label::Other => "other",
            Label::Good => "good",
        }
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Label::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown label `{name}`")))
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

    /// One press of the label's key; returns the previous state (for undo). On a detected label the
    /// first press confirms it, the second overrules it, the third returns it to "not reviewed"; an
    /// undetected label is added by the human, and removed by the next press.
    pub fn cycle(&mut self, label: Label) -> LabelState {
        let prev = self.get(label);
        let human = match (prev.detected, prev.human) {
            (true, None) => Some(true),
            (true, Some(true)) => Some(false),
            (true, Some(false)) => None,
            (false, None) | (false, Some(false)) => Some(true),
            (false, Some(true)) => None,
        };
        self.set(label, LabelState { detected: prev.detected, human });
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

    /// The human's decisions alone, in key order (what "unsaved" compares).
    pub fn human(&self) -> [Option<bool>; 9] {
        self.0.map(|s| s.human)
    }

    /// Takes over the human's decisions of `other` (a rerun keeps the labels of the run it repeats).
    pub fn keep_human(&mut self, other: &Labels) {
        for (s, o) in self.0.iter_mut().zip(other.0.iter()) {
            s.human = o.human;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_one_to_nine() {
        assert_eq!(Label::from_key(1), Some(REP));
        assert_eq!(Label::from_key(6), Some(Label::Failure(FailureKind::ArithmeticError)));
        assert_eq!(Label::from_key(9), Some(Label::Good));
        assert_eq!(Label::from_key(0), None);
        assert_eq!(Label::from_key(10), None);
        for l in Label::ALL {
            assert_eq!(Label::from_key(l.key()), Some(l));
        }
    }

    const REP: Label = Label::Failure(FailureKind::Repetition);

    #[test]
    fn a_detected_label_is_confirmed_then_overruled_then_unreviewed() {
        let mut ls = Labels::default();
        ls.set_detected([FailureKind::Repetition]);
        assert!(ls.get(REP).effective());
        let prev = ls.cycle(REP);
        assert_eq!(prev, LabelState { detected: true, human: None });
        assert_eq!(ls.get(REP), LabelState { detected: true, human: Some(true) }, "first press confirms");
        ls.cycle(REP);
        assert_eq!(ls.get(REP), LabelState { detected: true, human: Some(false) }, "second overrules");
        assert!(!ls.get(REP).effective());
        ls.cycle(REP);
        assert_eq!(ls.get(REP), LabelState { detected: true, human: None }, "third: not reviewed");
        // An undetected label is added, then removed.
        ls.cycle(Label::Good);
        assert_eq!(ls.get(Label::Good), LabelState { detected: false, human: Some(true) });
        ls.cycle(Label::Good);
        assert_eq!(ls.get(Label::Good), LabelState { detected: false, human: None });
        // A detector update keeps the human's word.
        ls.cycle(REP);
        ls.set_detected([]);
        assert_eq!(ls.get(REP), LabelState { detected: false, human: Some(true) });
    }

    #[test]
    fn labels_serialize_as_the_failure_kind_names() {
        for l in Label::ALL {
            let y = serde_json::to_string(&l).unwrap();
            assert_eq!(y, format!("\"{}\"", l.name()));
            assert_eq!(serde_json::from_str::<Label>(&y).unwrap(), l);
        }
        for k in FailureKind::ALL {
            assert_eq!(Label::from_kind(k).name(), k.name());
        }
        assert!(serde_json::from_str::<Label>("\"bored\"").is_err());
    }
}
