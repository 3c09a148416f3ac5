//go:build !linux

package sandbox

import (
	"errors"
	"os"
	"time"
)

var errContainers = errors.New("sandbox: containers need Linux")

// StartError is a container that could not start.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// Containers manages containers (Linux only).
type Containers struct{}

// RunOptions say how Run attaches to a container.
type RunOptions struct {
	Detach                bool
	Stdin, Stdout, Stderr *os.File
}

func OpenContainers(string) (*Containers, error) { return nil, errContainers }
func (cs *Containers) Create(string, ContainerConfig, bool) (*Container, error) {
	return nil, errContainers
}
func (cs *Containers) List() ([]*Container, error)          { return nil, errContainers }
func (cs *Containers) Get(string) (*Container, error)       { return nil, errContainers }
func (cs *Containers) Refresh(*Container) bool              { return true }
func (cs *Containers) Stop(*Container, time.Duration) error { return errContainers }
func (cs *Containers) Remove(*Container, bool) error        { return errContainers }
func (cs *Containers) Run(*Container, RunOptions) (int, error) {
	return 125, errContainers
}

func containerMonitorMain() {}
