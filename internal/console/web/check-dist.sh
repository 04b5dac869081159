#!/usr/bin/env bash
# check-dist.sh: the committed dist/ (embedded in the Go binary by
# internal/console) must be what the sources and package-lock.json
# build. Installs the locked packages (npm ci), builds into a scratch
# directory and diffs it against dist/. Run from anywhere; CI runs it.
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx --no-install vite build --logLevel warn --outDir "$out/dist" --emptyOutDir

if ! diff -r dist "$out/dist"; then
	echo "check-dist: internal/console/web/dist is not what the sources build;" >&2
	echo "run 'npm ci && npm run build' in internal/console/web and commit dist/" >&2
	exit 1
fi
# The binary embeds the committed files: none may be left untracked.
if [ -n "$(git ls-files --others --exclude-standard -- dist)" ] || ! git diff --quiet -- dist; then
	echo "check-dist: dist/ has changes not committed:" >&2
	git status --short -- dist >&2
	exit 1
fi
echo "check-dist: dist/ matches the sources"
