# Sourced by .ci/run: llama-cpp-python's OpenAI-compatible server for the remote-engine tests
# (tests/remote_llama.rs). The virtual environment is built once and cached (.ci/llama_env.sh).
COTSCOPE_LLAMA_PYTHON="$(bash .ci/llama_env.sh)/bin/python"
COTSCOPE_TEST_GGUF="$(cd .. && pwd)/shared/models/tiny-bloom-gsm8k-gguf/tiny-bloom-gsm8k-f32.gguf"
export COTSCOPE_LLAMA_PYTHON COTSCOPE_TEST_GGUF
