#!/usr/bin/env bash
# bench/profile.sh: where does cloudftpd spend its time in one workload?
# Runs the real cloudftpd binary on a tmpfs, drives it with ftpbench and
# records the server process only: `perf record -g` (default) or
# `strace -c` (syscall counts, --strace). No vsftpd needed.
#
#   sudo bench/profile.sh download          # 2 GiB RETR
#   sudo bench/profile.sh ftps-upload       # 2 GiB STOR over FTPS
#   sudo bench/profile.sh list|mlsd         # 100,000 entries
#   sudo bench/profile.sh smallfiles|sessions|upload|ftps-download
#   sudo bench/profile.sh --strace download
#   sudo bench/profile.sh --stat upload    # perf stat: context switches, migrations
#   sudo EXTRA='max_commands_per_second = 0' bench/profile.sh --strace smallfiles
#                                           # a line added to [server], to price one switch
#
# Output: bench/results/profile-<workload>[-strace].txt (perf report, top
# symbols by self time, and callers of the top ones).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

MODE=perf
case "${1:-}" in
--strace) MODE=strace; shift ;;
--stat) MODE=stat; shift ;;
esac
WL=${1:?usage: bench/profile.sh [--strace] WORKLOAD}
BIG=${BIG:-$((2 << 30))}
LIST_FILES=${LIST_FILES:-100000}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ "$MODE" = perf ] && ! command -v perf >/dev/null; then
	echo "perf not found (apt-get install linux-perf), or use --strace" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/ftpprof.XXXXXX)
MNT="$WORK/mnt"
SRV=
cleanup() {
	set +e
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	mountpoint -q "$MNT" && umount "$MNT"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$MNT" "$REPO/bench/results"
mount -t tmpfs -o size=5g tmpfs "$MNT"
HOME_DIR="$MNT/homes/bench"
mkdir -p "$HOME_DIR"

go build -o "$WORK/cloudftpd" ./cmd/cloudftpd
go build -o "$WORK/ftpbench" ./bench/cmd/ftpbench
FB="$WORK/ftpbench"
PASS=profile-password
printf '%s\n' "$PASS" | "$WORK/cloudftpd" user add bench --home bench --perm all --password-stdin --users "$WORK/users.toml" >/dev/null
"$WORK/cloudftpd" cert self-signed --host localhost --cert "$WORK/cert.pem" --key "$WORK/key.pem" >/dev/null
cat >"$WORK/cloudftpd.toml" <<EOF
[server]
idle_timeout = "15m"
login_timeout = "15m"
${EXTRA:-}
[[listener]]
address = "127.0.0.1:12131"
passive_ports = "20000-20999"
[[listener]]
address = "127.0.0.1:12133"
passive_ports = "22000-22999"
tls = "required"
tls_cert = "cert.pem"
tls_key = "key.pem"
[storage]
backend = "local"
root = "$MNT/homes"
[auth]
users_file = "users.toml"
[log]
level = "warn"
EOF

args=(--addr 127.0.0.1:12131 --user bench --pass "$PASS" --server cloudftpd)
case "$WL" in
download | ftps-download)
	"$FB" mkfile --path "$HOME_DIR/big.bin" --size "$BIG"
	run=(download --file big.bin --size "$BIG") ;;
upload | ftps-upload)
	"$FB" mkfile --path "$MNT/src.bin" --size "$BIG"
	run=(upload --size "$BIG" --src-file "$MNT/src.bin") ;;
list | mlsd)
	"$FB" mkfiles --dir "$HOME_DIR/many" --count "$LIST_FILES" --size 0
	verb=LIST; [ "$WL" = mlsd ] && verb=MLSD
	run=(list --verb $verb --dir many --lines "$LIST_FILES") ;;
smallfiles) run=(smallfiles --files 2000 --file-size 4096 --parallel 4) ;;
sessions)
	"$FB" mkfiles --dir "$HOME_DIR/small" --count 10 --size 100
	run=(sessions --workers 8 --duration 10s --dir small --src 127.0.0.2-127.0.0.250) ;;
*) echo "unknown workload $WL" >&2; exit 2 ;;
esac
if [[ "$WL" == ftps-* ]]; then
	args=(--addr 127.0.0.1:12133 --user bench --pass "$PASS" --server cloudftpd --tls)
fi

(cd "$WORK" && exec ./cloudftpd serve --config cloudftpd.toml) >"$WORK/cloudftpd.log" 2>&1 &
SRV=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/12131) 2>/dev/null && break; sleep 0.05; done
# One login first so the one-time password hash is not in the profile.
"$FB" run list --dir / --lines 0 "${args[@]}" >/dev/null

OUT="$REPO/bench/results/profile-$WL${EXTRA:+-$(printf %s "$EXTRA" | tr -c 'a-z0-9' _ | tr -s _)}"
if [ "$MODE" = stat ]; then
	OUT="$OUT-stat.txt"
	perf stat -e task-clock,context-switches,cpu-migrations -p "$SRV" -o "$OUT" &
	REC=$!
	sleep 0.5
	"$FB" run "${run[@]}" "${args[@]}"
	kill -INT "$REC"; wait "$REC" || true
elif [ "$MODE" = strace ]; then
	OUT="$OUT-strace.txt"
	strace -c -f -p "$SRV" -o "$OUT" &
	REC=$!
	sleep 0.5
	"$FB" run "${run[@]}" "${args[@]}"
	sleep 0.2
	kill -INT "$REC"; wait "$REC" || true
else
	OUT="$OUT.txt"
	perf record -F 1999 -g -p "$SRV" -o "$WORK/perf.data" 2>"$WORK/perf.err" &
	REC=$!
	sleep 0.5
	"$FB" run "${run[@]}" "${args[@]}"
	kill -INT "$REC"; wait "$REC" || true
	{
		echo "# perf report --no-children (self time), cloudftpd process only, workload $WL"
		perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -g none --percent-limit 0.7 2>/dev/null | grep -v '^$'
		echo
		echo "# by caller (children), top entries"
		perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none --percent-limit 3 2>/dev/null | grep -v '^$'
	} >"$OUT"
fi
echo "wrote $OUT"
