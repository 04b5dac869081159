package nattest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/sysusers/sysuserstest"
)

// vsftpdVPNAddr is srv's second address, the "second ENI" of the classic
// two-process vsftpd setup, which serves the VPN without pasv_address.
const vsftpdVPNAddr = "10.77.0.11"

// TestImportedTwoProcessVsftpd: the EC2 workaround of two vsftpd
// processes (one on the internet-facing address with pasv_address = the
// Elastic IP, one on a second address for the VPN without it) imported
// with "cloudftpd import vsftpd", both as it was (one listener per file)
// and merged into one listener with passive rules by network. In each
// case one cloudftpd process serves an internet client through the NAT
// and a VPN client directly, and each gets a PASV address it can reach.
func TestImportedTwoProcessVsftpd(t *testing.T) {
	tp := newTopology(t)
	bin := buildServer(t, t.TempDir())
	tp.must(t, tp.srv, "addr", "add", vsftpdVPNAddr+"/24", "dev", clientIf)
	inet, vpn := sides(tp)

	for _, mode := range []struct {
		name  string
		flags []string
		vpn   side // how the VPN client reaches the server
	}{
		{"per-file", nil, side{"vpn", tp.vpn, vpnAddr, vsftpdVPNAddr}},
		{"merged", []string{"--merge"}, vpn},
	} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "data")
			home := filepath.Join(root, user)
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			conf := func(name, listen, pasv string) string {
				text := fmt.Sprintf(`# %s, as on the EC2 instance
listen=YES
listen_address=%s
listen_port=%s
local_enable=YES
write_enable=YES
local_root=%s
pasv_enable=YES
pasv_min_port=50000
pasv_max_port=50009
user_sub_token=$USER
%s`, name, listen, ftpPort, root+"/$USER", pasv)
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			global := conf("vsftpd.global.conf", srvAddr, "pasv_address="+elasticIP+"\n")
			local := conf("vsftpd.local.conf", vsftpdVPNAddr, "")
			if mode.name == "merged" {
				// One listener on every address: the VPN client uses the
				// first ENI's address too, and the second one is free.
				mode.vpn = side{"vpn", tp.vpn, vpnAddr, srvAddr}
			}
			out := filepath.Join(dir, "imported")
			args := append([]string{"import", "vsftpd", "--out", out}, mode.flags...)
			if r := runCmd(dir, "", bin, append(args, global, local)...); !r.OK() {
				t.Fatalf("import: %s", r)
			}
			cfgFile := filepath.Join(out, "cloudftpd.toml")
			// vsftpd's local users are system accounts, and the import
			// maps them to auth.store = "system". The test's accounts
			// live in files of its own, which the config is pointed at.
			files := sysuserstest.Write(t, dir, []sysuserstest.Account{
				{Name: user, UID: 1001, GID: 1001, Home: home, Hash: sysuserstest.Hash(t, "6", password)},
			}, []string{"alice:1001:"}, nil)
			cfg, err := os.ReadFile(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			text := string(cfg)
			// local_root = DIR/$USER: every account's home is its name
			// below DIR, the storage root.
			for _, want := range []string{"store = \"system\"", "[auth.system]\n", "home = \"name\"", fmt.Sprintf("root = %q", root)} {
				if !strings.Contains(text, want) {
					t.Fatalf("the imported config lacks %q:\n%s", want, text)
				}
			}
			text = strings.Replace(text, "[auth.system]\n", fmt.Sprintf("[auth.system]\npasswd_file = %q\nshadow_file = %q\ngroup_file = %q\nftpusers_file = \"\"\n",
				files.Passwd, files.Shadow, files.Group), 1)
			if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if r := runCmd(dir, "", bin, "check-config", "--config", cfgFile); !r.OK() {
				t.Fatalf("check-config on the imported config: %s", r)
			}
			s := &ftpServer{home: home, log: &clienttest.LogBuffer{}, config: cfgFile}
			listen := srvAddr + ":" + ftpPort
			runServer(t, tp, bin, s, listen)
			if mode.name == "per-file" {
				if ok, r := tp.dialFrom(t, tp.srv, vsftpdVPNAddr+":"+ftpPort, 5*time.Second); !ok {
					t.Fatalf("the second listener (%s) does not accept:\n%s", vsftpdVPNAddr, r)
				}
			}
			down := randomBytes(200_000)
			s.putFile(t, "shared.bin", down)
			for _, c := range []struct {
				sd   side
				want string // the address PASV must name
			}{{inet, elasticIP}, {mode.vpn, mode.vpn.host}} {
				t.Run(c.sd.name, func(t *testing.T) {
					dir := t.TempDir()
					url := "ftp://" + c.sd.host + ":" + ftpPort + "/"
					for _, a := range [][]string{{url}, {"-o", "got.bin", url + "shared.bin"}} {
						r := curl(t, tp, c.sd.ns, dir, append([]string{"--disable-epsv", "--no-ftp-skip-pasv-ip"}, a...)...)
						if !r.OK() {
							t.Fatalf("curl through the imported config:\n%s", r)
						}
						checkPASVLines(t, r.Stderr, c.want, 1)
					}
					sameFile(t, "download", filepath.Join(dir, "got.bin"), down, nil)
				})
			}
		})
	}
}
