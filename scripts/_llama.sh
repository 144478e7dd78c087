# Sourced by scripts/test after scripts/_setup.sh: llama.cpp's llama-server, built once from the
# llama-cpp-python sdist on PyPI, for the end-to-end test of the llm agent against a real
# OpenAI-compatible server (tests/e2e/test_llm_server.py). The binary is cached outside the
# checkout, so a fresh clone reuses it; the first build takes 10-20 minutes on 2 cores.
#
#   GATEWAY_CACHE_DIR   where built tools are kept (default ${XDG_CACHE_HOME:-~/.cache}/webhook-agent-gateway)
#   GATEWAY_SKIP_LLAMA  set to 1 to skip the build (the test is then skipped, saying why)

LLAMA_CPP_PYTHON_VERSION=0.3.36  # vendors llama.cpp 0c1e570
LLAMA_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

ensure_llama_server() {
  if [ "${GATEWAY_SKIP_LLAMA:-0}" = 1 ]; then
    echo "GATEWAY_SKIP_LLAMA=1: not building llama-server; its test is skipped" >&2
    return 0
  fi
  local cache="${GATEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/webhook-agent-gateway}"
  local out="$cache/llama-server-$LLAMA_CPP_PYTHON_VERSION"
  if [ ! -x "$out/llama-server" ] || ! "$out/llama-server" --version >/dev/null 2>&1; then
    _ensure_build_tools
    _build_llama_server "$out"
  fi
  export LLAMA_SERVER="$out/llama-server"
}

_ensure_build_tools() {
  ensure_debian_package cmake cmake
  ensure_debian_package g++ g++
  ensure_debian_package make make
}

# _build_llama_server OUT: download and check the sdist, build only llama-server (CPU, static,
# no web UI, no network at build time), install it in OUT. Logs stay in the scratch dir on failure.
_build_llama_server() {
  local out="$1" work
  work="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
  echo "building llama-server from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (about 10 minutes, once) in $work ..." >&2
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
    -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  local sdist="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  echo "$LLAMA_SDIST_SHA256  $sdist" | sha256sum -c --quiet - || { echo "sdist checksum mismatch" >&2; exit 1; }
  tar xzf "$sdist" -C "$work"
  local src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  cmake -S "$src" -B "$work/build" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release -DGGML_CCACHE=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
    -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log" >&2; exit 1; }
  cmake --build "$work/build" --config Release --target llama-server -j"$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
  mkdir -p "$out"
  install -m 755 "$work/build/bin/llama-server" "$out/llama-server.tmp"
  strip "$out/llama-server.tmp" 2>/dev/null || true
  mv "$out/llama-server.tmp" "$out/llama-server"
  rm -rf "$work"
  echo "llama-server installed in $out" >&2
}
