//go:build !unix

package ftp

import "net"

func setOOBInline(net.Conn) {}
