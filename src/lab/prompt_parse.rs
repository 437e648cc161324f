//! Reading a rendered prompt back: which question it asks, its instruction line, and whether it ends
//! with the answer marker. `analyze` uses this when it is given the prompt rather than a template.

use super::detect::DetectContext;

/// The detection context a prompt implies.
///
/// The target question is the last `Q:` block (its first line after `Q: `); a `Q:` glued to the end of the
/// previous exemplar (`…The answer is 13.Q: <question>`) starts one too. The instruction is the line
/// right before that block when the same line also appears earlier (the "directions" layout). With no
/// `Q:` at all, the question is the text after the last line ending in `:` (an instruction), or else the
/// whole prompt. The prompt ends with the answer marker when its last non-blank text is `A:`.
pub fn context_from_prompt(prompt: &str) -> DetectContext {
    let prompt_ends_with_answer_marker = prompt.trim_end().ends_with("A:")
        && prompt.trim_end().strip_suffix("A:").is_some_and(|p| p.is_empty() || p.ends_with('\n'));
    let lines: Vec<&str> = prompt.lines().collect();
    let last_q = lines.iter().rposition(|l| l.trim_start().starts_with("Q:"));
    let (question, instruction) = match last_q {
        Some(i) if glued_question(&lines[i..]).is_none() => {
            let q = lines[i].trim_start().trim_start_matches("Q:").trim().to_string();
            let instruction = i
                .checked_sub(1)
                .map(|p| lines[p])
                .filter(|l| !l.trim().is_empty() && lines[..i - 1].contains(l))
                .map(|l| l.trim().to_string());
            (q, instruction)
        }
        Some(i) => (glued_question(&lines[i..]).unwrap_or_default(), None),
        None if glued_question(&lines).is_some() => (glued_question(&lines).unwrap_or_default(), None),
        None => {
            let body = prompt.trim_end().strip_suffix("A:").unwrap_or(prompt.trim_end());
            let lines: Vec<&str> = body.lines().collect();
            match lines.iter().rposition(|l| l.trim_end().ends_with(':')) {
                Some(i) if i + 1 < lines.len() => {
                    (lines[i + 1..].join("\n").trim().to_string(), Some(lines[i].trim().to_string()))
                }
                _ => (body.trim().to_string(), None),
            }
        }
    };
    DetectContext { question, instruction, prompt_ends_with_answer_marker }
}

/// The question of the last `Q:` that follows a sentence end inside a line (`…is 13.Q: How many…`), when
/// it comes after every line-start `Q:` of `lines`.
fn glued_question(lines: &[&str]) -> Option<String> {
    let (i, p) = lines.iter().enumerate().rev().find_map(|(i, l)| {
        l.match_indices("Q:")
            .map(|(p, _)| p)
            .filter(|&p| p > 0 && l[..p].ends_with(['.', '!', '?']))
            .last()
            .map(|p| (i, p))
    })?;
    Some(lines[i][p + 2..].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{gsm8k, template};

    #[test]
    fn reads_back_every_shipped_template() {
        let set = template::load_dir(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates"));
        assert_eq!(set.templates.len(), 5);
        for (_, t) in &set.templates {
            for p in &gsm8k::test_set()[..20] {
                let prompt = t.render(&p.question);
                let c = context_from_prompt(&prompt);
                assert_eq!(c, DetectContext::for_template(t, p.question.trim()), "{} q{}", t.name, p.index);
            }
        }
    }

    #[test]
    fn question_glued_to_the_last_exemplar() {
        let p =
            "Q: Tom has 3 cats. How many?\nA: 3 cats. The answer is 3.Q: Ann has 5 hats and buys 2. How many now?\nA:";
        let c = context_from_prompt(p);
        assert_eq!(c.question, "Ann has 5 hats and buys 2. How many now?");
        assert!(c.prompt_ends_with_answer_marker);
        let p = "A: 3 cats. The answer is 3.Q: Ann has 5 hats. How many?";
        assert_eq!(context_from_prompt(p).question, "Ann has 5 hats. How many?");
        // A line-start Q: after it wins.
        let p = "A: The answer is 3.Q: Ann has 5 hats.\nQ: Bo has 2 dogs?\nA:";
        assert_eq!(context_from_prompt(p).question, "Bo has 2 dogs?");
    }

    #[test]
    fn prompts_without_q() {
        let c = context_from_prompt("Solve this step by step:\nTom has 3 cats and buys 2. How many?\nA:");
        assert_eq!(c.question, "Tom has 3 cats and buys 2. How many?");
        assert_eq!(c.instruction.as_deref(), Some("Solve this step by step:"));
        assert!(c.prompt_ends_with_answer_marker);
        let c = context_from_prompt("How many legs do 3 cats have?");
        assert_eq!(c.question, "How many legs do 3 cats have?");
        assert!(!c.prompt_ends_with_answer_marker);
        assert!(!context_from_prompt("Q: x\nDATA:").prompt_ends_with_answer_marker);
    }
}
