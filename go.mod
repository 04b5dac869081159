module github.com/cloudftpd/cloudftpd

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	golang.org/x/crypto v0.59.0
	golang.org/x/term v0.48.0
)

require (
	github.com/jlaffaye/ftp v0.2.4 // indirect
	github.com/pires/go-proxyproto v0.15.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
