//! The question list: selection, `/` text filter, and jumping by typed index.

use std::time::{Duration, Instant};

use crate::lab::gsm8k::Problem;

/// A digit typed longer than this after the last one starts a new number.
pub const JUMP_PAUSE: Duration = Duration::from_millis(1200);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuestionList {
    /// Lower-cased filter text; empty shows every question.
    pub filter: String,
    /// Whether keys are going into the filter line.
    pub filtering: bool,
    /// Problem indices shown, in order.
    pub visible: Vec<usize>,
    /// Position of the selection in `visible`.
    pub selected: usize,
    /// Digits typed so far for a jump (cleared by any other key, and by a pause).
    pub jump: String,
    /// When the last jump digit was typed.
    pub jump_at: Option<Instant>,
}

impl QuestionList {
    pub fn new(problems: &[Problem]) -> Self {
        Self { visible: (0..problems.len()).collect(), ..Self::default() }
    }

    /// The selected problem's index into the test set.
    pub fn selected_index(&self) -> Option<usize> {
        self.visible.get(self.selected).copied()
    }

    pub fn move_by(&mut self, delta: isize) {
        if self.visible.is_empty() {
            self.selected = 0;
            return;
        }
        let max = self.visible.len() as isize - 1;
        self.selected = (self.selected as isize + delta).clamp(0, max) as usize;
    }

    pub fn home(&mut self) {
        self.selected = 0;
    }

    pub fn end(&mut self) {
        self.selected = self.visible.len().saturating_sub(1);
    }

    /// Re-filters on `filter` (case-insensitive substring of the question), keeping the selected question
    /// selected when it still matches.
    pub fn set_filter(&mut self, problems: &[Problem], filter: &str) {
        let keep = self.selected_index();
        self.filter = filter.to_lowercase();
        self.visible = problems
            .iter()
            .filter(|p| self.filter.is_empty() || p.question.to_lowercase().contains(&self.filter))
            .map(|p| p.index)
            .collect();
        self.selected = keep.and_then(|k| self.visible.iter().position(|i| *i == k)).unwrap_or(0);
    }

    /// Selects problem `index`, clearing the filter if it hides it. False if there is no such problem.
    pub fn select_index(&mut self, problems: &[Problem], index: usize) -> bool {
        if index >= problems.len() {
            return false;
        }
        if !self.visible.contains(&index) {
            self.set_filter(problems, "");
        }
        if let Some(pos) = self.visible.iter().position(|i| *i == index) {
            self.selected = pos;
        }
        true
    }

    /// A typed digit: extends the jump number and selects it (starting over when it would run past the end).
    pub fn jump_digit(&mut self, problems: &[Problem], digit: u8, at: Instant) {
        if self.jump_at.is_some_and(|t| at.saturating_duration_since(t) > JUMP_PAUSE) {
            self.jump.clear();
        }
        self.jump_at = Some(at);
        let mut next = format!("{}{}", self.jump, digit);
        if next.parse::<usize>().map_or(true, |n| n >= problems.len()) {
            next = digit.to_string();
        }
        if let Ok(n) = next.parse::<usize>() {
            if self.select_index(problems, n) {
                self.jump = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs() -> Vec<Problem> {
        (0..30)
            .map(|i| Problem {
                index: i,
                question: if i % 2 == 0 { format!("Ducks {i}") } else { format!("Robe {i}") },
                reasoning: String::new(),
                gold: i.to_string(),
            })
            .collect()
    }

    #[test]
    fn filter_and_jump() {
        let p = probs();
        let mut q = QuestionList::new(&p);
        q.set_filter(&p, "ROBE");
        assert_eq!(q.visible.len(), 15);
        assert_eq!(q.selected_index(), Some(1));
        q.move_by(100);
        assert_eq!(q.selected_index(), Some(29));
        // Jumping to a filtered-out question clears the filter.
        let t = Instant::now();
        q.jump_digit(&p, 1, t);
        q.jump_digit(&p, 2, t);
        assert_eq!(q.selected_index(), Some(12));
        assert!(q.filter.is_empty());
        // 129 is past the end: start over at 9.
        q.jump_digit(&p, 9, t);
        assert_eq!(q.selected_index(), Some(9));
        assert_eq!(q.jump, "9");
        // After a pause a digit starts a new number: 1, pause, 2 is 2 (not 12); 5 right after joins it.
        q.jump_digit(&p, 1, t + Duration::from_millis(100));
        assert_eq!(q.selected_index(), Some(1));
        let later = t + Duration::from_millis(100) + JUMP_PAUSE + Duration::from_millis(1);
        q.jump_digit(&p, 2, later);
        assert_eq!(q.selected_index(), Some(2));
        q.jump_digit(&p, 5, later + Duration::from_millis(100));
        assert_eq!(q.selected_index(), Some(25), "quick digits still join");
    }

    #[test]
    fn empty_filter_result_is_safe() {
        let p = probs();
        let mut q = QuestionList::new(&p);
        q.set_filter(&p, "zebra");
        assert_eq!(q.selected_index(), None);
        q.move_by(1);
        q.end();
        assert_eq!(q.selected_index(), None);
    }
}
