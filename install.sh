#!/usr/bin/env bash
# Installs Antiphon into ./.venv.   ./install.sh          the server and clients (and from Debian:
#                                                         libopus0, the server's Opus codec, if missing)
#                                   ./install.sh --test   also the test tools, and from Debian: espeak-ng
#                                                         (test speech), chromium (browser tests),
#                                                         libportaudio2 (the mic demo's audio library)
#                                   ./install.sh --system-packages   the server, in a virtual environment
#                                                         that sees the system's packages, so that a base
#                                                         image's own torch 2.13.0 is used, not fetched
#
# moshi goes in with --no-deps: every moshi release caps torch below the release this project runs on
# (moshi 0.2.13: torch<2.10), while its modules run unchanged on torch 2.13. Its runtime needs are
# listed in pyproject.toml instead.
set -euo pipefail
cd "$(dirname "$0")"

apt_install() {
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -q && $sudo apt-get install -y -q "$@"
}

extras=""
venv_flags=()
ldconfig -p | grep -q libopus.so.0 || apt_install libopus0
if [[ "${1:-}" == "--system-packages" ]]; then
  venv_flags=(--system-site-packages)
fi
if [[ "${1:-}" == "--test" ]]; then
  extras="[test]"
  missing=()
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v chromium >/dev/null || missing+=(chromium)
  ldconfig -p | grep -q libportaudio.so.2 || missing+=(libportaudio2)
  if (( ${#missing[@]} )); then
    apt_install "${missing[@]}"
  fi
fi

python3 -m venv "${venv_flags[@]}" .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q --no-deps moshi==0.2.13
.venv/bin/python -m pip install -q -e ".${extras}"
echo "installed: $(.venv/bin/antiphon --help | head -n 1)"
