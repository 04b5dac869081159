#!/bin/sh
# After the files are removed (deb: "remove", "purge", "upgrade"...; rpm: 0
# on removal, 1 on upgrade). A purge deletes the state and the logs; the
# files users uploaded (/srv/ftp) and the cloudftpd account stay.
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/cloudftpd /var/log/cloudftpd
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
