#!/usr/bin/env bash
# Renders a man page source (tools/man/NAME.SECTION.md, pandoc markdown with a YAML title
# block) into roff: render.sh SOURCE.md OUTPUT VERSION. A line `<!-- include FILE -->` (FILE
# relative to the source) becomes FILE's text as a literal block, so a page can show a file
# of the repository without a second copy of it. The date is SOURCE_DATE_EPOCH's (set by
# dpkg-buildpackage from debian/changelog) or today's.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 SOURCE.md OUTPUT VERSION" >&2
  exit 2
fi
src=$1 out=$2 version=$3
dir=$(dirname "$src")
date=$(LC_ALL=C date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

while IFS= read -r line || [ -n "$line" ]; do
  if [[ $line =~ ^\<!--\ include\ (.+)\ --\>$ ]]; then
    file="$dir/${BASH_REMATCH[1]}"
    [ -r "$file" ] || { echo "$src: cannot read included $file" >&2; exit 1; }
    sed 's/^/    /' "$file"
  else
    printf '%s\n' "$line"
  fi
done <"$src" |
  pandoc --standalone --from markdown-smart --to man \
    --metadata footer="ppinject $version" --metadata date="$date" --output "$out"
