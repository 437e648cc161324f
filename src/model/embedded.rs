//! The default model, tiny-bloom-gsm8k, compiled into the binary so the first run needs no download
//! and works from any directory.

pub const ID: &str = "tiny-bloom-gsm8k (embedded)";
pub const CONFIG: &[u8] = include_bytes!("../../assets/models/tiny-bloom-gsm8k/config.json");
pub const TOKENIZER: &[u8] = include_bytes!("../../assets/models/tiny-bloom-gsm8k/tokenizer.json");
pub const WEIGHTS: &[u8] = include_bytes!("../../assets/models/tiny-bloom-gsm8k/model.safetensors");
