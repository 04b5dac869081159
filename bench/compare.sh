#!/usr/bin/env bash
# bench/compare.sh: cloudftpd against vsftpd, Pure-FTPd and SFTPGo on this
# machine, same run, workloads interleaved (cloudftpd, vsftpd, Pure-FTPd,
# SFTPGo, cloudftpd, vsftpd, ...).
#
#   sudo bench/compare.sh            full run: 2 GiB transfers, 10,000 idle
#                                    sessions, 100,000-file listings, 3 rounds
#                                    (about 25 minutes with vsftpd alone, more
#                                    with the peers); writes
#                                    docs/BENCHMARKS.md and docs/benchmarks.svg
#   sudo bench/compare.sh --quick    small sizes, 1 round (about 3 minutes
#                                    with all peers, once they are fetched);
#                                    the report goes to bench/results/<run>/ only
#   --rounds N                       rounds (default 3, quick 1); transfers,
#                                    listings and small files run 3 times a
#                                    round (quick: once), sessions/s and idle
#                                    memory once
#   --only "download upload ..."     run only these workloads (for iteration);
#                                    names: idle download upload ftps-download
#                                    ftps-upload list smallfiles sessions s3
#   --peers "vsftpd pureftpd sftpgo" the other servers (default: all three)
#
# Needs root (a tmpfs mount, a system account for vsftpd, ulimit -n 65536).
# Installs vsftpd with apt-get if missing, without starting its service, and
# versitygw (the S3 gateway of the s3 workload) with .ci/install-versitygw.
# Pure-FTPd (its package conflicts with vsftpd's) is fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into bench/.cache/;
# SFTPGo is built from its module (`go mod download`, `go build` with tags)
# into bench/.cache/. A peer that cannot be had is skipped with a log line.
# Everything listens on 127.0.0.1 only; everything started here (servers,
# tmpfs, system account, raised kernel.pid_max) is undone on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

QUICK=0
ROUNDS=
ONLY=
WANT_PEERS="vsftpd pureftpd sftpgo"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--peers) WANT_PEERS=$2; shift ;;
	-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

if [ "$QUICK" = 1 ]; then
	BIG=$((256 << 20)); BIG_LABEL="256 MiB"
	IDLE_SMALL=100; IDLE_LARGE=1000
	LIST_FILES=10000; LIST_LABEL="10,000"
	SMALL_FILES=400; SMALL_LABEL="400"
	SESS_DUR=3s
	TMPFS_SIZE=2g
	S3_TMPFS_SIZE=1g
	ROUNDS=${ROUNDS:-1}
	REPS=1
else
	BIG=$((2 << 30)); BIG_LABEL="2 GiB"
	IDLE_SMALL=1000; IDLE_LARGE=10000
	LIST_FILES=100000; LIST_LABEL="100,000"
	SMALL_FILES=2000; SMALL_LABEL="2,000"
	SESS_DUR=10s
	TMPFS_SIZE=6g
	S3_TMPFS_SIZE=5g # parts and the assembled object: twice the file
	ROUNDS=${ROUNDS:-3}
	REPS=3
fi
WORKERS=8
SRC=127.0.0.2-127.0.0.250
C_PORT=12121 C_TLS_PORT=12123 V_PORT=12122 V_TLS_PORT=12124
C_S3_PORT=12125 GW_PORT=12170 # cloudftpd with backend = "s3", and its versitygw
P_PORT=12126 P_TLS_PORT=12127 # Pure-FTPd, plain and FTPS
S_PORT=12128 S_TLS_PORT=12129 # SFTPGo: one process, two FTP bindings
SFTPGO_VERSION=v2.7.5
# Everything the bench needs except FTP (plain and FTPS), the local file
# system, S3 and the memory data provider. Not nometrics: in v2.7.5 the S3
# backend calls metric functions that the nometrics stub lacks.
SFTPGO_TAGS=nogcs,noazblob,nobolt,nomysql,nopgsql,nosqlite,noportable
CACHE="$REPO/bench/.cache" # unpacked Pure-FTPd, built SFTPGo (gitignored)
STEP_TIMEOUT=600 # seconds, for any single measurement

