#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct Q4_1) into the model cache ($WINNOW_MODELS, else
# ${XDG_CACHE_HOME:-~/.cache}/winnow/models) and prints its path; see models/fetch-default-model.sh.
set -euo pipefail
exec "$(cd "$(dirname "$0")/.." && pwd)/models/fetch-default-model.sh" "$@"
