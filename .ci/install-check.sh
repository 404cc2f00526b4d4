#!/usr/bin/env bash
# Replay the Dockerfile's COPY and RUN lines in a clean directory and virtualenv (no Docker engine here),
# then run the installed console script the way the image's ENTRYPOINT does.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
work=build/install-check
rm -rf "$work"
mkdir -p "$work/image"
"$python" -m venv "$work/venv"
export PATH="$PWD/$work/venv/bin:$PATH"
while read -r instruction rest; do
  case "$instruction" in
    COPY)
      read -r -a parts <<<"$rest"
      dest=${parts[-1]}
      for src in "${parts[@]:0:${#parts[@]}-1}"; do
        # Docker semantics: a directory's contents go into dest; a file goes into dest/ or becomes dest.
        if [ -d "$src" ]; then
          mkdir -p "$work/image/$dest" && cp -R "$src/." "$work/image/$dest"
        elif [[ "$dest" == */ ]]; then
          mkdir -p "$work/image/$dest" && cp "$src" "$work/image/$dest"
        else
          mkdir -p "$(dirname "$work/image/$dest")" && cp "$src" "$work/image/$dest"
        fi
      done
      ;;
    RUN)
      (cd "$work/image" && eval "$rest")
      ;;
  esac
done < <(grep -E '^(COPY|RUN) ' Dockerfile)
# ENTRYPOINT is `golden-path action`; outside Actions we run the demo from the installed script instead.
(cd "$work" && golden-path demo --quiet --output-dir out)
test -s "$work/out/results.json"
test -s "$work/out/report.md"
# The protocol profiles are data files: a wheel without them would fail here, not at a user's.
(cd "$work" && golden-path demo --quiet --users 2 --profile openai-realtime --output-dir out-realtime)
(cd "$work" && golden-path profile show openai-realtime | grep -q "completion_event: response.done")
echo "install-check: the Dockerfile's install steps produce a working golden-path"