want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
wantpeer() { [[ " $WANT_PEERS " == *" $1 "* ]]; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (tmpfs mount, system account for vsftpd)"

# --- prerequisites -----------------------------------------------------------
if ! command -v vsftpd >/dev/null && [ ! -x /usr/sbin/vsftpd ]; then
	log "installing vsftpd (service start disabled)"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vsftpd >/dev/null
fi
VSFTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
if want s3; then
	VERSITYGW=$("$REPO/.ci/install-versitygw")
fi

# Pure-FTPd: Debian's package conflicts with vsftpd's, so it is not
# installed: `apt-get download` fetches the .deb (and any library package
# the binary finds missing) and `dpkg-deb -x` unpacks it under
# bench/.cache/pure-ftpd_VERSION/, from where its binaries run directly.
# Sets PUREFTPD_ROOT and PUREFTPD_VERSION, or returns 1.
fetch_pureftpd() {
	local ver dir tmp lib pkg missing
	ver=$(apt-cache show --no-all-versions pure-ftpd 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
	if [ -z "$ver" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
		ver=$(apt-cache show --no-all-versions pure-ftpd 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
	fi
	[ -n "$ver" ] || { log "Pure-FTPd: no pure-ftpd package in the apt sources"; return 1; }
	dir="$CACHE/pure-ftpd_$ver"
	if [ ! -x "$dir/root/usr/sbin/pure-ftpd" ]; then
		log "Pure-FTPd: fetching Debian's pure-ftpd $ver into $dir"
		tmp="$dir.tmp"
		rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
		(cd "$tmp/debs" && apt-get download -qq -o APT::Sandbox::User=root pure-ftpd) ||
			{ log "Pure-FTPd: apt-get download pure-ftpd failed"; rm -rf "$tmp"; return 1; }
		dpkg-deb -x "$tmp"/debs/pure-ftpd_*.deb "$tmp/root"
		rm -rf "$dir" && mv "$tmp" "$dir"
	fi
	# Libraries the binary does not find on this system: fetch and unpack
	# the lib* packages pure-ftpd depends on that are not installed, and
	# point LD_LIBRARY_PATH at them.
	missing=$(ldd "$dir/root/usr/sbin/pure-ftpd" 2>/dev/null | awk '/not found/ { print $1 }')
	if [ -n "$missing" ]; then
		log "Pure-FTPd: missing libraries: $missing; fetching their packages"
		for pkg in $(apt-cache depends pure-ftpd 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^lib/ { print $2 }'); do
			dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" && continue
			(cd "$dir/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") &&
				dpkg-deb -x "$dir"/debs/"$pkg"_*.deb "$dir/root"
		done
		for lib in lib usr/lib lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
			[ -d "$dir/root/$lib" ] && PUREFTPD_LIBS="${PUREFTPD_LIBS:+$PUREFTPD_LIBS:}$dir/root/$lib"
		done
		missing=$(LD_LIBRARY_PATH="$PUREFTPD_LIBS" ldd "$dir/root/usr/sbin/pure-ftpd" | awk '/not found/ { print $1 }')
		[ -z "$missing" ] || { log "Pure-FTPd: still missing $missing"; return 1; }
	fi
	PUREFTPD_ROOT="$dir/root"
	PUREFTPD_VERSION=$ver
}
PUREFTPD_LIBS=
# pure-ftpd and pure-pw, with the unpacked libraries if any were needed.
pureftpd_env() { LD_LIBRARY_PATH="$PUREFTPD_LIBS" "$@"; }

# SFTPGo: `go install github.com/drakkan/sftpgo/v2@v2.7.5` refuses the
# module, because its go.mod has replace directives (forks of jlaffaye/ftp
# and robfig/cron), which `go install pkg@version` does not allow. So the
# module is fetched with `go mod download` (the same module zip, checked
# against the checksum database) and built in its own directory, as its
# Dockerfiles do, with the build tags that drop what the bench does not use.
# The binary and the e-mail templates it loads at start go to
# bench/.cache/sftpgo-VERSION/. Sets SFTPGO and SFTPGO_DIR, or returns 1.
fetch_sftpgo() {
	local dir="$CACHE/sftpgo-$SFTPGO_VERSION" src
	if [ ! -x "$dir/sftpgo" ]; then
		log "SFTPGo: fetching github.com/drakkan/sftpgo/v2@$SFTPGO_VERSION and building it (tags $SFTPGO_TAGS)"
		# Outside any module (in $WORK), so no go.mod is touched; errors
		# come in the JSON's Error field.
		(cd "$WORK" && go mod download -json "github.com/drakkan/sftpgo/v2@$SFTPGO_VERSION") \
			>"$RUN/sftpgo-download.json" 2>"$RUN/sftpgo-build.log" || true
		src=$(awk -F'"' '$2 == "Dir" { print $4 }' "$RUN/sftpgo-download.json")
		if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
			log "SFTPGo: the module github.com/drakkan/sftpgo/v2@$SFTPGO_VERSION cannot be fetched here:" \
				"$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' "$RUN/sftpgo-download.json" | head -1)$(tail -1 "$RUN/sftpgo-build.log")"
			return 1
		fi
		mkdir -p "$dir"
		if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -tags "$SFTPGO_TAGS" -ldflags "-s -w" \
			-o "$dir/sftpgo.tmp" .) >>"$RUN/sftpgo-build.log" 2>&1; then
			log "SFTPGo: build failed; see $RUN/sftpgo-build.log"
			return 1
		fi
		rm -rf "$dir/templates" && cp -r "$src/templates" "$dir/templates" && chmod -R u+w "$dir/templates"
		mv "$dir/sftpgo.tmp" "$dir/sftpgo"
	fi
	SFTPGO="$dir/sftpgo"
	SFTPGO_DIR=$dir
}
# 10,000 sessions need 10,000+ descriptors in the server and in the
# generator. Without CAP_SYS_RESOURCE (some containers) the hard limit
# cannot be raised: use it if it is still enough.
if ! ulimit -n 65536 2>/dev/null; then
	ulimit -n "$(ulimit -Hn)"
	log "note: open-files limit stays at $(ulimit -n) (hard limit; no CAP_SYS_RESOURCE)"
fi
# cloudftpd holds one descriptor per logged-in session (the control
# connection; sessions in one home share its os.Root), and so does the
# generator: hold fewer sessions when the limit cannot fit 10,000, and say
# so in the report.
IDLE_NOTE=
FD_FIT=$(( ($(ulimit -n) - 300) / 500 * 500 ))
if [ "$FD_FIT" -lt "$IDLE_LARGE" ]; then
	IDLE_NOTE="the open-files hard limit here is $(ulimit -Hn) and cannot be raised (no CAP_SYS_RESOURCE); cloudftpd and the generator each hold 1 descriptor per idle session, so the large idle test holds $FD_FIT sessions instead of $IDLE_LARGE"
	log "note: $IDLE_NOTE"
	IDLE_LARGE=$FD_FIT
fi
[ "$IDLE_LARGE" -ge "$IDLE_SMALL" ] || die "open-files limit $(ulimit -n) is too low"

# --- workspace and cleanup ---------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$REPO/bench/results/$STAMP"
mkdir -p "$RUN"
WORK=$(mktemp -d /tmp/ftpbench.XXXXXX)
chmod 755 "$WORK" # vsftpd's user must reach its home below it
MNT="$WORK/mnt"
S3MNT="$WORK/s3mnt" # versitygw's POSIX root, on a tmpfs of its own
BENCH_USER=ftpbench
# A second account with the same home whose password is hashed with SHA-512
# crypt instead of Debian's default yescrypt: for vsftpd's idle sessions
# (10,000 yescrypt logins would take minutes and memory does not depend on
# the hash) and for a sessions/s variant that shows the servers' own cost.
FAST_USER=ftpbenchs
CREATED_USER=0
CREATED_FAST_USER=0
OLD_PID_MAX=$(cat /proc/sys/kernel/pid_max)
PIDS=()
SAMPLER=

descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

stop_servers() {
	local p all=()
	# vsftpd's session processes (chrooted into the tmpfs) outlive their
	# listener: stop them too.
	for p in "${PIDS[@]}"; do
		all+=($(descendants "$p") "$p")
	done
	PIDS=("${all[@]}")
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
}

cleanup() {
	set +e
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
	stop_servers
	for m in "$MNT" "$S3MNT"; do
		for _ in 1 2 3 4 5; do
			mountpoint -q "$m" || break
			umount "$m" 2>/dev/null || sleep 1
		done
	done
	rm -rf "$WORK"
	[ "$CREATED_USER" = 1 ] && userdel "$BENCH_USER" 2>/dev/null
	[ "$CREATED_FAST_USER" = 1 ] && userdel "$FAST_USER" 2>/dev/null
	[ "$(cat /proc/sys/kernel/pid_max)" != "$OLD_PID_MAX" ] && echo "$OLD_PID_MAX" >/proc/sys/kernel/pid_max
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 vsftpd sessions are 20,000 processes.
if [ "$OLD_PID_MAX" -lt 65536 ]; then
	echo 65536 >/proc/sys/kernel/pid_max
fi

mkdir -p "$MNT"
mount -t tmpfs -o size=$TMPFS_SIZE,mode=755 tmpfs "$MNT"
if want s3; then
	mkdir -p "$S3MNT"
	mount -t tmpfs -o size=$S3_TMPFS_SIZE,mode=755 tmpfs "$S3MNT"
	mkdir -p "$S3MNT/data" "$S3MNT/meta"
fi
HOMES="$MNT/homes"
HOME_DIR="$HOMES/$BENCH_USER"
mkdir -p "$HOME_DIR"

# --- build -------------------------------------------------------------------
log "building cloudftpd and ftpbench"
go build -o "$WORK/cloudftpd" ./cmd/cloudftpd
go build -o "$WORK/ftpbench" ./bench/cmd/ftpbench
FB="$WORK/ftpbench"

# --- peers ---------------------------------------------------------------------
mkdir -p "$CACHE"
PEERS=() # the other servers that run, in the order of the report's columns
PEER_NOTE=
wantpeer vsftpd && PEERS+=(vsftpd)
if wantpeer pureftpd; then
	if fetch_pureftpd; then
		PEERS+=(pureftpd)
	else
		log "skipping Pure-FTPd: it could not be fetched or run here (see above)"
		PEER_NOTE="${PEER_NOTE}Pure-FTPd was skipped: it could not be fetched or run on this machine. "
	fi
fi
if wantpeer sftpgo; then
	if fetch_sftpgo; then
		PEERS+=(sftpgo)
	else
		log "skipping SFTPGo $SFTPGO_VERSION: it could not be fetched or built here (see above)"
		PEER_NOTE="${PEER_NOTE}SFTPGo $SFTPGO_VERSION was skipped: its module could not be fetched or built on this machine. "
	fi
fi
peer() { [[ " ${PEERS[*]} " == *" $1 "* ]]; }
log "servers: cloudftpd ${PEERS[*]}"

# --- one user for all servers ----------------------------------------------
PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
if id "$BENCH_USER" >/dev/null 2>&1; then
	usermod -d "$HOME_DIR" "$BENCH_USER"
else
	useradd -M -d "$HOME_DIR" -s /bin/sh "$BENCH_USER"
	CREATED_USER=1
fi
echo "$BENCH_USER:$PASS" | chpasswd # PAM for vsftpd: Debian's default hash (yescrypt)
if id "$FAST_USER" >/dev/null 2>&1; then
	usermod -d "$HOME_DIR" "$FAST_USER"
else
	useradd -M -d "$HOME_DIR" -s /bin/sh "$FAST_USER"
	CREATED_FAST_USER=1
fi
echo "$FAST_USER:$PASS" | chpasswd -c SHA512
printf '%s\n' "$PASS" | "$WORK/cloudftpd" user add "$BENCH_USER" --home "$BENCH_USER" --perm all \
	--password-stdin --users "$WORK/users.toml" >/dev/null
# The argon2id hash cloudftpd wrote (m=19456 KiB, t=2, p=1): Pure-FTPd
# (libsodium's crypto_pwhash_str_verify) and SFTPGo (argon2id) verify the
# very same string, so all three pay the same cost per hash.
ARGON_HASH=$(awk -F'"' '$1 ~ /^password_hash/ { print $2; exit }' "$WORK/users.toml")
[ -n "$ARGON_HASH" ] || die "no password hash in $WORK/users.toml"
SHA512_HASH=$(getent shadow "$FAST_USER" | cut -d: -f2)

if peer pureftpd; then
	# Virtual users in Pure-FTPd's own database (puredb), made with its
	# pure-pw: the bench account and, like vsftpd's, a second one whose hash
	# is SHA-512 crypt (for the idle sessions and a sessions/s variant).
	# Both map to the ftpbench system account (the owner of the shared
	# home) and are chrooted into it (the "/./" of -d). pure-pw's own hash
	# (argon2id calibrated to ~8 MiB and hundreds of passes here) is
	# replaced by cloudftpd's argon2id hash / the shadow's SHA-512 hash.
	PW_UID=$(id -u "$BENCH_USER") PW_GID=$(id -g "$BENCH_USER")
	for u in "$BENCH_USER" "$FAST_USER"; do
		printf '%s\n%s\n' "$PASS" "$PASS" | pureftpd_env "$PUREFTPD_ROOT/usr/bin/pure-pw" useradd "$u" \
			-f "$WORK/pureftpd.passwd.tmp" -u "$PW_UID" -g "$PW_GID" -d "$HOME_DIR" >/dev/null
	done
	awk -F: -v OFS=: -v a="$ARGON_HASH" -v s="$SHA512_HASH" -v fast="$FAST_USER" \
		'{ $2 = ($1 == fast ? s : a); print }' "$WORK/pureftpd.passwd.tmp" >"$WORK/pureftpd.passwd"
	rm -f "$WORK/pureftpd.passwd.tmp"
	pureftpd_env "$PUREFTPD_ROOT/usr/bin/pure-pw" mkdb "$WORK/pureftpd.pdb" -f "$WORK/pureftpd.passwd" >/dev/null
fi

# --- test data (one home shared by all servers) ------------------------------
log "creating test data on tmpfs ($TMPFS_SIZE)"
"$FB" mkfile --path "$HOME_DIR/big.bin" --size "$BIG"
"$FB" mkfiles --dir "$HOME_DIR/small" --count 10 --size 100
"$FB" mkfiles --dir "$HOME_DIR/many" --count "$LIST_FILES" --size 0
chown -R "$BENCH_USER:" "$HOME_DIR"

# --- configs -------------------------------------------------------------------
"$WORK/cloudftpd" cert self-signed --host localhost --host 127.0.0.1 \
	--cert "$WORK/cert.pem" --key "$WORK/key.pem" >/dev/null
chmod 644 "$WORK/cert.pem"

# The s3 workload's gateway: credentials of its root account, which
# cloudftpd and ftpbench mkbucket find in the environment like any AWS
# credentials.
export AWS_ACCESS_KEY_ID=ftpbench AWS_SECRET_ACCESS_KEY="$PASS" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
# The [server] section of both cloudftpd configs.
server_toml() {
	cat <<EOF
[server]
idle_timeout = "15m"
login_timeout = "15m"
data_timeout = "30s"
stall_timeout = "5m"
EOF
}

# A state directory of its own: two servers cannot share one control
# socket (server.state_dir defaults to "state" beside the config).
{ server_toml; echo 'state_dir = "state-s3"'; cat <<EOF; } >"$WORK/cloudftpd-s3.toml"

[[listener]]
address = "127.0.0.1:$C_S3_PORT"
passive_ports = "24000-24999"

[storage]
backend = "s3"                  # part_size and concurrency: the defaults
bucket = "ftpbench"
prefix = "homes/"
endpoint = "http://127.0.0.1:$GW_PORT"
path_style = true

[auth]
users_file = "users.toml"

[log]
level = "warn"
EOF

{ server_toml; cat <<EOF; } >"$WORK/cloudftpd.toml"

[[listener]]
address = "127.0.0.1:$C_PORT"
passive_ports = "20000-20999"

[[listener]]
address = "127.0.0.1:$C_TLS_PORT"
passive_ports = "22000-22999"
tls = "required"                # AUTH TLS before USER; PROT P and session reuse required
tls_cert = "cert.pem"
tls_key = "key.pem"

[storage]
backend = "local"
root = "$HOMES"

[auth]
users_file = "users.toml"

[log]
level = "warn"
EOF

vsftpd_conf() { # port pasv_min pasv_max tls(YES|NO)
	cat <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$1
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
pasv_enable=YES
pasv_min_port=$2
pasv_max_port=$3
connect_from_port_20=NO
max_clients=20000
max_per_ip=20000
idle_session_timeout=900
data_connection_timeout=300
xferlog_enable=NO
dirmessage_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
vsftpd_log_file=$WORK/vsftpd.log
ssl_enable=$4
EOF
	if [ "$4" = YES ]; then
		cat <<EOF
rsa_cert_file=$WORK/cert.pem
rsa_private_key_file=$WORK/key.pem
force_local_logins_ssl=YES
force_local_data_ssl=YES
require_ssl_reuse=YES
ssl_request_cert=NO
ssl_ciphers=HIGH
ssl_sslv2=NO
ssl_sslv3=NO
EOF
	fi
}
mkdir -p /var/run/vsftpd/empty
vsftpd_conf $V_PORT 21000 21999 NO >"$WORK/vsftpd.conf"
vsftpd_conf $V_TLS_PORT 23000 23999 YES >"$WORK/vsftpd-tls.conf"
cp "$WORK/cloudftpd.toml" "$WORK/cloudftpd-s3.toml" "$WORK/vsftpd.conf" "$WORK/vsftpd-tls.conf" "$RUN/"

# Pure-FTPd is configured on its command line (Debian's wrapper and its
# /etc/pure-ftpd/conf/ are not used). Every choice is in docs/BENCHMARKS.md.
pureftpd_args() { # port pasv_min pasv_max [tls args...]
	local port=$1 lo=$2 hi=$3
	shift 3
	# -S bind, -4 IPv4 only, -l puredb:FILE virtual users only, -E no
	# anonymous, -A chroot everyone, -H no reverse DNS, -c/-C 20000 clients
	# in all and per IP (defaults 50 and 50), -p passive range, -I 15
	# minutes idle, -L listings up to 1,000,000 files (default 10,000),
	# -f none no syslog at all, -U 022 like the others' umask.
	printf '%s\n' -S "127.0.0.1,$port" -4 -l "puredb:$WORK/pureftpd.pdb" -E -A -H \
		-c 20000 -C 20000 -p "$lo:$hi" -I 15 -L 1000000:5 -f none -U 133:022 "$@"
}
if peer pureftpd; then
	# Pure-FTPd admits at most half as many clients as it has passive
	# ports ("421 500 users (the maximum) are already logged in" with
	# 1,000 ports and -c 20000), so the plain listener, which holds the
	# idle sessions, gets 21,000 ports: room for 10,000 sessions. Below
	# 32768 there is no such room beside the others' ranges, so this one
	# lies in the kernel's ephemeral range; a port taken by an outgoing
	# connection only makes Pure-FTPd bind another.
	pureftpd_args $P_PORT 40000 60999 >"$WORK/pureftpd.args"
	# -Y 3: TLS required on the control and on every data connection;
	# -2 CERT,KEY the same certificate as the others.
	pureftpd_args $P_TLS_PORT 26000 26999 -Y 3 -2 "$WORK/cert.pem,$WORK/key.pem" >"$WORK/pureftpd-tls.args"
	# Pure-FTPd's OpenSSL prefers TLS_AES_256_GCM_SHA384; the others
	# negotiate TLS_AES_128_GCM_SHA256 with the generator. The same suite
	# for all: an OpenSSL config for the Pure-FTPd processes only that
	# lists AES-128-GCM first.
	cat >"$WORK/pureftpd-openssl.cnf" <<EOF
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
EOF
	cp "$WORK/pureftpd.args" "$WORK/pureftpd-tls.args" "$WORK/pureftpd-openssl.cnf" "$RUN/"
fi

S3_USER=ftpbenchs3 # SFTPGo's user whose file system is the S3 bucket
if peer sftpgo; then
	# SFTPGo: a config file (unlisted keys keep their defaults), users in
	# the memory data provider loaded from a dump at start. Local users have
	# no uid/gid (files owned by the server's user, root, like cloudftpd's).
	# password_hashing.algo is argon2id because with its default, bcrypt,
	# SFTPGo re-hashes an argon2id password with bcrypt at the first login.
	mkdir -p "$WORK/sftpgo" "$MNT/sftpgo-tmp"
	{
		printf '{"version": 17, "users": [\n'
		printf '  {"id": 1, "status": 1, "username": "%s", "password": "%s", "home_dir": "%s",\n' "$BENCH_USER" "$ARGON_HASH" "$HOME_DIR"
		printf '   "permissions": {"/": ["*"]}, "filesystem": {"provider": 0}}'
		if want s3; then
			# The S3 workload's user: the bench's versitygw bucket, under a
			# prefix of its own, path-style, with cloudftpd's part size and
			# concurrency (16 MiB, 4) both ways, so both hold the same
			# memory for parts.
			printf ',\n  {"id": 2, "status": 1, "username": "%s", "password": "%s", "home_dir": "%s",\n' "$S3_USER" "$ARGON_HASH" "$WORK/sftpgo/s3home"
			printf '   "permissions": {"/": ["*"]}, "filesystem": {"provider": 1, "s3config": {\n'
			printf '     "bucket": "ftpbench", "key_prefix": "sftpgo/", "region": "%s", "endpoint": "http://127.0.0.1:%s",\n' "$AWS_REGION" "$GW_PORT"
			printf '     "access_key": "%s", "access_secret": {"status": "Plain", "payload": "%s"},\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
			printf '     "force_path_style": true, "upload_part_size": 16, "upload_concurrency": 4,\n'
			printf '     "download_part_size": 16, "download_concurrency": 4}}}'
		fi
		printf '\n]}\n'
	} >"$WORK/sftpgo/users.json"
	cat >"$WORK/sftpgo/sftpgo.json" <<EOF
{
  "common": {
    "idle_timeout": 15,
    "upload_mode": 0,
    "max_total_connections": 0,
    "max_per_host_connections": 0,
    "temp_path": "$MNT/sftpgo-tmp",
    "defender": {"enabled": false},
    "rate_limiters": []
  },
  "sftpd": {"bindings": []},
  "webdavd": {"bindings": []},
  "httpd": {"bindings": []},
  "telemetry": {"bind_port": 0},
  "smtp": {"templates_path": "$SFTPGO_DIR/templates"},
  "ftpd": {
    "bindings": [
      {"address": "127.0.0.1", "port": $S_PORT, "tls_mode": 0, "apply_proxy_config": false, "min_tls_version": 12},
      {"address": "127.0.0.1", "port": $S_TLS_PORT, "tls_mode": 1, "apply_proxy_config": false, "min_tls_version": 12}
    ],
    "passive_port_range": {"start": 27000, "end": 28999},
    "certificate_file": "$WORK/cert.pem",
    "certificate_key_file": "$WORK/key.pem"
  },
  "data_provider": {
    "driver": "memory",
    "name": "$WORK/sftpgo/users.json",
    "track_quota": 0,
    "password_caching": true,
    "password_hashing": {"algo": "argon2id", "argon2_options": {"memory": 19456, "iterations": 2, "parallelism": 1}},
    "create_default_admin": false,
    "backups_path": "$WORK/sftpgo/backups"
  }
}
EOF
	cp "$WORK/sftpgo/sftpgo.json" "$RUN/"
fi

# --- servers ---------------------------------------------------------------
wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	die "nothing listens on 127.0.0.1:$1"
}

start_servers() {
	(cd "$WORK" && exec ./cloudftpd serve --config cloudftpd.toml) >>"$RUN/cloudftpd.log" 2>&1 &
	C_PID=$!
	"$VSFTPD" "$WORK/vsftpd.conf" >>"$RUN/vsftpd.out" 2>&1 &
	V_PID=$!
	"$VSFTPD" "$WORK/vsftpd-tls.conf" >>"$RUN/vsftpd.out" 2>&1 &
	V_TLS_PID=$!
	PIDS=("$C_PID" "$V_PID" "$V_TLS_PID")
	wait_port $C_PORT; wait_port $C_TLS_PORT; wait_port $V_PORT; wait_port $V_TLS_PORT
	if peer pureftpd; then
		local args
		mapfile -t args <"$WORK/pureftpd.args"
		pureftpd_env "$PUREFTPD_ROOT/usr/sbin/pure-ftpd" "${args[@]}" >>"$RUN/pureftpd.out" 2>&1 &
		P_PID=$!
		mapfile -t args <"$WORK/pureftpd-tls.args"
		OPENSSL_CONF="$WORK/pureftpd-openssl.cnf" pureftpd_env "$PUREFTPD_ROOT/usr/sbin/pure-ftpd" "${args[@]}" \
			>>"$RUN/pureftpd.out" 2>&1 &
		P_TLS_PID=$!
		PIDS+=("$P_PID" "$P_TLS_PID")
		wait_port $P_PORT; wait_port $P_TLS_PORT
	fi
	if peer sftpgo; then
		# Log level error: no line per login or transfer (those are info).
		"$SFTPGO" serve --config-dir "$WORK/sftpgo" --config-file sftpgo.json \
			--log-file-path "" --log-level error >>"$RUN/sftpgo.log" 2>&1 &
		S_PID=$!
		PIDS+=("$S_PID")
		wait_port $S_PORT; wait_port $S_TLS_PORT
	fi
	if want s3; then
		start_s3
	fi
}

# versitygw's POSIX backend keeps object metadata in user.* extended
# attributes and refuses a file system without them (tmpfs before Linux
# 6.6): then it runs with --sidecar, which keeps them in files of another
# directory. GW_META says which, for the report.
GW_META=xattr
start_gateway() {
	local meta=()
	[ "$GW_META" = sidecar ] && meta=(--sidecar "$S3MNT/meta")
	"$VERSITYGW" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
		--port "127.0.0.1:$GW_PORT" --quiet posix "${meta[@]}" "$S3MNT/data" >>"$RUN/versitygw.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null; then return 0; fi
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ "$GW_META" = xattr ] && grep -q xattr "$RUN/versitygw.log"; then
		log "versitygw: no extended attributes on the tmpfs; metadata in a sidecar directory"
		GW_META=sidecar
		start_gateway
		return
	fi
	die "versitygw did not start; see $RUN/versitygw.log"
}

start_s3() {
	start_gateway
	"$FB" mkbucket --endpoint "http://127.0.0.1:$GW_PORT" --bucket ftpbench
	(cd "$WORK" && exec ./cloudftpd serve --config cloudftpd-s3.toml) >>"$RUN/cloudftpd-s3.log" 2>&1 &
	C_S3_PID=$!
	PIDS+=("$C_S3_PID")
	wait_port $C_S3_PORT
}

restart_servers() {
	stop_servers
	start_servers
	sleep 1
}

# --- measurement helpers ---------------------------------------------------
RESULTS="$RUN/results.jsonl"
measure() { # server round workload [flags...]
	local server=$1 round=$2 workload=$3
	shift 3
	local port=$C_PORT tls_port=$C_TLS_PORT pid=$C_PID user=$BENCH_USER
	case "$server" in
	vsftpd) port=$V_PORT tls_port=$V_TLS_PORT pid=$V_PID ;;
	vsftpd-sha512) port=$V_PORT tls_port=$V_TLS_PORT pid=$V_PID user=$FAST_USER ;;
	pureftpd) port=$P_PORT tls_port=$P_TLS_PORT pid=$P_PID ;;
	pureftpd-sha512) port=$P_PORT tls_port=$P_TLS_PORT pid=$P_PID user=$FAST_USER ;;
	sftpgo) port=$S_PORT tls_port=$S_TLS_PORT pid=$S_PID ;;
	esac
	if [[ " $* " == *" --tls "* ]]; then
		port=$tls_port
	fi
	settle
	if ! timeout "$STEP_TIMEOUT" "$FB" run "$workload" --server "$server" --round "$round" \
		--addr "127.0.0.1:$port" --user "$user" --pass "$PASS" --out "$RESULTS" \
		--pid "$pid" "$@"; then
		log "FAILED: $workload against $server (round $round); see $RUN"
		echo "{\"failed\":\"$workload $server round $round\"}" >>"$RUN/failures.jsonl"
	fi
}

