# Shared by scripts/dev and scripts/test: install what the project needs on a Debian machine.
# Sourced, not run. Every step is skipped when its result is already there.

# ensure_debian_package COMMAND PACKAGE: install PACKAGE with apt-get unless COMMAND is on PATH.
ensure_debian_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "$1 is missing: install it with apt-get install $2" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing $2 (Debian package) ..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

ensure_redis() { ensure_debian_package redis-server redis-server; }

# The console's tests drive a real headless browser: Debian's chromium.
ensure_chromium() { ensure_debian_package chromium chromium; }

# ensure_venv EXTRAS: a virtualenv in .venv with the project installed editable, e.g. ensure_venv "[test]".
# Installing takes seconds and needs the network, so it runs only when pyproject.toml changed since
# the last install (or EXTRAS were never installed): .venv/.installed has one "CHECKSUM EXTRAS" line
# per install. The install is editable, so changes to the code itself need none.
ensure_venv() {
  local extras="$1" stamp=".venv/.installed" sum
  sum="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  _installed "$sum" "$extras" && return 0
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv ..." >&2
    python3 -m venv .venv
  fi
  echo "installing the project into .venv (pyproject.toml is new or changed) ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
  grep "^$sum " "$stamp" 2>/dev/null >"$stamp.new" || true
  echo "$sum $extras" >>"$stamp.new"
  mv "$stamp.new" "$stamp"
}

# _installed CHECKSUM EXTRAS: this pyproject.toml was installed with EXTRAS (any install has the
# base dependencies, so no EXTRAS matches every line of this checksum).
_installed() {
  [ -x .venv/bin/python ] && [ -f .venv/.installed ] || return 1
  if [ -n "$2" ]; then grep -qxF "$1 $2" .venv/.installed; else grep -q "^$1 " .venv/.installed; fi
}
