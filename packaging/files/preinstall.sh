#!/bin/sh
# Before the files are unpacked (deb: "install" or "upgrade"; rpm: 1 or 2),
# so that the files owned by the cloudftpd group get it.
set -e
if ! getent group cloudftpd >/dev/null; then
	groupadd --system cloudftpd
fi
if ! getent passwd cloudftpd >/dev/null; then
	useradd --system --gid cloudftpd --home-dir /var/lib/cloudftpd --no-create-home \
		--shell /usr/sbin/nologin --comment "cloudftpd FTP server" cloudftpd
fi