# Every data connection leaves a socket in TIME_WAIT for 60 s, thousands
# per small-file run, tens of thousands per sessions run. With ~50,000 of
# them connecting gets several times slower (the kernel searches for a free
# 4-tuple), so whoever ran second would pay for the first one's sockets:
# wait until fewer than 10,000 are left (at most 70 s).
settle() {
	local i
	for i in $(seq 70); do
		[ "$(ss -tan state time-wait | wc -l)" -lt 10000 ] && return
		sleep 1
	done
}

all() { # round workload [flags...]: cloudftpd, then each peer
	local p
	measure cloudftpd "$@"
	for p in "${PEERS[@]}"; do
		measure "$p" "$@"
	done
}

# Writing to tmpfs pages that were never touched (or were handed back to
# the hypervisor) is much slower on a VM than reusing pages just freed. So
# before every upload, write and delete a file of the upload's size, so
# that the server going first does not always pay for fresh pages. (It
# narrows the gap; where the VM returns free pages to its host quickly,
# upload numbers stay noisy.)
warm() { # [tmpfs: default $MNT]
	local dir=${1:-$MNT}
	"$FB" mkfile --path "$dir/warm.bin" --size "$BIG"
	rm -f "$dir/warm.bin"
}

# The s3 workload: upload (from the tmpfs file, with sendfile, like the
# local upload), download and delete through the S3 cloudftpd, then through
# SFTPGo's S3 user; the server's peak RSS during the upload is measured too.
measure_s3() { # server round
	local server=$1 port=$C_S3_PORT pid=$C_S3_PID user=$BENCH_USER
	[ "$server" = sftpgo ] && port=$S_PORT pid=$S_PID user=$S3_USER
	warm "$S3MNT"
	if ! timeout "$STEP_TIMEOUT" "$FB" run s3 --server "$server" --round "$2" \
		--addr "127.0.0.1:$port" --user "$user" --pass "$PASS" --out "$RESULTS" \
		--pid "$pid" --size "$BIG" --src-file "$HOME_DIR/big.bin"; then
		log "FAILED: s3 against $server (round $2); see $RUN"
		echo "{\"failed\":\"s3 $server round $2\"}" >>"$RUN/failures.jsonl"
	fi
}

