//go:build unix

package delivery

import (
	"os/exec"
	"syscall"
)

// inOwnGroup starts cmd as the leader of a new process group and makes
// its cancellation (the timeout) kill the whole group: a shell script's
// children die with it instead of running on unsupervised.
func inOwnGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
