//! Asking a `VarBuilder` backend for a block of rows of a 2-D tensor, so a quantizing load can turn
//! a large table (the word embeddings: 250880 rows, 1 GB of f32 at bloom-560m, 4 GB at bloom-7b1)
//! into blocks a chunk at a time instead of holding the whole f32 table beside its blocks.
//!
//! candle's `VarBuilder` only asks for tensors by name, so the range travels in the name:
//! `word_embeddings.weight#rows=4096+2048` is rows 4096..6144. The backends that read checkpoints
//! (`safetensors_read`) and make weights up (`random`) answer such names; others (the embedded
//! model, PyTorch files) report them missing, and the caller reads the whole tensor instead.

/// The name of rows `r0..r0 + n` of the 2-D tensor `base`.
pub fn name(base: &str, r0: usize, n: usize) -> String {
    format!("{base}#rows={r0}+{n}")
}

/// `(base, r0, n)` of a name made by [`name`]; `None` for a plain tensor name.
pub fn parse(name: &str) -> Option<(&str, usize, usize)> {
    let (base, range) = name.rsplit_once("#rows=")?;
    let (r0, n) = range.split_once('+')?;
    Some((base, r0.parse().ok()?, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_plain_names_are_not_ranges() {
        assert_eq!(parse(&name("word_embeddings.weight", 4096, 2048)), Some(("word_embeddings.weight", 4096, 2048)));
        assert_eq!(parse("word_embeddings.weight"), None);
        assert_eq!(parse("w#rows=1"), None);
        assert_eq!(parse("w#rows=a+2"), None);
    }
}
