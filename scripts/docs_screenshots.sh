#!/usr/bin/env bash
# Smoke check of the built documentation site in a real headless browser (not part of the test
# suite: it needs chromium, `apt-get install -y chromium`). Builds the site strictly, then
# screenshots the home page, a results page and the CLI reference, so a person can look at
# them (tables rendered, navigation present, no missing styles or fonts fetched).
#
#   scripts/docs_screenshots.sh [OUT_DIR]      # default OUT_DIR: /tmp/ecgcli-docs-shots
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/ecgcli-docs-shots}
site=$(mktemp -d)
mkdir -p "$out"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir "$site"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
for page in index.html results/self-supervision-vs-supervised/index.html reference/cli/index.html \
            guide/pretraining-and-fine-tuning/index.html; do
    name=$(echo "${page%/index.html}" | tr '/' '-')
    [ "$name" = "index.html" ] && name=home
    timeout 60 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1280,1600 --screenshot="$out/$name.png" "file://$site/$page" 2>/dev/null
    echo "$out/$name.png"
done
