package main

import (
	"os/exec"
)

// tarGz archives dir's contents into a gzip tarball with the system tar.
func tarGz(dir, out string) error {
	return exec.Command("tar", "-czf", out, "-C", dir, ".").Run()
}
