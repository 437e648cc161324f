//! BLOOM's `config.json`, as Hugging Face's `BloomConfig` reads it.

use serde::Deserialize;

/// Mirrors `config.json` of a `BloomForCausalLM` checkpoint. Old bigscience configs spell some fields
/// differently (`n_embed`, `num_hidden_layers`, `num_attention_heads`); the aliases accept both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    #[serde(alias = "n_embed")]
    pub hidden_size: usize,
    #[serde(alias = "num_hidden_layers")]
    pub n_layer: usize,
    #[serde(alias = "num_attention_heads")]
    pub n_head: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default)]
    pub apply_residual_connection_post_layernorm: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_true() -> bool {
    true
}

impl Config {
    /// Checks what the model code relies on; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        match self.model_type.as_deref() {
            Some("bloom") => {}
            Some(other) => return Err(format!("model_type is '{other}', not 'bloom'")),
            None => return Err("model_type is missing (expected 'bloom')".into()),
        }
        if self.vocab_size == 0 {
            return Err("vocab_size must be positive".into());
        }
        if self.n_layer == 0 {
            return Err("n_layer must be positive".into());
        }
        if self.n_head == 0 || self.hidden_size == 0 || !self.hidden_size.is_multiple_of(self.n_head) {
            return Err(format!(
                "hidden_size ({}) must be a positive multiple of n_head ({})",
                self.hidden_size, self.n_head
            ));
        }
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            return Err("layer_norm_epsilon must be positive".into());
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.n_head
    }

    /// Parameter count (embeddings counted once, as they are tied to the LM head).
    pub fn n_params(&self) -> usize {
        let h = self.hidden_size;
        let per_layer = 2 * 2 * h + (3 * h * h + 3 * h) + (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h);
        let head = if self.tie_word_embeddings { 0 } else { self.vocab_size * h };
        self.vocab_size * h + 2 * h + self.n_layer * per_layer + 2 * h + head
    }

    /// A two-layer, four-head, 64-wide BLOOM over `vocab_size` tokens: random-weight models small
    /// enough for unit tests.
    #[cfg(test)]
    pub(crate) fn tiny(vocab_size: usize) -> Config {
        Config { vocab_size, hidden_size: 64, n_layer: 2, n_head: 4, ..Config::published("bloom-560m").unwrap() }
    }

    /// The published configurations of bigscience/bloom-*, for benchmarks without a download.
    pub fn published(shape: &str) -> Option<Config> {
        let (hidden_size, n_layer, n_head) = match shape {
            "bloom-560m" => (1024, 24, 16),
            "bloom-1b1" => (1536, 24, 16),
            "bloom-1b7" => (2048, 24, 16),
            "bloom-3b" => (2560, 30, 32),
            "bloom-7b1" => (4096, 30, 32),
            _ => return None,
        };
        Some(Config {
            model_type: Some("bloom".into()),
            vocab_size: 250880,
            hidden_size,
            n_layer,
            n_head,
            layer_norm_epsilon: 1e-5,
            apply_residual_connection_post_layernorm: false,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
            pad_token_id: Some(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_old_bigscience_spelling() {
        let c: Config = serde_json::from_str(
            r#"{"model_type":"bloom","vocab_size":10,"n_embed":8,"num_hidden_layers":2,"num_attention_heads":2}"#,
        )
        .unwrap();
        assert_eq!((c.hidden_size, c.n_layer, c.n_head), (8, 2, 2));
        assert!(c.tie_word_embeddings);
        c.validate().unwrap();
    }

    #[test]
    fn rejects_other_model_types_and_bad_heads() {
        let mut c = Config::published("bloom-560m").unwrap();
        c.model_type = Some("gpt2".into());
        assert!(c.validate().unwrap_err().contains("gpt2"));
        let mut c = Config::published("bloom-560m").unwrap();
        c.n_head = 7;
        assert!(c.validate().unwrap_err().contains("n_head"));
    }

    #[test]
    fn bloom_560m_has_559m_parameters() {
        let n = Config::published("bloom-560m").unwrap().n_params();
        assert!((559_000_000..560_000_000).contains(&n), "{n}");
    }
}
