#!/usr/bin/env bash
# Replay the Dockerfile's build stage (its WORKDIR-relative COPY and RUN lines) in a clean directory and
# virtualenv (no Docker engine here), run the installed console script the way the image's ENTRYPOINT does,
# and time that install against a plain `pip install .` of the same files in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
work=build/install-check
rm -rf "$work"
mkdir -p "$work/image" "$work/pip"
"$python" -m venv "$work/venv"
export PATH="$PWD/$work/venv/bin:$PATH"
seconds() { date +%s.%N; }
since() { "$python" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$1" "$(seconds)"; }
uv_install=0
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
      started=$(seconds)
      (cd "$work/image" && eval "$rest")
      elapsed=$(since "$started")
      # The line that installs the project is the one compared with pip.
      if [[ "$rest" == *"uv pip install"* ]]; then uv_install=$elapsed; fi
      ;;
  esac
done < <(sed -n '1,/^FROM .* AS build$/d; /^FROM /q; p' Dockerfile | grep -E '^(COPY|RUN) ')
test -x "$work/image/venv/bin/golden-path" || { echo "install-check: no golden-path in the image's venv"; exit 1; }
# ENTRYPOINT is `golden-path action`; outside Actions we run the demo from the installed script instead.
(cd "$work" && image/venv/bin/golden-path demo --quiet --output-dir out)
test -s "$work/out/results.json"
test -s "$work/out/report.md"
# The protocol profiles are data files: a wheel without them would fail here, not at a user's.
(cd "$work" && image/venv/bin/golden-path demo --quiet --users 2 --profile openai-realtime --output-dir out-realtime)
(cd "$work" && image/venv/bin/golden-path profile show openai-realtime | grep -q "completion_event: response.done")

# The same files, installed the plain way, timed the same way.
cp -R "$work/image/pyproject.toml" "$work/image/README.md" "$work/image/bot" "$work/image/templates" "$work/pip/"
"$python" -m venv "$work/pip-venv"
started=$(seconds)
(cd "$work/pip" && "$PWD/../pip-venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check .)
pip_install=$(since "$started")
printf 'install-check: project install time: uv %.1f s, pip %.1f s (same files, same run, no cache)\n' \
  "$uv_install" "$pip_install"
echo "install-check: the Dockerfile's install steps produce a working golden-path"
