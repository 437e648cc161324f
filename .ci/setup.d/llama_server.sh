# Sourced by .ci/run: llama-cpp-python's OpenAI-compatible server for the remote-engine tests
# (tests/remote_llama.rs). The virtual environment is built once and cached (.ci/llama_env.sh).
COTSCOPE_LLAMA_PYTHON="$(bash .ci/llama_env.sh)/bin/python"
# The embedded model as GGUF, made here by the converter that made ../shared/models/tiny-bloom-gsm8k-gguf
# (byte for byte the same file), since a clone need not lie beside ../shared. Cached by the model's hash.
gguf_src=assets/models/tiny-bloom-gsm8k
gguf_key=$(cat "$gguf_src/config.json" "$gguf_src/tokenizer.json" "$gguf_src/model.safetensors" .ci/hf2gguf.py | md5sum | cut -c1-12)
COTSCOPE_TEST_GGUF="${XDG_CACHE_HOME:-$HOME/.cache}/cotscope/tiny-bloom-gsm8k-f32-$gguf_key.gguf"
if [ ! -s "$COTSCOPE_TEST_GGUF" ]; then
  mkdir -p "$(dirname "$COTSCOPE_TEST_GGUF")"
  "$COTSCOPE_LLAMA_PYTHON" .ci/hf2gguf.py "$gguf_src" "$COTSCOPE_TEST_GGUF.tmp" >&2
  mv "$COTSCOPE_TEST_GGUF.tmp" "$COTSCOPE_TEST_GGUF"
fi
unset gguf_src gguf_key
export COTSCOPE_LLAMA_PYTHON COTSCOPE_TEST_GGUF
