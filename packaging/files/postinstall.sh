#!/bin/sh
# After the files are unpacked (deb: "configure" [OLD-VERSION]; rpm: 1 on
# install, 2 on upgrade). The service is not enabled nor started on
# install: it needs users, and behind NAT a passive address, first.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running server on the new binary.
	systemctl try-restart cloudftpd.service >/dev/null 2>&1 || true
fi
# A /srv/ftp that existed before (vsftpd's, say) keeps its owner.
if ! runuser -u cloudftpd -- test -w /srv/ftp 2>/dev/null; then
	echo "cloudftpd: warning: the cloudftpd account cannot write /srv/ftp (chown cloudftpd: /srv/ftp, or set storage.root)" >&2
fi
first=no
case "$1" in
configure) [ -z "$2" ] && first=yes ;;
1) first=yes ;;
esac
if [ "$first" = yes ]; then
	cat <<'MSG'
cloudftpd: config in /etc/cloudftpd/cloudftpd.toml, files under /srv/ftp.
  cloudftpd user add NAME --config /etc/cloudftpd/cloudftpd.toml
  cloudftpd doctor --config /etc/cloudftpd/cloudftpd.toml
  systemctl enable --now cloudftpd
MSG
fi
