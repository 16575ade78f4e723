#!/usr/bin/env bash
# Create .venv and install cosplace-xs with its pinned dependencies; a no-op when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.installed-pyproject-sha256"
# the browser test of `serve` drives Debian's chromium; installed quietly where apt-get can, else that test skips
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing chromium for the browser test of serve..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
    || echo "could not install chromium (no package source?): the browser test will be skipped"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python=$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
"$python" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "cosplace-xs needs Python 3.11, 3.12 or 3.13 (the versions its pinned torch 2.14.1 stack is tested on); found " + sys.version.split()[0] + ": install one of them and run this again")'
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
echo "installing cosplace-xs and its pinned dependencies into $venv (torch is large: about a minute)..."
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "is ignored" || true
"$venv/bin/python" -c 'import cosplace_xs, torch, torchvision, faiss' || { echo "install failed" >&2; exit 1; }
echo "$want" > "$stamp"
