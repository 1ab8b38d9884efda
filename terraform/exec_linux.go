package terraform

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd killed when the worker process dies (SIGKILL,
// a crash): an orphaned Terraform would go on changing infrastructure
// while another worker retries the same run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
