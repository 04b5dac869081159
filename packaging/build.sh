#!/bin/sh
# Builds dist/cloudftpd_VERSION_ARCH.deb and dist/cloudftpd-VERSION-1.ARCH.rpm:
#   packaging/build.sh 1.2.3                 # this machine's architecture
#   packaging/build.sh 1.2.3 --arch arm64    # any GOARCH: the binary is static
# The commit is the checkout's HEAD (or --commit SHA). nfpm is used as a
# library by packaging/mkpkg, a module of its own (its dependencies stay
# out of the server's go.mod).
set -eu
if [ $# -lt 1 ]; then
	echo "usage: $0 VERSION [--arch GOARCH] [--format deb,rpm] [--out DIR] [--commit SHA]" >&2
	exit 2
fi
version=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo/packaging/mkpkg"
exec go run . --repo "$repo" --version "$version" "$@"