all_upload() { # round [flags...]
	local p
	warm
	measure cloudftpd "$1" upload "${@:2}"
	for p in "${PEERS[@]}"; do
		warm
		measure "$p" "$1" upload "${@:2}"
	done
}

# Sample what else uses the CPU, so the report can say whether others
# shared the machine: every 5 s, the %CPU (of one core) over one second of
# every process that is not part of this benchmark.
(
	while sleep 4; do
		top -b -n 2 -d 1 -w 512 2>/dev/null | awk -v t="$(date +%s)" '
			/^top -/ { snap++ }
			snap == 2 && $1 ~ /^[0-9]+$/ && $12 !~ /^(vsftpd|cloudftpd|pure-ftpd|sftpgo|ftpbench|versitygw|top|timeout|bash|sleep|awk|compare.sh)$/ { s += $9; if ($9 > 5) names[$12] = 1 }
			END { n = ""; for (k in names) n = n k ","; printf "%s %.0f %s\n", t, s, n }'
	done
) >"$RUN/load.log" 2>/dev/null &
SAMPLER=$!

# --- rounds ------------------------------------------------------------------
T0=$(date +%s)
for round in $(seq "$ROUNDS"); do
	log "round $round of $ROUNDS"
	if want idle; then
		for n in "$IDLE_SMALL" "$IDLE_LARGE"; do
			restart_servers
			measure cloudftpd "$round" idle --sessions "$n" --src "$SRC" --concurrency 16 --name "idle-$n"
			# vsftpd and Pure-FTPd verify the password on every login (no
			# cache): their idle sessions log in with the SHA-512 account.
			peer vsftpd && measure vsftpd-sha512 "$round" idle --sessions "$n" --src "$SRC" --concurrency 16 --name "idle-$n" --server vsftpd
			peer pureftpd && measure pureftpd-sha512 "$round" idle --sessions "$n" --src "$SRC" --concurrency 16 --name "idle-$n" --server pureftpd
			peer sftpgo && measure sftpgo "$round" idle --sessions "$n" --src "$SRC" --concurrency 16 --name "idle-$n"
		done
	fi
	restart_servers
	# The short measurements repeat within a round (still interleaved) so
	# the medians rest on more samples; a 2 GiB transfer is only ~2 s.
	for rep in $(seq "$REPS"); do
		if want download; then
			timeout "$STEP_TIMEOUT" "$FB" ceiling --file "$HOME_DIR/big.bin" --round "$round" --out "$RESULTS" ||
				log "FAILED: ceiling"
			all "$round" download --file big.bin --size "$BIG"
		fi
		want upload && all_upload "$round" --size "$BIG" --src-file "$HOME_DIR/big.bin"
		if want s3; then
			measure_s3 cloudftpd "$round"
			peer sftpgo && measure_s3 sftpgo "$round"
		fi
		want ftps-download && all "$round" download --file big.bin --size "$BIG" --tls
		want ftps-upload && all_upload "$round" --size "$BIG" --tls
		if want list; then
			all "$round" list --verb LIST --dir many --lines "$LIST_FILES"
			# MLSD: all but vsftpd, which has none.
			measure cloudftpd "$round" list --verb MLSD --dir many --lines "$LIST_FILES"
			peer pureftpd && measure pureftpd "$round" list --verb MLSD --dir many --lines "$LIST_FILES"
			peer sftpgo && measure sftpgo "$round" list --verb MLSD --dir many --lines "$LIST_FILES"
		fi
		want smallfiles && all "$round" smallfiles --files "$SMALL_FILES" --file-size 4096 --parallel 4
	done
	if want sessions; then
		all "$round" sessions --workers $WORKERS --duration "$SESS_DUR" --dir small --src "$SRC"
		peer vsftpd && measure vsftpd-sha512 "$round" sessions --workers $WORKERS --duration "$SESS_DUR" --dir small --src "$SRC"
		peer pureftpd && measure pureftpd-sha512 "$round" sessions --workers $WORKERS --duration "$SESS_DUR" --dir small --src "$SRC"
	fi
