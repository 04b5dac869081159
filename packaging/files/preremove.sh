#!/bin/sh
# Before the files are removed (deb: "remove", or "upgrade" when replaced;
# rpm: 0 on removal, 1 on upgrade): only a removal stops the server.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now cloudftpd.service >/dev/null 2>&1 || true
	fi
	;;
esac
