#!/usr/bin/env bash
# Prints the path of a Python virtual environment holding llama-cpp-python's OpenAI-compatible server
# (and gguf/numpy for the benchmark scripts), creating it on first use. llama-cpp-python builds llama.cpp
# from source (about 10 minutes on 2 cores), so the environment is cached outside the repository and keyed
# by the CPU model, since the build targets the CPU it was built on.
set -euo pipefail
version=0.3.36
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-8)
venv=${COTSCOPE_LLAMA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cotscope/llama-cpp-python-$version-$cpu}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import llama_cpp.server, gguf, numpy' >/dev/null 2>&1; then
  echo "building llama-cpp-python $version into $venv (about 10 minutes on 2 cores, once)" >&2
  rm -rf "$venv.tmp"
  python3 -m venv "$venv.tmp" >&2
  "$venv.tmp/bin/pip" install -q "llama-cpp-python[server]==$version" gguf numpy >&2
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  # venv scripts record their own path; recreate the launchers for the final location
  python3 -m venv --upgrade "$venv" >/dev/null 2>&1 || true
fi
echo "$venv"