done
T1=$(date +%s)
stop_servers

# --- report ------------------------------------------------------------------
LOAD=$(awk '{n++; s+=$2; if ($2>m) m=$2; if ($2>50) busy++; split($3, a, ","); for (i in a) if (a[i] != "") { sub(/[-+:\/].*/, "", a[i]); who[a[i]]=1 } }
	END { w=""; for (k in who) w = w (w ? ", " : "") k;
	      if (n) printf "other processes used %.0f%% of one core on average (max %.0f%%; over 50%% in %d of %d samples)%s", s/n, m, busy, n, (w ? "; busiest: " w : "") }' "$RUN/load.log")
[[ "$LOAD" == *kworker* ]] && LOAD="$LOAD (kworker includes the kernel tearing down the network namespace vsftpd gives every session, isolate_network=YES by default)"
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " + uncommitted changes" || true)
CMD="sudo bench/compare.sh"
[ "$QUICK" = 1 ] && CMD="$CMD --quick"
"$FB" machine \
	--set "vsftpd=$(dpkg-query -W -f='${Version}' vsftpd 2>/dev/null || echo unknown)" \
	--set "pureftpd=${PUREFTPD_VERSION:+$PUREFTPD_VERSION (Debian package, unpacked)}" \
	--set "sftpgo=${SFTPGO:+$SFTPGO_VERSION (go build -tags $SFTPGO_TAGS)}" \
	--set "peers=${PEERS[*]}" --set "peer_note=$PEER_NOTE" \
	--set "cloudftpd=$COMMIT$DIRTY ($("$WORK/cloudftpd" version 2>/dev/null | head -1))" \
	--set "rounds=$ROUNDS" --set "reps=$REPS" --set "duration_s=$((T1 - T0))" \
	--set "big=$BIG_LABEL" --set "list_files=$LIST_LABEL" --set "small_files=$SMALL_LABEL" \
	--set "idle_small=$IDLE_SMALL" --set "idle_large=$IDLE_LARGE" --set "workers=$WORKERS" \
	--set "command=$CMD" --set "load=$LOAD" --set "idle_note=$IDLE_NOTE" \
	--set "s3_gateway=versitygw $(go version -m "${VERSITYGW:-/dev/null}" 2>/dev/null | awk '$1 == "mod" { print $3 }') (POSIX backend, metadata in $GW_META)" >"$RUN/meta.json"

MD="$RUN/BENCHMARKS.md" SVG="$RUN/benchmarks.svg"
if [ "$QUICK" = 0 ] && [ -z "$ONLY" ]; then
	MD="$REPO/docs/BENCHMARKS.md" SVG="$REPO/docs/benchmarks.svg"
fi
NOTES=()
[ -f "$REPO/bench/analysis.md" ] && NOTES=(--notes "$REPO/bench/analysis.md")
"$FB" render --results "$RESULTS" --meta "$RUN/meta.json" --md "$MD" --svg "$SVG" "${NOTES[@]}"
log "done in $((T1 - T0)) s; results in $RUN; report $MD"
[ -f "$RUN/failures.jsonl" ] && { log "some measurements failed:"; cat "$RUN/failures.jsonl" >&2; exit 1; }
exit 0
