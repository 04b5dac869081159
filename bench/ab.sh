#!/usr/bin/env bash
# bench/ab.sh: what a change costs on the transfer path. Builds cloudftpd
# at two revisions, runs both on 127.0.0.1 from the same tmpfs with the same
# config, and alternates the workloads between them (A, B, A, B, ...),
# printing each run and the median ratio B/A.
#
#   bench/ab.sh [--rounds N] [--size BYTES] [--extra-b TOML] BASE [HEAD]
#
#   BASE, HEAD     git revisions (HEAD: the working tree's HEAD)
#   --rounds N     alternations per workload (default 5)
#   --size BYTES   download and upload size (default 1 GiB)
#   --only "W..."  run only these workloads (download upload smallfiles)
#   --extra-b TOML a line added to B's [server] section, e.g.
#                  'upload_checksum = "off"', to price one switch
#
# Workloads: download, upload (both sendfile from/to the tmpfs), 2,000
# files of 4 KiB up and down over 4 sessions. Needs no root: everything
# lives in a directory under /dev/shm that is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROUNDS=5 SIZE=$((1 << 30)) EXTRA_B="" ONLY="download upload smallfiles"
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--extra-b) EXTRA_B=$2; shift ;;
	--only) ONLY=$2; shift ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) break ;;
	esac
	shift
done
BASE=${1:?usage: bench/ab.sh [--rounds N] BASE [HEAD]}
HEAD_REV=${2:-HEAD}

WORK=$(mktemp -d /dev/shm/cloudftpd-ab.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	git -C "$REPO" worktree remove --force "$WORK/src-a" 2>/dev/null || true
	git -C "$REPO" worktree remove --force "$WORK/src-b" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

build() { # rev dir
	git -C "$REPO" worktree add -q --detach "$WORK/src-$2" "$1"
	(cd "$WORK/src-$2" && go build -o "$WORK/cloudftpd-$2" ./cmd/cloudftpd)
}
build "$BASE" a
build "$HEAD_REV" b
go build -o "$WORK/ftpbench" ./bench/cmd/ftpbench

PASS=ab-secret
start() { # name port passive extra
	local d="$WORK/$1"
	mkdir -p "$d/data/bench"
	printf '%s\n' "$PASS" | "$WORK/cloudftpd-$1" user add bench --users "$d/users.toml" --password-stdin >/dev/null
	cat >"$d/cloudftpd.toml" <<EOF
[server]
idle_timeout = "15m"
login_timeout = "15m"
stall_timeout = "5m"
$4

[[listener]]
address = "127.0.0.1:$2"
passive_ports = "$3"

[storage]
root = "data"

[auth]
users_file = "users.toml"

[defender]
enabled = true

[log]
level = "warn"
EOF
	(cd "$d" && exec "$WORK/cloudftpd-$1" serve --config cloudftpd.toml) >>"$d/log" 2>&1 &
	PIDS+=($!)
}
start a 12231 "26000-26099" ""
start b 12232 "26100-26199" "$EXTRA_B"
sleep 1
head -c "$SIZE" /dev/urandom >"$WORK/big.bin"
cp "$WORK/big.bin" "$WORK/a/data/bench/big.bin"
cp "$WORK/big.bin" "$WORK/b/data/bench/big.bin"

# settle waits (up to a minute) until the connections of the last
# measurement have left TIME_WAIT: thousands of them on 127.0.0.1 slow
# the next run's connects, whichever server it measures.
settle() {
	for _ in $(seq 60); do
		[ "$(ss -tan state time-wait 2>/dev/null | wc -l)" -lt 500 ] && return
		sleep 1
	done
}

run() { # side workload args...
	local side=$1 w=$2; shift 2
	settle
	local port=12231
	[ "$side" = b ] && port=12232
	"$WORK/ftpbench" run "$w" --addr "127.0.0.1:$port" --user bench --pass "$PASS" --server "$side" --out "$WORK/results.jsonl" "$@" >/dev/null
	rm -f "$WORK"/?/data/bench/upload-* 2>/dev/null || true
	rm -rf "$WORK"/?/data/bench/small-* 2>/dev/null || true
}
for r in $(seq "$ROUNDS"); do
	for side in a b; do
		[[ " $ONLY " == *" download "* ]] && run "$side" download --size "$SIZE" --round "$r"
		[[ " $ONLY " == *" upload "* ]] && run "$side" upload --size "$SIZE" --src-file "$WORK/big.bin" --round "$r"
		[[ " $ONLY " == *" smallfiles "* ]] && run "$side" smallfiles --files 2000 --file-size 4096 --parallel 4 --round "$r"
	done
	echo "round $r done" >&2
done

python3 - "$WORK/results.jsonl" "$BASE" "$HEAD_REV" "$EXTRA_B" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def value(r):
    for k in ("mib_per_s", "files_per_s", "per_s", "value"):
        if k in r:
            return r[k]
    raise SystemExit(f"no value in {r}")
by = {}
for r in rows:
    by.setdefault(r["workload"], {}).setdefault(r["server"], []).append(value(r))
print(f"A = {sys.argv[2]}, B = {sys.argv[3]} {sys.argv[4]}".rstrip())
for w, s in by.items():
    a, b = statistics.median(s["a"]), statistics.median(s["b"])
    print(f"{w:18s} A {a:10.1f}  B {b:10.1f}  B/A {b / a:5.2f}x   (A runs {['%.0f' % x for x in s['a']]}, B runs {['%.0f' % x for x in s['b']]})")
EOF
