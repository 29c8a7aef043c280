#!/usr/bin/env bash
# Idempotent environment set-up for slimdet.
#
# Uses the interpreter named by $PYTHON, else the active virtualenv, else creates ./.venv.
# Installs torch/torchvision (pinned), Detectron2's pure-Python code (sal-detectron2) unless
# `import detectron2` already works in that interpreter, and slimdet in editable mode.
# Prints the interpreter path on its last line so the Makefile can use it.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
D2_WHEEL="sal-detectron2==0.7.2"

if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
  py="$VIRTUAL_ENV/bin/python"
else
  if [[ ! -x .venv/bin/python ]]; then
    echo "[setup] creating .venv" >&2
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  fi
  py="$PWD/.venv/bin/python"
fi

stamp_dir="$("$py" -c 'import sys; print(sys.prefix)')"
stamp="$stamp_dir/.slimdet-setup-$(sha1sum setup.py tools/setup_env.sh | sha1sum | cut -c1-12)"
if [[ -f "$stamp" ]] && "$py" -c 'import detectron2, slimdet' 2>/dev/null; then
  echo "[setup] up to date ($py)" >&2
  echo "$py"
  exit 0
fi

pip() { "$py" -m pip --disable-pip-version-check "$@"; }

if ! "$py" -c 'import torch, torchvision' 2>/dev/null; then
  echo "[setup] installing ${TORCH_PINS[*]}" >&2
  pip install -q "${TORCH_PINS[@]}" >&2
fi

# slimdet and its pure-Python dependencies (the pins live in setup.py).
echo "[setup] installing slimdet (editable) with its test and ONNX extras" >&2
pip install -q -e ".[dev,onnx]" >&2

if "$py" -c 'import detectron2' 2>/dev/null; then
  echo "[setup] keeping existing detectron2: $("$py" -c 'import detectron2; print(detectron2.__file__)')" >&2
else
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "[setup] installing $D2_WHEEL (pure-Python part) into $site" >&2
  tmp="$(mktemp -d)"
  pip install -q --no-deps --only-binary=:all: --python-version 3.10 --implementation cp \
    --target "$tmp" "$D2_WHEEL" >&2
  # --target refuses to merge into an existing tree, so copy the package in ourselves.
  rm -rf "$site/detectron2" "$site"/sal_detectron2-*.dist-info
  cp -r "$tmp"/detectron2 "$site/"
  cp -r "$tmp"/*.dist-info "$site/" 2>/dev/null || true
  rm -rf "$tmp"
  "$py" -c 'import detectron2' >&2
fi

rm -f "$stamp_dir"/.slimdet-setup-*
touch "$stamp"
echo "$py"
